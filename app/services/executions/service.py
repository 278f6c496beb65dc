"""Executions: the one submit path, history, cancel, and the engine's bookkeeping."""

from __future__ import annotations

import builtins
from datetime import date, datetime
from typing import Any

from pydantic import BaseModel
from sqlalchemy import Boolean, Integer, bindparam, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from app.models import Execution, ExecutionLog, User, Workflow
from app.models.base import JSONType, UTCDateTime, utcnow
from app.services.actor import Actor
from app.services.errors import InvalidInputError, NotFoundError, PermissionDeniedError
from app.services.executions import log_limits, log_store
from app.services.executions.approval_rows import DEFAULT_APPROVAL_EXPIRY_SECONDS, close_approval, new_approval
from app.services.executions.dispatch import Dispatcher, DispatchRequest
from app.services.executions.history import MAX_LIST_LIMIT as MAX_LIST_LIMIT
from app.services.executions.history import MAX_OFFSET as MAX_OFFSET
from app.services.executions.history import encode_cursor, list_statement, recent_statements
from app.services.executions.history import parse_status as parse_status
from app.services.executions.prepared import Prepared, PreparedWrite
from app.services.executions.views import ExecutionView
from app.services.identity import actor_cache
from app.services.identity.organizations import OrganizationService
from app.services.identity.security import hash_token
from app.services.identity.system_users import SCHEDULER_IDS
from app.services.workflows.access import AccessPolicy
from app.services.workflows.catalogue import WorkflowService
from bifrost._schema import model_from_json_schema, validate_parameters
from bifrost.enums import ExecutionStatus
from bifrost.errors import ValidationError

TERMINAL = {ExecutionStatus.COMPLETED.value, ExecutionStatus.FAILED.value, ExecutionStatus.CANCELLED.value}
GENERIC_FAILURE = (
    "The workflow failed with an unexpected error. An administrator can see the details of this execution."
)

_model_cache: dict[tuple[str, datetime], type[BaseModel]] = {}

# The engine's two bookkeeping statements run for every execution: built once, executed with
# parameters (building an UPDATE per call cost more than running it).
_COLUMNS = tuple(Execution.__table__.columns)  # type: ignore[attr-defined]
_INSERT = Execution.__table__.insert()  # type: ignore[attr-defined]
_COLUMN_NAMES = tuple(column.name for column in _COLUMNS)
_PREPARED_INSERT = Prepared(_INSERT, column_keys=_COLUMN_NAMES)
_FIELD_DEFAULTS = tuple(
    (column.name, Execution.model_fields[column.name]) for column in _COLUMNS if column.name in Execution.model_fields
)


def _new_execution(values: dict[str, Any]) -> Execution:
    """A not-yet-stored Execution holding ``values`` and the model's defaults for the other columns.

    Why not ``Execution(**values)``: SQLModel routes each of its two dozen fields through pydantic
    and SQLAlchemy attribute events, about a tenth of a millisecond per run on this hot path. The
    row is written by a Core INSERT, so the instance only carries the values back to the caller;
    it is built the way the ORM builds a row it loads (the class manager makes the instance, the
    values go straight into its dict), and behaves as any other Execution afterwards.
    """
    data: dict[str, Any] = {}
    for name, field in _FIELD_DEFAULTS:
        if name in values:
            data[name] = values[name]
        elif field.default_factory is not None:
            data[name] = field.default_factory()  # type: ignore[call-arg]
        elif field.is_required():
            raise TypeError(f"Execution needs {name!r}")
        else:
            data[name] = field.default
    execution: Execution = Execution._sa_class_manager.new_instance()  # type: ignore[attr-defined]
    execution.__dict__.update(data)
    return execution


async def _insert_execution(session: AsyncSession, record: dict[str, Any]) -> None:
    """Write a new execution row (its commit is the caller's)."""
    await _PREPARED_INSERT.execute(session, record)


