"""The live side of notebook runs: events for ``/stream`` viewers, and the platform's own deadline.

The database side is :class:`app.services.executions.external_runs.ExternalRunService`. This module publishes
the same ``log`` / ``status`` events the dispatcher publishes for pool executions (so the SSE stream,
``bifrost run`` and pages follow a notebook run like any other), and ends a run whose kernel never
reports back once its timeout and a grace period have passed, which also expires its SDK token.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from typing import TYPE_CHECKING, Any

from app.db import transaction
from app.services.executions.external_runs import ExternalRunService

if TYPE_CHECKING:
    from app.engine.platform import Platform

log = logging.getLogger(__name__)

GRACE_SECONDS = 30.0
"""How long past its timeout a run may still report its end (the kernel enforces the timeout itself)."""

_trackers: weakref.WeakKeyDictionary[Platform, ExternalRunTracker] = weakref.WeakKeyDictionary()


class ExternalRunTracker:
    """Publishes events of notebook runs and expires the ones that outlive their timeout."""

    def __init__(self, platform: Platform) -> None:
        self.sessions = platform.sessions
        self.hub = platform.hub
        self._deadlines: dict[str, asyncio.TimerHandle] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    def started(self, execution_id: str, timeout_seconds: int) -> None:
        """A run was written RUNNING: tell viewers, and arm its deadline."""
        self.hub.publish(execution_id, {"type": "status", "status": "Running"})
        loop = asyncio.get_running_loop()
        self._deadlines[execution_id] = loop.call_later(
            timeout_seconds + GRACE_SECONDS, self._expire_soon, execution_id
        )

    def logged(self, rows: list[dict[str, Any]]) -> None:
        """Stored log lines: stream them to live viewers."""
        for row in rows:
            self.hub.publish(row["execution_id"], {"type": "log", **row, "timestamp": row["timestamp"].isoformat()})

    def finished(self, execution: Any) -> None:
        """A run reported its end: disarm the deadline and tell viewers it is over."""
        handle = self._deadlines.pop(execution.id, None)
        if handle is not None:
            handle.cancel()
        self.hub.publish(
            execution.id,
            {
                "type": "status",
                "status": execution.status,
                "done": True,
                "error_message": execution.error_message if execution.user_error else None,
                "duration_ms": execution.duration_ms,
            },
        )

    def _expire_soon(self, execution_id: str) -> None:
        self._deadlines.pop(execution_id, None)
        task = asyncio.get_running_loop().create_task(self._expire(execution_id), name=f"expire-{execution_id}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _expire(self, execution_id: str) -> None:
        try:
            async with transaction(self.sessions) as session:
                ended = await ExternalRunService(session).expire(execution_id)
        except Exception:
            log.exception("notebook run %s: could not end it after its timeout", execution_id)
            return
        if ended:
            self.hub.publish(execution_id, {"type": "status", "status": "Failed", "done": True})


def tracker_for(platform: Platform) -> ExternalRunTracker:
    """The tracker of ``platform`` (created on first use)."""
    tracker = _trackers.get(platform)
    if tracker is None:
        tracker = _trackers[platform] = ExternalRunTracker(platform)
    return tracker
