"""The two statements of a queued run on a worker node: take it, and store its outcome.

A node talks to Postgres twice per run on its way (measured before: 13 statements per queued
no-op run, 8 of them the node's):

* :data:`TAKE`: procrastinate's own fetch function (``procrastinate_fetch_job_v2``: the next job,
  ``todo`` → ``doing``, ``SKIP LOCKED``), the run's ``Pending`` → ``Running`` mark with this node's
  name and SDK token hash, and what the worker needs (the run, its user and organization), in ONE
  statement and one transaction. It commits durably (the connection keeps ``synchronous_commit``
  on): a run is ``Running`` on disk before its worker starts it, and its job ``doing`` with it.
* :data:`FINISH`: the outcome ``UPDATE`` with the run's log lines and the servers' end NOTIFY in ONE
  autocommit statement, on a connection with ``synchronous_commit`` off (an outcome may be lost
  with the last commits of a crash of Postgres or of the machine, never run twice: as the embedded
  dispatcher's outcomes, app/engine/group_commit.py).

Both are written for Postgres only (the queue needs it) and read by :mod:`app.engine.node`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from app.engine.queue_schema import DONE_CHANNEL, TASK
from bifrost.enums import ExecutionStatus

# Columns procrastinate's Job.from_row reads (its own fetch_job query selects these).
JOB_COLUMNS = (
    "id",
    "status",
    "task_name",
    "priority",
    "lock",
    "queueing_lock",
    "args",
    "scheduled_at",
    "queue_name",
    "attempts",
    "worker_id",
)

_RUN_RETURNING = """e.id, e.kind, e.workflow_name, e.input_data, e.timeout_seconds, e.organization_id,
           e.executed_by, e.executed_by_name, e.is_function_key"""
_RUN_SET = f"""status = '{ExecutionStatus.RUNNING.value}', started_at = %(started_at)s,
           sdk_token_hash = %(token_hash)s, node = %(node)s"""
_RUN_SELECT = """run.id AS run_id, run.kind AS run_kind, run.workflow_name AS run_workflow_name,
       run.input_data AS run_input_data, run.timeout_seconds AS run_timeout_seconds,
       run.organization_id AS run_organization_id, run.executed_by AS run_executed_by,
       run.executed_by_name AS run_executed_by_name, run.is_function_key AS run_is_function_key,
       u.email AS user_email, u.name AS user_name, u.is_superuser AS user_is_superuser,
       o.id AS org_id, o.name AS org_name, o.is_active AS org_is_active, o.domain AS org_domain"""
_RUN_JOINS = """LEFT JOIN "user" AS u ON u.id = run.executed_by
  LEFT JOIN organization AS o ON o.id = run.organization_id"""

# The job CTE is referenced twice, so Postgres evaluates the (volatile) fetch function once.
# A fetch that finds no job returns one row of NULLs: no run is marked, and the caller returns None.
# The fetch function's own UPDATE reads with a newer snapshot than this statement's (a volatile
# function's statements each take one): it may take a job committed after this statement began,
# whose run the ``run`` CTE cannot see yet. Then ``run_id`` is NULL although the run is Pending:
# :func:`take` marks it with :data:`TAKE_RUN` (found by the 1,000-run cluster test: 1 run in 1,000).
TAKE = f"""
WITH job AS (
    SELECT {", ".join(JOB_COLUMNS)}
      FROM procrastinate_fetch_job_v2(%(queues)s::varchar[], %(worker_id)s)
), run AS (
    UPDATE execution AS e
       SET {_RUN_SET}
      FROM job
     WHERE job.task_name = '{TASK}'
       AND e.id = job.args ->> 'execution_id'
       AND e.status = '{ExecutionStatus.PENDING.value}'
 RETURNING {_RUN_RETURNING}
)
SELECT {", ".join(f"job.{c}" for c in JOB_COLUMNS)},
       {_RUN_SELECT}
  FROM job
  LEFT JOIN run ON true
  {_RUN_JOINS}
"""

# The run of a job TAKE fetched but could not see (see above), marked with a fresh snapshot.
TAKE_RUN = f"""
WITH run AS (
    UPDATE execution AS e
       SET {_RUN_SET}
     WHERE e.id = %(execution_id)s AND e.status = '{ExecutionStatus.PENDING.value}'
 RETURNING {_RUN_RETURNING}
)
SELECT {_RUN_SELECT}
  FROM run
  {_RUN_JOINS}