_MARK_RUNNING = (
    update(Execution)
    .where(col(Execution.id) == bindparam("b_id"), col(Execution.status) == ExecutionStatus.PENDING.value)
    .values(
        status=ExecutionStatus.RUNNING.value,
        started_at=bindparam("b_started_at", type_=UTCDateTime()),
        sdk_token_hash=bindparam("b_token_hash"),
    )
)
_FINISH = (
    update(Execution)
    .where(
        col(Execution.id) == bindparam("b_id"),
        # OR, not IN: an IN list is rendered per execution, and this statement is compiled once (Prepared).
        or_(
            *(
                col(Execution.status) == status.value
                for status in (ExecutionStatus.PENDING, ExecutionStatus.RUNNING, ExecutionStatus.AWAITING_APPROVAL)
            )
        ),
    )
    .values(
        status=bindparam("b_status"),
        result=bindparam("b_result", type_=JSONType),
        error_message=bindparam("b_error_message"),
        error_type=bindparam("b_error_type"),
        error_traceback=bindparam("b_error_traceback"),
        user_error=bindparam("b_user_error", type_=Boolean()),
        # keep the recorded start when the worker does not report one (cancelled before running)
        started_at=func.coalesce(bindparam("b_started_at", type_=UTCDateTime()), col(Execution.started_at)),
        completed_at=bindparam("b_completed_at", type_=UTCDateTime()),
        sdk_token_hash=None,
        duration_ms=bindparam("b_duration_ms", type_=Integer()),
    )
)

_PREPARED_MARK_RUNNING = Prepared(_MARK_RUNNING)
_PREPARED_FINISH = Prepared(_FINISH)


def mark_running_write(marks: builtins.list[tuple[str, str]]) -> PreparedWrite:
    """The write marking queued runs PENDING → RUNNING, ``(execution_id, token_hash)`` each (rows written: 1 or 0)."""
    now = utcnow()
    return PreparedWrite(
        _PREPARED_MARK_RUNNING,
        [{"b_id": execution_id, "b_started_at": now, "b_token_hash": token_hash} for execution_id, token_hash in marks],
    )


def finish_write(
    execution_id: str,
    *,
    status: str,
    result: Any = None,
    error_message: str | None = None,
    error_type: str | None = None,
    traceback: str | None = None,
    user_error: bool = False,
    started_at: datetime | None = None,
    completed_at: datetime | None = None,
    duration_ms: int | None = None,
) -> PreparedWrite:
    """The write recording the end of a run not ended yet (see :meth:`ExecutionService.finish`); expires its token now.

    Its SDK token is not cached again until the end has committed (``actor_cache``: a request resolving it
    meanwhile still reads the run as running and is refused a cache entry).
    """
    actor_cache.forget_execution_now_and_after_commit(None, execution_id)  # type: ignore[arg-type]
    return PreparedWrite(
        _PREPARED_FINISH,
        [
            {
                "b_id": execution_id,
                "b_status": status,
                "b_result": result,
                "b_error_message": error_message,
                "b_error_type": error_type,
                "b_error_traceback": traceback,
                "b_user_error": user_error,
                "b_started_at": started_at,
                "b_completed_at": completed_at or utcnow(),
                "b_duration_ms": duration_ms,
            }
        ],
    )


def params_model(workflow: Workflow) -> type[BaseModel]:
    """The validation model rebuilt from stored metadata, cached per workflow version."""
    key = (workflow.id, workflow.updated_at)
    model = _model_cache.get(key)
    if model is None:
        model = model_from_json_schema(workflow.params_schema, name=f"{workflow.name}_parameters")
        _model_cache[key] = model
    return model


