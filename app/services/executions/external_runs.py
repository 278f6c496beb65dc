"""Executions run outside the worker pool by an external runner (a Jupyter kernel trialling a workflow).

A notebook author's workflow lives in the kernel, not in the workspace, so the worker pool cannot run
it. Instead the kernel asks the platform for an execution (:meth:`ExternalRunService.start`): the
platform checks who may act where, validates the parameters against the JSON schema the kernel sends
(with the same rebuilt model the submit path uses), writes the execution RUNNING with a fresh
per-execution SDK token and hands back the token and the execution context. The kernel then runs the
function bound to that context, so every SDK call crosses the SDK API as that user in that
organization; it reports log lines (:meth:`add_logs`) and the outcome (:meth:`finish`), which expires
the token. History, logs and redaction of secrets are the same as for any other execution.

The code of a notebook run is the caller's own, so starting one is authoring: only platform admins
and users holding an active role of their organization that grants authoring (``role.can_author``)
may. Its token reads secrets in clear only for platform admins (:attr:`Actor.may_read_secrets`).
"""

from __future__ import annotations

import builtins
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from app.models import Execution, stable_workflow_id
from app.models.base import utcnow
from app.services import redaction
from app.services.actor import Actor
from app.services.errors import ConflictError, InvalidInputError, NotFoundError, PermissionDeniedError
from app.services.executions.log_limits import LogLimits, external_tallies
from app.services.executions.service import TERMINAL, ExecutionService
from app.services.executions.views import ExecutionContextView
from app.services.identity.organizations import OrganizationService
from app.services.identity.roles import grants_authoring
from app.services.identity.security import hash_token, new_execution_token
from bifrost._schema import model_from_json_schema, validate_parameters
from bifrost.enums import ExecutionStatus
from bifrost.errors import ValidationError

EXTERNAL_TRIGGERS = frozenset({"notebook"})
KINDS = ("workflow", "data_provider")
MAX_NAME_LENGTH = 200
MAX_TIMEOUT_SECONDS = 24 * 3600
MAX_LINES_PER_CALL = 1000
MAX_LOG_CHARS = 100_000
LEVELS = frozenset({"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"})
END_STATUSES = (ExecutionStatus.COMPLETED.value, ExecutionStatus.FAILED.value, ExecutionStatus.CANCELLED.value)


def _text(value: Any, field: str, max_length: int, *, required: bool = False, strict: bool = True) -> str | None:
    """Text of at most ``max_length`` characters; ``strict`` also refuses what UTF-8 cannot encode.

    Names and types are refused when they hold lone surrogates (a database cannot store them); free
    text (messages, tracebacks) is cleaned instead by :func:`_clean`.
    """
    if value is None or value == "":
        if required:
            raise InvalidInputError.field(field, "is required")
        return None
    if not isinstance(value, str):
        raise InvalidInputError.field(field, "must be text")
    if len(value) > max_length:
        raise InvalidInputError.field(field, f"must be at most {max_length} characters")
    if strict:
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise InvalidInputError.field(field, "must be valid Unicode text") from None
        if "\x00" in value:
            raise InvalidInputError.field(field, "must not contain NUL characters")
    return value


def _aware_datetime(value: Any) -> datetime | None:
    """An ISO date-time with a time zone, or None when ``value`` is not one."""
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else None


def _clean(text: str) -> str:
    """What a database cannot store (lone surrogates, NUL) replaced, overlong lines cut."""
    text = text.encode("utf-8", errors="replace").decode("utf-8").replace("\x00", "\ufffd")
    if len(text) > MAX_LOG_CHARS:
        text = f"{text[:MAX_LOG_CHARS]}… [truncated {len(text) - MAX_LOG_CHARS} characters]"
    return text


