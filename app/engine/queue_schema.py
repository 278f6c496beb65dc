"""The Postgres side of ``BIFROST_QUEUE=postgres``: procrastinate's schema and the execution trigger.

A run's job is inserted by a trigger on the ``execution`` table, in the very statement that writes
the row ``Pending`` (the submit's INSERT, an approval's release, a requeue): the submit path stays
exactly what it is with the embedded pool, and there is never a run without its job or a job
without its run. Everything here is applied at start-up by every server and node, idempotently,
under an advisory lock (never on SQLite; the embedded default has no queue).
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from sqlalchemy.engine import make_url

QUEUE = "bifrost_executions"
TASK = "bifrost.run_execution"
# Channels of the small LISTEN connection each server and node keeps (docs/deploy.md).
DONE_CHANNEL = "bifrost_execution_done"
CANCEL_CHANNEL = "bifrost_execution_cancel"
# pg_advisory_xact_lock key: servers and nodes starting together apply the schema once.
_SCHEMA_LOCK = 0x62696672_6F7374  # "bifrost"

_TRIGGER_FUNCTION = f"""
CREATE OR REPLACE FUNCTION bifrost_defer_execution() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    -- A run becomes Pending (written so, approved, or handed back by a node that never started it):
    -- one todo job per run; the queueing lock makes a second one a no-op.
    IF TG_OP = 'UPDATE' AND OLD.status = 'Pending' THEN
        RETURN NULL;
    END IF;
    INSERT INTO procrastinate_jobs (queue_name, task_name, queueing_lock, args)
    VALUES ('{QUEUE}', '{TASK}', NEW.id, jsonb_build_object('execution_id', NEW.id))
    ON CONFLICT (queueing_lock) WHERE status = 'todo' DO NOTHING;
    RETURN NULL;
END;
$$;
"""

_TRIGGER = """
CREATE TRIGGER bifrost_execution_job
    AFTER INSERT OR UPDATE OF status ON execution
    FOR EACH ROW WHEN (NEW.status = 'Pending')
    EXECUTE FUNCTION bifrost_defer_execution();
"""

# Pending runs without a job: rows written before the queue was switched on. Their jobs now.
RECONCILE = f"""
INSERT INTO procrastinate_jobs (queue_name, task_name, queueing_lock, args)
SELECT '{QUEUE}', '{TASK}', e.id, jsonb_build_object('execution_id', e.id)
  FROM execution e
 WHERE e.status = 'Pending'
   AND NOT EXISTS (
       SELECT 1 FROM procrastinate_jobs j
        WHERE j.queueing_lock = e.id AND j.status IN ('todo', 'doing'))
ON CONFLICT (queueing_lock) WHERE status = 'todo' DO NOTHING
"""


# NOTIFY payloads must stay under 8,000 bytes: a larger outcome is read from the row instead.
_MAX_DONE_PAYLOAD = 7_500
_DATES = ("started_at", "completed_at")


def done_payload(execution_id: str, outcome: dict[str, Any] | None) -> str:
    """The ``DONE_CHANNEL`` message of an ended run: its id, and its stored outcome when small.

    A waiting server answers from the outcome without reading the row back (as the embedded
    dispatcher does); without it (too large, or a lost node's run) the server reads the row.
    """
    if outcome is not None:
        fields = {k: (v.isoformat() if k in _DATES and v is not None else v) for k, v in outcome.items()}
        try:
            payload = json.dumps({"id": execution_id, "outcome": fields}, ensure_ascii=False, allow_nan=False)
            fits = len(payload.encode()) <= _MAX_DONE_PAYLOAD
        except (TypeError, ValueError):  # not JSON or not UTF-8 (a lone surrogate): the waiter reads the row
            fits = False
        if fits:
            return payload
    return execution_id


def parse_done(payload: str) -> tuple[str, dict[str, Any] | None]:
    """``(execution id, outcome or None)`` of a :func:`done_payload` message."""
    if not payload.startswith("{"):
        return payload, None
    message = json.loads(payload)
    outcome = message.get("outcome")
    if outcome is not None:
        for key in _DATES:
            if outcome.get(key) is not None:
                outcome[key] = datetime.fromisoformat(outcome[key])
    return str(message["id"]), outcome


def conninfo(database_url: str) -> str:
    """The libpq connection string (psycopg, procrastinate) of a SQLAlchemy Postgres URL.

    Raises:
        ValueError: The URL is not a Postgres one (the queue needs Postgres).
    """
    url = make_url(database_url)
    if not url.drivername.startswith("postgresql"):
        raise ValueError(
            f"BIFROST_QUEUE=postgres needs a Postgres BIFROST_DATABASE_URL (got a {url.get_backend_name()} URL)"
        )
    return url.set(drivername="postgresql").render_as_string(hide_password=False)


async def ensure_queue_schema(database_url: str) -> None:
    """Create procrastinate's tables and the execution trigger when missing (safe to call on every start).

    Args:
        database_url: The platform's (migrated) Postgres URL.
    """
    import psycopg
    from procrastinate.schema import SchemaManager

    async with await psycopg.AsyncConnection.connect(conninfo(database_url)) as connection:
        async with connection.transaction():
            await connection.execute("SELECT pg_advisory_xact_lock(%s)", (_SCHEMA_LOCK,))
            if await _scalar(connection, "SELECT to_regclass('procrastinate_jobs')") is None:
                await connection.execute(SchemaManager.get_schema().encode())
            await connection.execute(_TRIGGER_FUNCTION.encode())
            found = "SELECT 1 FROM pg_trigger WHERE tgname = 'bifrost_execution_job' AND NOT tgisinternal"
            if await _scalar(connection, found) is None:
                await connection.execute(_TRIGGER.encode())
            await connection.execute(RECONCILE.encode())


async def _scalar(connection: Any, query: str) -> Any:
    row = await (await connection.execute(query.encode())).fetchone()
    return None if row is None else row[0]
