"""In-process publish/subscribe of execution events (status changes, log lines) for live streaming.

The dispatcher publishes; SSE handlers subscribe. Events are dicts with a
``type`` of ``status`` or ``log``; the last event of an execution has ``done: True``.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from typing import Any

_QUEUE_LIMIT = 10_000


class EventHub:
    """Fan-out of events per execution id to any number of subscriber queues."""

    def __init__(self) -> None:
        self._subscribers: dict[str, set[asyncio.Queue[dict[str, Any]]]] = defaultdict(set)

    def subscribe(self, execution_id: str) -> asyncio.Queue[dict[str, Any]]:
        """Return a queue that receives every later event of ``execution_id``."""
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(maxsize=_QUEUE_LIMIT)
        self._subscribers[execution_id].add(queue)
        return queue

    def unsubscribe(self, execution_id: str, queue: asyncio.Queue[dict[str, Any]]) -> None:
        """Stop delivering to ``queue``."""
        subscribers = self._subscribers.get(execution_id)
        if subscribers is not None:
            subscribers.discard(queue)
            if not subscribers:
                del self._subscribers[execution_id]

    def publish(self, execution_id: str, event: dict[str, Any]) -> None:
        """Deliver ``event`` to current subscribers; a subscriber too slow to keep up loses events, never blocks others."""
        for queue in self._subscribers.get(execution_id, ()):
            try:
                queue.put_nowait(event)
            except asyncio.QueueFull:
                pass