class ExternalRunService:
    """Start, log to and finish executions whose code runs in an external runner."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def start(
        self,
        actor: Actor,
        name: Any,
        params: Any,
        params_schema: Any,
        *,
        org: str | None = None,
        kind: Any = "workflow",
        timeout_seconds: Any = 1800,
        trigger: str = "notebook",
    ) -> tuple[Execution, str, dict[str, Any]]:
        """Write a RUNNING execution for code the caller runs itself; return it, its SDK token and context.

        Args:
            actor: Who runs it (the runner acts with this user's permissions, never more).
            name: Name of the workflow or data provider being trialled.
            params: Parameter values.
            params_schema: The JSON schema of the function's parameters (``bifrost`` builds it from
                the signature); the values are validated against it like the submit path does.
            org: Organization to run in (platform admins only; default the actor's acting one).
            kind: ``workflow`` or ``data_provider``.
            timeout_seconds: After this (plus a grace period) the platform ends the run as failed.
            trigger: What ran it (``notebook``).

        Returns:
            ``(execution, sdk_token, context)``; the token is shown only here.

        Raises:
            PermissionDeniedError: Not a platform admin nor an author (``role.can_author``), a key
                limited to one workflow, or acting in another organization.
            InvalidInputError: Bad name, kind, timeout, schema or parameters (one entry per field).
        """
        if trigger not in EXTERNAL_TRIGGERS:
            raise InvalidInputError.field("trigger", f"must be one of {', '.join(sorted(EXTERNAL_TRIGGERS))}")
        if actor.api_key_workflow_id:
            # Such a key may run its one workflow; running arbitrary code as its user is broader.
            raise PermissionDeniedError("This API key is limited to one workflow and cannot start notebook runs.")
        await self.require_author(actor)
        clean_name = (_text(name, "name", MAX_NAME_LENGTH, required=True) or "").strip()
        if not clean_name:
            raise InvalidInputError.field("name", "is required")
        if kind not in KINDS:
            raise InvalidInputError.field("kind", f"must be one of {', '.join(KINDS)}")
        if not isinstance(timeout_seconds, int) or isinstance(timeout_seconds, bool):
            raise InvalidInputError.field("timeout_seconds", "must be a whole number of seconds")
        if not 1 <= timeout_seconds <= MAX_TIMEOUT_SECONDS:
            raise InvalidInputError.field("timeout_seconds", f"must be between 1 and {MAX_TIMEOUT_SECONDS}")
        if params is not None and not isinstance(params, dict):
            raise InvalidInputError.field("params", "must be an object of parameter values")
        if not isinstance(params_schema, dict) or params_schema.get("type", "object") != "object":
            raise InvalidInputError.field("params_schema", "must be the JSON schema object of the parameters")
        try:
            model = model_from_json_schema(params_schema, name=f"{clean_name}_parameters")
        except Exception as exc:  # a hand-written schema may be anything
            raise InvalidInputError.field("params_schema", f"cannot be used for validation: {exc}") from None
        try:
            validated = validate_parameters(model, params)
        except ValidationError as exc:
            raise InvalidInputError(str(exc), exc.errors) from None
        executions = ExecutionService(self.session)
        org_id = await executions._target_org(actor, org)
        token = new_execution_token()
        now = utcnow()
        execution = Execution(
            # The id a published workflow of this name gets: history lines up before and after publishing.
            workflow_id=stable_workflow_id(kind, clean_name),
            workflow_name=clean_name,
            kind=kind,
            organization_id=org_id,
            executed_by=actor.user_id,
            executed_by_name=actor.email,
            trigger=trigger,
            is_function_key=actor.is_function_key,
            api_key_id=actor.api_key_id,
            status=ExecutionStatus.RUNNING.value,
            input_data=validated.model_dump(mode="json"),
            timeout_seconds=timeout_seconds,
            started_at=now,
            sdk_token_hash=hash_token(token),
        )
        self.session.add(execution)
        await self.session.flush()
        context = await executions.context_for(execution, actor=actor)
        return execution, token, context

    async def require_author(self, actor: Actor) -> None:
        """Refuse callers who may not run their own code as an execution (notebook runs).

        Raises:
            PermissionDeniedError: Neither a platform admin nor holding a role that grants authoring.
        """
        if actor.is_superuser or await grants_authoring(self.session, actor.user_id):
            return
        raise PermissionDeniedError(
            "Only platform admins and workflow authors may start notebook runs: ask a platform admin for a "
            "role that grants authoring (can_author)."
        )

    async def session_context(self, actor: Actor) -> ExecutionContextView:
        """The context fields of the caller outside any run (what a connected notebook shows as ``context``).

        ``execution_id`` is empty: nothing runs yet.
        """
        org = await OrganizationService(self.session).cached(actor.acting_org_id)
        return {
            "user_id": actor.user_id,
            "email": actor.email,
            "name": actor.name,
            "org_id": org.id if org else None,
            "org_name": org.name if org else None,
            "organization": {"id": org.id, "name": org.name, "is_active": org.is_active, "domain": org.domain}
            if org
            else None,
            "scope": org.id if org else "GLOBAL",
            "execution_id": "",
            "is_platform_admin": actor.is_superuser,
            "is_function_key": actor.is_function_key,
        }

    async def _running_of(self, actor: Actor, execution_id: str) -> Execution:
        execution = await ExecutionService(self.session).get(actor, execution_id)
        if execution.trigger not in EXTERNAL_TRIGGERS:
            # Pool executions are reported by the engine only.
            raise NotFoundError(f"Notebook run {execution_id!r} not found.")
        if execution.executed_by != actor.user_id:
            raise PermissionDeniedError("Only the user who started a notebook run may report its logs and end.")
        if execution.status in TERMINAL:
            raise ConflictError(f"Execution {execution_id!r} has already ended ({execution.status}).")
        return execution

    async def add_logs(
        self, actor: Actor, execution_id: str, lines: Any, limits: LogLimits | None = None
    ) -> builtins.list[dict[str, Any]]:
        """Store log lines of a running notebook run; returns the stored rows (with their ``seq``).

        Args:
            actor: The user who started the run.
            execution_id: The run.
            lines: ``[{"level", "message", "logger"?, "timestamp"?}]``, in order.
            limits: The cap on the run's stored log (default: the settings' defaults); lines past it
                are dropped and counted by marker lines (:mod:`app.services.executions.log_limits`).

        Raises:
            InvalidInputError: Naming the first bad line and field.
            ConflictError: The run has ended.
        """
        if not isinstance(lines, list):
            raise InvalidInputError.field("lines", "must be a list of log lines")
        if len(lines) > MAX_LINES_PER_CALL:
            raise InvalidInputError.field("lines", f"at most {MAX_LINES_PER_CALL} lines per call")
        parsed = [self._line(index, line) for index, line in enumerate(lines)]
        await self._running_of(actor, execution_id)
        if not parsed:
            return []
        # Secrets this run read through bifrost.config are masked before storing or streaming.
        entries = [
            (timestamp, level, logger, redaction.redact_text(execution_id, message) or "")
            for timestamp, level, logger, message in parsed
        ]
        return await ExecutionService(self.session).add_capped_logs(execution_id, entries, limits or LogLimits())

    @staticmethod
    def _line(index: int, line: Any) -> tuple[datetime, str, str, str]:
        where = f"lines.{index}"
        if not isinstance(line, dict):
            raise InvalidInputError.field(where, "must be an object with level and message")
        level = str(line.get("level") or "INFO").upper()
        if level not in LEVELS:
            raise InvalidInputError.field(f"{where}.level", f"must be one of {', '.join(sorted(LEVELS))}")
        message = line.get("message")
        if not isinstance(message, str):
            raise InvalidInputError.field(f"{where}.message", "must be text")
        logger = _text(line.get("logger"), f"{where}.logger", 200) or ""
        stamp = line.get("timestamp")
        timestamp = utcnow() if stamp is None else _aware_datetime(stamp)
        if timestamp is None:
            raise InvalidInputError.field(f"{where}.timestamp", "must be an ISO date-time with a time zone")
        return timestamp, level, _clean(logger), _clean(message)

    async def finish(
        self,
        actor: Actor,
        execution_id: str,
        *,
        status: Any,
        result: Any = None,
        error_message: Any = None,
        error_type: Any = None,
        traceback: Any = None,
        user_error: Any = False,
    ) -> Execution:
        """Record the end of a notebook run and expire its SDK token.

        Raises:
            InvalidInputError: Unknown status or bad text fields.
            ConflictError: The run has ended already (e.g. the platform timed it out).
        """
        if status not in END_STATUSES:
            raise InvalidInputError.field("status", f"must be one of {', '.join(END_STATUSES)}")
        if not isinstance(user_error, bool):
            raise InvalidInputError.field("user_error", "must be true or false")
        message = _text(error_message, "error_message", MAX_LOG_CHARS, strict=False)
        kind = _text(error_type, "error_type", 200)
        trace = _text(traceback, "traceback", 10 * MAX_LOG_CHARS, strict=False)
        if status != ExecutionStatus.COMPLETED.value and not message:
            raise InvalidInputError.field("error_message", f"is required when the status is {status}")
        execution = await self._running_of(actor, execution_id)
        now = utcnow()
        started = execution.started_at or now
        await ExecutionService(self.session).finish(
            execution_id,
            status=status,
            result=redaction.redact_json(execution_id, result) if status == ExecutionStatus.COMPLETED.value else None,
            error_message=redaction.redact_text(execution_id, _clean(message)) if message else None,
            error_type=kind,
            traceback=redaction.redact_text(execution_id, _clean(trace)) if trace else None,
            user_error=user_error,
            completed_at=now,
            duration_ms=max(0, int((now - started).total_seconds() * 1000)),
        )
        redaction.forget(execution_id)
        external_tallies.forget(execution_id)
        await self.session.refresh(execution)
        return execution

    async def expire(self, execution_id: str) -> bool:
        """End a notebook run whose runner never reported back (kernel died); True if it was still running."""
        execution = await self.session.get(Execution, execution_id)
        if execution is None or execution.trigger not in EXTERNAL_TRIGGERS or execution.status in TERMINAL:
            return False
        redaction.forget(execution_id)
        external_tallies.forget(execution_id)
        return await ExecutionService(self.session).finish(
            execution_id,
            status=ExecutionStatus.FAILED.value,
            error_message=(
                f"The notebook run did not report its end within its timeout ({execution.timeout_seconds} s); "
                "the kernel may have been stopped."
            ),
            error_type="TimeoutError",
            user_error=True,
        )
