"""The narrow boundary between the submit service and whatever runs executions.

``app.engine`` provides the local warm-worker implementation; a distributed
queue can implement the same protocol later without touching services.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol


@dataclass(frozen=True)
class DispatchRequest:
    """Everything needed to run a PENDING execution, so the runner need not read it back.

    Attributes:
        execution_id: The execution row.
        kind: ``workflow`` or ``data_provider``.
        name: Workflow name.
        params: Validated parameters.
        timeout_seconds: Hard limit.
        context: ExecutionContext fields bound in the worker.
    """

    execution_id: str
    kind: str
    name: str
    params: dict[str, Any]
    timeout_seconds: int
    context: dict[str, Any]


class Dispatcher(Protocol):
    """Runs PENDING executions somewhere else than the caller."""

    async def dispatch(self, request: DispatchRequest) -> None:
        """Start (or queue) the execution. Must return quickly."""

    async def cancel(self, execution_id: str) -> bool:
        """Stop a running or queued execution; True when it was found."""

    async def wait(self, execution_id: str, timeout: float | None = None) -> bool:
        """Wait until the execution has ended; False on timeout."""