def execution_view(execution: Execution, actor: Actor) -> ExecutionView:
    """The API / SDK shape of an execution (``WorkflowExecution`` fields plus extras).

    Non-admins see a generic message instead of an internal error, and no traceback.
    """
    error_message = execution.error_message
    # user_error marks messages meant for users: UserError, and those the platform wrote itself
    # (timeouts, cancel, lost workers, invalid parameters, SDK permission errors). Never matched by
    # exception class name: workflow code can raise any class with any name.
    if error_message and not (execution.user_error or actor.is_superuser):
        error_message = GENERIC_FAILURE
    return {
        "execution_id": execution.id,
        "workflow_name": execution.workflow_name,
        "workflow_id": execution.workflow_id,
        "org_id": execution.organization_id,
        "executed_by": execution.executed_by,
        "executed_by_name": execution.executed_by_name,
        "trigger": execution.trigger,
        "status": execution.status,
        "input_data": execution.input_data,
        "result": execution.result,
        "error_message": error_message,
        "error_type": execution.error_type,
        "user_error": execution.user_error,
        "traceback": execution.error_traceback if actor.is_superuser else None,
        "duration_ms": execution.duration_ms,
        "created_at": execution.created_at.isoformat(),
        "started_at": execution.started_at.isoformat() if execution.started_at else None,
        "completed_at": execution.completed_at.isoformat() if execution.completed_at else None,
    }