"""


async def take(connection: Any, params: dict[str, Any]) -> dict[str, Any] | None:
    """Run :data:`TAKE` on ``connection`` (autocommit, durable, rows as dicts); the row, or None without a job.

    Args:
        connection: A psycopg async connection whose row factory is ``dict_row``.
        params: TAKE's parameters (``queues``, ``worker_id``, ``started_at``, ``token_hash``, ``node``).
    """
    row: dict[str, Any] | None = await (await connection.execute(TAKE, params)).fetchone()
    if row is None or row["id"] is None:
        return None
    execution_id = (row["args"] or {}).get("execution_id")
    if row["run_id"] is None and row["task_name"] == TASK and isinstance(execution_id, str):
        # Either the run is no longer Pending (cancelled while queued), or TAKE could not see it yet.
        marked = await (await connection.execute(TAKE_RUN, {**params, "execution_id": execution_id})).fetchone()
        if marked is not None:
            row.update(marked)
    return row


_NOT_ENDED = ", ".join(
    f"'{s.value}'" for s in (ExecutionStatus.PENDING, ExecutionStatus.RUNNING, ExecutionStatus.AWAITING_APPROVAL)
)

# The log lines are one INSERT from arrays (none: unnest of empty arrays inserts nothing). The run's
# procrastinate job is deleted here too, as procrastinate's own finish would (``delete_jobs="successful"``:
# its procrastinate_finish_job_v1 is this DELETE), so the node skips that statement. The NOTIFY carries
# the outcome only when this statement stored it; else just the id (the waiter reads the row).
FINISH = f"""
WITH job AS (
    DELETE FROM procrastinate_jobs WHERE id = %(job_id)s AND status IN ('todo', 'doing')
), logs AS (
    INSERT INTO execution_log (execution_id, seq, "timestamp", level, logger, message)
    SELECT %(id)s, * FROM unnest(%(log_seq)s::int[], %(log_timestamp)s::timestamptz[],
                                 %(log_level)s::text[], %(log_logger)s::text[], %(log_message)s::text[])
), run AS (
    UPDATE execution
       SET status = %(status)s, result = %(result)s::json, error_message = %(error_message)s,
           error_type = %(error_type)s, error_traceback = %(error_traceback)s, user_error = %(user_error)s,
           started_at = coalesce(%(started_at)s, started_at), completed_at = %(completed_at)s,
           sdk_token_hash = NULL, duration_ms = %(duration_ms)s
     WHERE id = %(id)s AND status IN ({_NOT_ENDED})
 RETURNING id
)
SELECT EXISTS (SELECT 1 FROM run) AS stored,
       pg_notify('{DONE_CHANNEL}', CASE WHEN EXISTS (SELECT 1 FROM run) THEN %(payload)s ELSE %(id)s END)
"""


def context_of(row: dict[str, Any]) -> dict[str, Any]:
    """The ExecutionContext fields of a run taken by :data:`TAKE` (the shape of ``ExecutionService.context_for``).

    tests/scale/test_node_statements.py checks both give the same context for the same run.
    """
    has_user = row["user_email"] is not None
    has_org = row["org_id"] is not None
    organization = (
        {"id": row["org_id"], "name": row["org_name"], "is_active": row["org_is_active"], "domain": row["org_domain"]}
        if has_org
        else None
    )
    return {
        "user_id": row["run_executed_by"],
        "email": row["user_email"] if has_user else row["run_executed_by_name"],
        "name": row["user_name"] if has_user else "",
        "org_id": row["org_id"] if has_org else None,
        "org_name": row["org_name"] if has_org else None,
        "organization": organization,
        "scope": row["org_id"] if has_org else "GLOBAL",
        "execution_id": row["run_id"],
        "is_platform_admin": bool(row["user_is_superuser"]) if has_user else False,
        "is_function_key": row["run_is_function_key"],
    }


def finish_params(
    execution_id: str, outcome: dict[str, Any], logs: list[dict[str, Any]], payload: str, job_id: int | None = None
) -> dict[str, Any]:
    """The parameters of :data:`FINISH` (``result`` as JSON text, SQL NULL for None as the ORM stores it).

    Args:
        execution_id: The run.
        outcome: Its outcome fields (as ``LocalDispatcher._finish`` stores them).
        logs: Its log rows not yet stored.
        payload: The end NOTIFY's message (:func:`app.engine.queue_schema.done_payload`).
        job_id: Its procrastinate job, deleted with it (None: none).
    """
    import json

    result = outcome["result"]
    return {
        "id": execution_id,
        "status": outcome["status"],
        "result": None if result is None else json.dumps(result),
        "error_message": outcome["error_message"],
        "error_type": outcome["error_type"],
        "error_traceback": outcome["error_traceback"],
        "user_error": outcome["user_error"],
        "started_at": outcome["started_at"],
        "completed_at": outcome["completed_at"],
        "duration_ms": outcome["duration_ms"],
        "payload": payload,
        "job_id": job_id,
        "log_seq": [row["seq"] for row in logs],
        "log_timestamp": [_aware(row["timestamp"]) for row in logs],
        "log_level": [row["level"] for row in logs],
        "log_logger": [row["logger"] for row in logs],
        "log_message": [row["message"] for row in logs],
    }


def _aware(value: datetime) -> datetime:
    from datetime import UTC

    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)
