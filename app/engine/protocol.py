"""Messages exchanged between the worker pool (parent) and its worker processes.

The wire format is JSON lines: one JSON object per line, each with a ``type``.
Parent → worker: ``job``. Worker → parent: ``ready`` (once, after the
workspace is imported), then per job ``started``, any number of ``log`` and
exactly one ``result``.

This module is imported by the worker, so it must stay stdlib-only.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

STATUS_COMPLETED = "Completed"
STATUS_FAILED = "Failed"
STATUS_CANCELLED = "Cancelled"
NOT_STARTED = "NotStarted"
MEMORY_LIMIT_EXCEEDED = "MemoryLimitExceeded"
"""``error_type`` of a run that needed more memory than ``BIFROST_RUN_MEMORY_MB``."""
"""``error_type`` of a job the pool dropped before any worker read it (it may run again later)."""


def utcnow() -> datetime:
    """Return the current time as an aware UTC datetime."""
    return datetime.now(UTC)


def encode_message(message: dict[str, Any]) -> bytes:
    """Encode one protocol message as a JSON line (UTF-8, newline-terminated).

    Args:
        message: A JSON-able dict with a ``type`` key.

    Returns:
        The bytes to write, ending with ``\\n``.
    """
    # JSON escapes newlines inside strings, so one message is one line; ensure_ascii
    # also escapes lone surrogates (undecodable file names), which UTF-8 cannot encode.
    return json.dumps(message, separators=(",", ":"), ensure_ascii=True).encode() + b"\n"


def decode_message(line: bytes | str) -> dict[str, Any]:
    """Decode one JSON line into a message dict.

    Raises:
        ValueError: If the line is not a JSON object.
    """
    message = json.loads(line)
    if not isinstance(message, dict):
        raise ValueError(f"protocol message must be a JSON object, got {type(message).__name__}")
    return message


def _dt(value: str | datetime | None) -> datetime | None:
    if value is None or isinstance(value, datetime):
        return value
    return datetime.fromisoformat(value)


@dataclass
class Job:
    """One execution to run in a worker.

    Attributes:
        execution_id: Id of the execution (also used to cancel it).
        kind: ``"workflow"`` or ``"data_provider"``.
        name: Registered name of the workflow or data provider.
        params: Raw parameters; the worker validates and coerces them.
        context: ``bifrost.types.ExecutionContext`` fields (``execution_id``
            defaults to the job's).
        sdk_url: Base URL the SDK calls (``/api/sdk/v1`` is appended).
        sdk_token: Bearer token scoped to this execution.
        timeout_seconds: Hard limit enforced by the pool from outside the worker.
    """

    execution_id: str
    kind: str
    name: str
    params: dict[str, Any] = field(default_factory=dict)
    context: dict[str, Any] = field(default_factory=dict)
    sdk_url: str | None = None
    sdk_token: str | None = None
    timeout_seconds: float = 1800.0

    def to_message(self) -> dict[str, Any]:
        """Return the ``job`` protocol message."""
        # Explicit fields: dataclasses.asdict deep-copies, which is slow on the hot path.
        return {
            "type": "job",
            "execution_id": self.execution_id,
            "kind": self.kind,
            "name": self.name,
            "params": self.params,
            "context": self.context,
            "sdk_url": self.sdk_url,
            "sdk_token": self.sdk_token,
            "timeout_seconds": self.timeout_seconds,
        }

    @classmethod
    def from_message(cls, message: dict[str, Any]) -> Job:
        """Build a job from a ``job`` protocol message."""
        return cls(
            execution_id=message["execution_id"],
            kind=message["kind"],
            name=message["name"],
            params=message.get("params") or {},
            context=message.get("context") or {},
            sdk_url=message.get("sdk_url"),
            sdk_token=message.get("sdk_token"),
            timeout_seconds=float(message.get("timeout_seconds") or 1800.0),
        )


@dataclass
class JobResult:
    """How one execution ended.

    Attributes:
        execution_id: Id of the execution.
        status: ``"Completed"``, ``"Failed"`` or ``"Cancelled"``.
        result: JSON-able return value (None unless Completed).
        error_message: Message to show; for ``UserError`` exactly its text.
        error_type: Exception class name, or ``TimeoutError`` / ``WorkerLost`` /
            ``Cancelled`` / ``NotFound`` / ``ValidationError`` for platform-made failures.
        traceback: Full traceback text for admins (None when there is none).
        user_error: True when the message is meant for the person who ran it.
        started_at: When the worker started the job (UTC).
        completed_at: When it ended (UTC).
        duration_ms: ``completed_at - started_at`` in milliseconds.
    """

    execution_id: str
    status: str
    result: Any = None
    error_message: str | None = None
    error_type: str | None = None
    traceback: str | None = None
    user_error: bool = False
    started_at: datetime = field(default_factory=utcnow)
    completed_at: datetime = field(default_factory=utcnow)
    duration_ms: int = 0

    def to_message(self) -> dict[str, Any]:
        """Return the ``result`` protocol message (datetimes as ISO strings)."""
        return {
            "type": "result",
            "execution_id": self.execution_id,
            "status": self.status,
            "result": self.result,
            "error_message": self.error_message,
            "error_type": self.error_type,
            "traceback": self.traceback,
            "user_error": self.user_error,
            "started_at": self.started_at.isoformat(),
            "completed_at": self.completed_at.isoformat(),
            "duration_ms": self.duration_ms,
        }

    @classmethod
    def from_message(cls, message: dict[str, Any]) -> JobResult:
        """Build a result from a ``result`` protocol message."""
        return cls(
            execution_id=message["execution_id"],
            status=message["status"],
            result=message.get("result"),
            error_message=message.get("error_message"),
            error_type=message.get("error_type"),
            traceback=message.get("traceback"),
            user_error=bool(message.get("user_error")),
            started_at=_dt(message["started_at"]) or utcnow(),
            completed_at=_dt(message["completed_at"]) or utcnow(),
            duration_ms=int(message.get("duration_ms") or 0),
        )


@dataclass
class LogRecord:
    """One captured log line of an execution.

    Attributes:
        execution_id: The execution it belongs to; None for output produced
            outside any execution (e.g. while the workspace was imported).
        timestamp: When it was produced (UTC).
        level: ``DEBUG`` … ``CRITICAL``; ``print`` output is ``INFO``, stderr ``ERROR``.
        logger: Logger name; ``stdout`` / ``stderr`` for printed output.
        message: The formatted message (with the traceback when one was logged).
    """

    execution_id: str | None
    timestamp: datetime
    level: str
    logger: str
    message: str

    def to_message(self) -> dict[str, Any]:
        """Return the ``log`` protocol message."""
        return {
            "type": "log",
            "execution_id": self.execution_id,
            "timestamp": self.timestamp.isoformat(),
            "level": self.level,
            "logger": self.logger,
            "message": self.message,
        }

    @classmethod
    def from_message(cls, message: dict[str, Any]) -> LogRecord:
        """Build a record from a ``log`` protocol message."""
        return cls(
            execution_id=message.get("execution_id"),
            timestamp=_dt(message["timestamp"]) or utcnow(),
            level=message["level"],
            logger=message["logger"],
            message=message["message"],
        )


@dataclass
class ScanResult:
    """What a workspace import found.

    Attributes:
        workflows: ``WorkflowDefinition.to_metadata()`` dicts, ``source_file``
            relative to the workspace.
        data_providers: Same, for data providers.
        errors: ``{"file", "error", "traceback"}`` per file that failed to
            import and per duplicated name.
        skip: Files warm workers must not import (they failed, ended or hung the scan).
    """

    workflows: list[dict[str, Any]] = field(default_factory=list)
    data_providers: list[dict[str, Any]] = field(default_factory=list)
    errors: list[dict[str, Any]] = field(default_factory=list)
    skip: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON-able form."""
        return {"workflows": self.workflows, "data_providers": self.data_providers, "errors": self.errors}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ScanResult:
        """Build a scan result from :meth:`to_dict` output (extra keys are ignored)."""
        return cls(
            workflows=list(data.get("workflows") or []),
            data_providers=list(data.get("data_providers") or []),
            errors=list(data.get("errors") or []),
        )

    @property
    def definitions(self) -> list[dict[str, Any]]:
        """Workflows and data providers together (what ``WorkflowService.sync`` takes)."""
        return [*self.workflows, *self.data_providers]
