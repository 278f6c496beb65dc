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
        sdk_token: Set when the submit claimed the run (see :meth:`Dispatcher.claim`): the
            execution was written RUNNING with this token's hash, so the runner starts it as is.
    """

    execution_id: str
    kind: str
    name: str
    params: dict[str, Any]
    timeout_seconds: int
    context: dict[str, Any]
    sdk_token: str | None = None


class Dispatcher(Protocol):
    """Runs PENDING executions somewhere else than the caller.

    ``approval_expiry_seconds``: how long a run ``AwaitingApproval`` waits before it expires (the
    dispatcher ends expired ones; it never runs a run that waits).
    """

    approval_expiry_seconds: float

    def claim(self) -> str | None:
        """Reserve an immediate start for the execution about to be written.

        Returns an SDK token when a worker is free now: the caller then writes the
        execution RUNNING (with the token's hash) in its INSERT and passes the token in
        :attr:`DispatchRequest.sdk_token`, which saves the separate PENDING → RUNNING write.
        Returns None when the run would queue: the caller writes it PENDING.
        A claim that is not dispatched must be given back with :meth:`release`.
        """

    def release(self, token: str) -> None:
        """Give back a claim whose execution was not written."""

    async def dispatch(self, request: DispatchRequest) -> None:
        """Start (or queue) the execution. Must return quickly."""

    async def cancel(self, execution_id: str) -> bool:
        """Stop a running or queued execution; True when it was found."""

    async def wait(self, execution_id: str, timeout: float | None = None) -> bool:
        """Wait until the execution has ended; False on timeout."""
