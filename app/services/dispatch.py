"""The narrow boundary between the submit service and whatever runs executions.

``app.engine`` provides the local warm-worker implementation; a distributed
queue can implement the same protocol later without touching services.
"""

from __future__ import annotations

from typing import Any, Protocol


class Dispatcher(Protocol):
    """Runs PENDING executions somewhere else than the caller."""

    async def dispatch(self, execution_id: str, context: dict[str, Any]) -> None:
        """Start (or queue) the execution. Must return quickly."""

    async def cancel(self, execution_id: str) -> bool:
        """Stop a running or queued execution; True when it was found."""

    async def wait(self, execution_id: str, timeout: float | None = None) -> bool:
        """Wait until the execution has ended; False on timeout."""