class ExecutionService:
    """Every trigger submits through :meth:`submit`; the engine reports back through the ``mark_*`` methods."""

    def __init__(self, session: AsyncSession, dispatcher: Dispatcher | None = None) -> None:
        self.session = session
        self.dispatcher = dispatcher

    # ----- the one submit path -------------------------------------------------------------
    async def submit(
        self,
        workflow: str,
        params: dict[str, Any] | None,
        actor: Actor,
        org: str | None = None,
        *,
        trigger: str = "api",
        kind: str = "workflow",
        form_id: str | None = None,
    ) -> Execution:
        """Check permission, validate params, write a PENDING execution and hand it to the dispatcher.

        A workflow that needs approval is written ``AwaitingApproval`` with its approval instead, and
        not dispatched: :class:`app.services.executions.approvals.ApprovalService` releases it.

        Args:
            workflow: Workflow name or id.
            params: Parameters (validated against the workflow's model).
            actor: Who runs it.
            org: Organization to run in (platform admins only; default the actor's acting org).
            trigger: What started it (``form``, ``api``, ``cli``, ``schedule``, ``chat``, ``endpoint``, ``notebook``).
            kind: ``workflow`` or ``data_provider``.
            form_id: The custom form it was submitted through (``trigger="form"``), kept on the run.

        Returns:
            The committed PENDING execution.

        Raises:
            NotFoundError: Unknown workflow, or one the actor may not run (its access policy).
            PermissionDeniedError: The actor may not act in ``org``.
            InvalidInputError: Bad parameters, one entry per field; nothing is written.
        """
        if self.dispatcher is None:
            raise RuntimeError("ExecutionService.submit needs a dispatcher")
        # Scheduled firings were set up by a platform admin (or declared in code by an author):
        # the role policy does not apply to the Scheduler account, the organization limit does.
        scheduled = trigger == "schedule" and actor.user_id in SCHEDULER_IDS
        row, policy = await WorkflowService(self.session).get_with_policy(None if scheduled else actor, workflow, kind)
        if scheduled and not actor.can_see_org(row.organization_id):
            raise NotFoundError(f"Workflow {workflow!r} not found.")
        if actor.api_key_workflow_id and actor.api_key_workflow_id not in (row.id, row.name):
            raise PermissionDeniedError("This API key may not run this workflow.")
        org_id = await self._target_org(actor, org)
        if not policy.allows_org(org_id):
            # Platform admins may name another organization: the workflow is limited to others.
            raise InvalidInputError.field("org", f"workflow {row.name!r} is not available in this organization")
        if params is not None and not isinstance(params, dict):
            raise InvalidInputError.field("params", "must be an object of parameter values")
        try:
            validated = validate_parameters(params_model(row), params)
        except ValidationError as exc:
            raise InvalidInputError(str(exc), exc.errors) from None
        values: dict[str, Any] = {
            "workflow_id": row.id,
            "workflow_name": row.name,
            "kind": row.kind,
            "organization_id": org_id,
            "executed_by": actor.user_id,
            "executed_by_name": actor.email,
            "trigger": trigger,
            "is_function_key": actor.is_function_key,
            "api_key_id": actor.api_key_id,
            "status": ExecutionStatus.PENDING.value,
            "input_data": validated.model_dump(mode="json"),
            "timeout_seconds": row.timeout_seconds,
        }
        if form_id is not None:
            values["form_id"] = form_id
        if policy.needs_approval and not (scheduled and policy.schedules_skip_approval):
            return await self._await_approval(row, policy, values, actor)
        # A free worker now? Then the run is written RUNNING at once (one write less per run). A crash
        # before it ends leaves it RUNNING, which recovery marks FAILED: it never runs twice.
        token = self.dispatcher.claim()
        if token is not None:
            values["status"] = ExecutionStatus.RUNNING.value
            values["started_at"] = utcnow()
            values["sdk_token_hash"] = hash_token(token)
        execution = _new_execution(values)
        record = {name: execution.__dict__[name] for name in _COLUMN_NAMES}
        try:
            writes = getattr(self.dispatcher, "writes", None)  # the local dispatcher's group committer
            alone = not self.session.in_transaction()  # nothing of the caller's to commit with it
            if writes is not None and writes.takes_inserts and alone:
                # The INSERT shares the next group commit with other runs' writes (SQLite: one commit for
                # all under concurrency, docs/performance.md "Against Celery").
                await writes.run(PreparedWrite(_PREPARED_INSERT, [record]))
            elif writes is not None and writes.one_statement and alone:
                # Postgres: in the next group's one durable statement, with the runs submitted, finished and
                # taken by a worker meanwhile (group_commit.py); no session at all.
                await writes.insert(record)
            elif alone and self.session.bind is not None and self.session.bind.dialect.name == "postgresql":
                # One statement in autocommit: the same durable commit, without BEGIN and COMMIT round trips.
                await self.session.connection(execution_options={"isolation_level": "AUTOCOMMIT"})
                await _insert_execution(self.session, record)
                await self.session.commit()
            else:
                # A Core INSERT: the ORM unit of work cost more than the insert itself on this hot path.
                await _insert_execution(self.session, record)
                await self.session.commit()
            request = await self.dispatch_request(execution, actor=actor, sdk_token=token)
        except BaseException:
            if token is not None:
                self.dispatcher.release(token)
            raise
        await self.dispatcher.dispatch(request)
        return execution

    async def _await_approval(
        self, row: Workflow, policy: AccessPolicy, values: dict[str, Any], actor: Actor
    ) -> Execution:
        """Write the run ``AwaitingApproval`` with its approval, in one transaction; nothing is dispatched."""
        values["status"] = ExecutionStatus.AWAITING_APPROVAL.value
        execution = _new_execution(values)
        connection = await self.session.connection()
        await connection.execute(_INSERT, {name: execution.__dict__[name] for name in _COLUMN_NAMES})
        expiry = getattr(self.dispatcher, "approval_expiry_seconds", DEFAULT_APPROVAL_EXPIRY_SECONDS)
        self.session.add(new_approval(execution, row, policy, actor, expiry))
        await self.session.commit()
        return execution

    async def release_approved(self, execution: Execution) -> None:
        """Hand an approved (now PENDING, committed) run to the dispatcher."""
        if self.dispatcher is None:
            raise RuntimeError("ExecutionService.release_approved needs a dispatcher")
        await self.dispatcher.dispatch(await self.dispatch_request(execution))

    async def dispatch_request(
        self, execution: Execution, actor: Actor | None = None, sdk_token: str | None = None
    ) -> DispatchRequest:
        """What the dispatcher needs to run ``execution`` (``sdk_token``: the claim it was written RUNNING with)."""
        return DispatchRequest(
            execution_id=execution.id,
            kind=execution.kind,
            name=execution.workflow_name,
            params=execution.input_data,
            timeout_seconds=execution.timeout_seconds,
            context=await self.context_for(execution, actor=actor),
            sdk_token=sdk_token,
        )

    async def _target_org(self, actor: Actor, org: str | None) -> str | None:
        if not org or org == actor.acting_org_id:
            return actor.acting_org_id
        if actor.is_superuser and org.upper() == "GLOBAL":
            return None
        found = await OrganizationService(self.session).find(org)
        if found is not None and found.id == actor.acting_org_id:
            return found.id  # their own organization, named instead of given by id
        if not actor.is_superuser:
            # The same answer whether or not the organization exists: names cannot be probed.
            raise PermissionDeniedError("Only platform admins may run workflows in another organization.")
        if found is None:
            raise InvalidInputError.field("org", f"organization {org!r} not found")
        return found.id

    async def context_for(self, execution: Execution, actor: Actor | None = None) -> dict[str, Any]:
        """The ExecutionContext fields bound in the worker for this execution."""
        org = await OrganizationService(self.session).cached(execution.organization_id)
        if actor is None:
            user = await self.session.get(User, execution.executed_by)
            email, name, is_admin = (
                (user.email, user.name, user.is_superuser) if user else (execution.executed_by_name, "", False)
            )
        else:
            email, name, is_admin = actor.email, actor.name, actor.is_superuser
        return {
            "user_id": execution.executed_by,
            "email": email,
            "name": name,
            "org_id": org.id if org else None,
            "org_name": org.name if org else None,
            "organization": {"id": org.id, "name": org.name, "is_active": org.is_active, "domain": org.domain}
            if org
            else None,
            "scope": org.id if org else "GLOBAL",
            "execution_id": execution.id,
            "is_platform_admin": is_admin,
            "is_function_key": execution.is_function_key,
        }

    # ----- reading ------------------------------------------------------------------------------
    async def get(self, actor: Actor, execution_id: str) -> Execution:
        """Return an execution the actor may see (admins: all; others: their own in their organization)."""
        execution = await self.session.get(Execution, execution_id)
        if execution is None:
            raise NotFoundError(f"Execution {execution_id!r} not found.")
        visible = actor.is_superuser or (
            execution.organization_id == actor.acting_org_id and execution.executed_by == actor.user_id
        )
        if not visible:
            raise NotFoundError(f"Execution {execution_id!r} not found.")
        return execution

    async def list(
        self,
        actor: Actor,
        workflow_name: str | None = None,
        status: str | None = None,
        start_date: str | datetime | date | None = None,
        end_date: str | datetime | date | None = None,
        limit: int = 50,
        offset: int = 0,
        executed_by: str | None = None,
        *,
        kind: str | None = None,
        cursor: str | None = None,
    ) -> builtins.list[Execution]:
        """List executions newest first, with the spec's filters (see :mod:`app.services.executions.history`).

        Args:
            actor: Who reads (admins: every organization, or the one they act in; users: their own runs).
            workflow_name: Only this workflow's runs.
            status: Only this status (any case).
            start_date: Created at or after (ISO date or date-time).
            end_date: Created at or before (a bare date includes that day).
            limit: Page size (1-1000).
            offset: Rows to skip (reads them all; prefer ``cursor``).
            executed_by: Only runs of this user id.
            kind: ``workflow`` or ``data_provider``.
            cursor: Continue after the row this cursor names (:func:`history.encode_cursor`).

        Raises:
            InvalidInputError: Naming the bad parameter.
        """
        rows, _ = await self.list_page(
            actor,
            workflow_name,
            status,
            start_date,
            end_date,
            limit,
            offset,
            executed_by,
            kind=kind,
            cursor=cursor,
            probe=False,
        )
        return rows

    async def list_page(
        self,
        actor: Actor,
        workflow_name: str | None = None,
        status: str | None = None,
        start_date: str | datetime | date | None = None,
        end_date: str | datetime | date | None = None,
        limit: int = 50,
        offset: int = 0,
        executed_by: str | None = None,
        *,
        kind: str | None = None,
        cursor: str | None = None,
        before: str | None = None,
        probe: bool = True,
    ) -> tuple[builtins.list[Execution], str | None]:
        """One page of :meth:`list` (newest first) and the cursor that continues it.

        With ``probe`` one row more than the page is read to tell whether another page follows (else
        the returned cursor is None). That cursor continues toward older rows, or, with ``before``,
        toward newer ones (pass it as ``before`` again); None: no more rows that way.
        """
        stmt = list_statement(
            actor,
            workflow_name=workflow_name,
            status=status,
            start_date=start_date,
            end_date=end_date,
            executed_by=executed_by,
            kind=kind,
            cursor=cursor,
            before=before,
            limit=limit,
            offset=offset,
        )
        if probe:
            stmt = stmt.limit(limit + 1)
        rows = list((await self.session.execute(stmt)).scalars())
        following = encode_cursor(rows[limit - 1]) if len(rows) > limit else None
        rows = rows[:limit]
        if before:
            rows.reverse()  # read oldest first, from the cursor toward the newest
        return rows, following

    async def recent_by_workflow(
        self, actor: Actor, workflow_names: builtins.list[str], per_workflow: int
    ) -> dict[str, builtins.list[Execution]]:
        """The newest ``per_workflow`` visible executions of each named workflow, newest first.

        The catalogue shows a few last runs per workflow; one ``list`` per workflow was a query each.
        """
        found: dict[str, builtins.list[Execution]] = {name: [] for name in workflow_names}
        if not workflow_names:
            return found
        for union in recent_statements(actor, workflow_names, per_workflow):
            stmt = select(Execution).from_statement(union)
            for execution in (await self.session.execute(stmt)).scalars():
                found[execution.workflow_name].append(execution)
        for runs in found.values():
            runs.sort(key=lambda e: (e.created_at, e.id), reverse=True)
        return found

    async def logs(
        self,
        actor: Actor,
        execution_id: str,
        after_seq: int = -1,
        *,
        limit: int | None = None,
        max_limit: int = log_limits.DEFAULT_PAGE_LINES,
        max_bytes: int = log_limits.DEFAULT_PAGE_BYTES,
    ) -> log_limits.LogPage:
        """One page of the stored log lines of a visible execution, in order.

        Args:
            actor: Who reads.
            execution_id: The execution.
            after_seq: Cursor: only lines with a greater ``seq`` (-1: from the start).
            limit: Most lines wanted (default and cap ``max_limit``).
            max_limit: The most lines one page may hold.
            max_bytes: The page ends before its messages exceed this (it always holds one line).

        Returns:
            The lines and, when more stored lines follow, the cursor of the next page.

        Raises:
            InvalidInputError: ``after`` or ``limit`` out of range.
        """
        if not -1 <= after_seq <= MAX_OFFSET:
            raise InvalidInputError.field("after", f"must be between -1 and {MAX_OFFSET}")
        if limit is not None and limit < 1:
            raise InvalidInputError.field("limit", "must be at least 1")
        await self.get(actor, execution_id)
        page_lines = max_limit if limit is None else min(limit, max_limit)
        return await log_store.read_page(self.session, execution_id, after_seq, page_lines, max_bytes)

    async def log_tail(self, actor: Actor, execution_id: str, *, limit: int, max_bytes: int) -> builtins.list[Any]:
        """The last stored log lines of a visible execution, in order (at most ``limit`` / ``max_bytes``)."""
        await self.get(actor, execution_id)
        return await log_store.read_tail(self.session, execution_id, limit, max_bytes)

    async def cancel(self, actor: Actor, execution_id: str) -> Execution:
        """Cancel a PENDING or RUNNING execution (admins, or whoever ran it)."""
        execution = await self.get(actor, execution_id)
        if not (actor.is_superuser or execution.executed_by == actor.user_id):
            raise PermissionDeniedError("You may only cancel your own executions.")
        if execution.status in TERMINAL:
            raise InvalidInputError.field("status", f"execution already ended ({execution.status})")
        if execution.status == ExecutionStatus.AWAITING_APPROVAL.value:
            await close_approval(self.session, execution_id, "cancelled", actor, "Cancelled by the requester.")
        found = await self.dispatcher.cancel(execution_id) if self.dispatcher else False
        if not found:
            await self.finish(
                execution_id,
                status=ExecutionStatus.CANCELLED.value,
                error_message="Cancelled by user",
                error_type="Cancelled",
                user_error=True,
            )
        await self.session.refresh(execution)
        return execution

    # ----- engine bookkeeping -----------------------------------------------------------------------
    async def mark_running(self, execution_id: str, token_hash: str) -> bool:
        """PENDING → RUNNING with the SDK token hash; False if it was cancelled meanwhile."""
        # Core statements on the session's connection: the ORM's UPDATE path adds work we do not need.
        (written,) = await mark_running_write([(execution_id, token_hash)])(self.session)
        return bool(written)

    async def finish(
        self,
        execution_id: str,
        *,
        status: str,
        result: Any = None,
        error_message: str | None = None,
        error_type: str | None = None,
        traceback: str | None = None,
        user_error: bool = False,
        started_at: datetime | None = None,
        completed_at: datetime | None = None,
        duration_ms: int | None = None,
    ) -> bool:
        """Record the end of a non-terminal execution and expire its SDK token; False if it had ended already."""
        write = finish_write(
            execution_id,
            status=status,
            result=result,
            error_message=error_message,
            error_type=error_type,
            traceback=traceback,
            user_error=user_error,
            started_at=started_at,
            completed_at=completed_at,
            duration_ms=duration_ms,
        )
        (written,) = await write(self.session)
        return bool(written)

    async def add_logs(self, rows: builtins.list[dict[str, Any]]) -> None:
        """Insert captured log lines (``execution_id, seq, timestamp, level, logger, message``)."""
        if rows:
            await self.session.execute(ExecutionLog.__table__.insert(), rows)  # type: ignore[attr-defined]

    async def add_capped_logs(
        self,
        execution_id: str,
        entries: builtins.list[tuple[datetime, str, str, str]],
        limits: log_limits.LogLimits,
    ) -> builtins.list[dict[str, Any]]:
        """Number and store ``(timestamp, level, logger, message)`` lines of a run written through the API.

        Lines past the run's cap (``limits``) are dropped and counted by marker lines
        (:func:`app.services.executions.log_store.append_capped`); returns the rows inserted.
        """
        return await log_store.append_capped(self.session, execution_id, entries, limits)

    async def requeue(self, execution_id: str) -> bool:
        """RUNNING → PENDING for a run no worker started (the pool stopped first); False if it had moved on."""
        result = await self.session.execute(
            update(Execution)
            .where(col(Execution.id) == execution_id, col(Execution.status) == ExecutionStatus.RUNNING.value)
            .values(status=ExecutionStatus.PENDING.value, started_at=None, sdk_token_hash=None)
        )
        return bool(result.rowcount)  # type: ignore[attr-defined]

    async def recover(self) -> builtins.list[DispatchRequest]:
        """On server start: RUNNING → FAILED ("server restarted"); return PENDING ones to dispatch again.

        The dispatcher writes a run RUNNING only once a worker is reserved for it, so a RUNNING row
        left by a stopped server may have done part of its work (it is failed, never run twice) and
        a PENDING one never started (it runs now, exactly once).
        """
        await self.session.execute(
            update(Execution)
            .where(col(Execution.status) == ExecutionStatus.RUNNING.value)
            .values(
                status=ExecutionStatus.FAILED.value,
                error_message="Server restarted while this execution was running.",
                error_type="ServerRestarted",
                user_error=True,
                completed_at=utcnow(),
                sdk_token_hash=None,
            )
        )
        stmt = (
            select(Execution)
            .where(col(Execution.status) == ExecutionStatus.PENDING.value)
            .order_by(col(Execution.created_at))
        )
        pending = list((await self.session.execute(stmt)).scalars())
        return [await self.dispatch_request(e) for e in pending]
