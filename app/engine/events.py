"""Publish/subscribe of live events (run status, log lines, chat turns, cache invalidations), across servers.

The dispatcher, external runs and chat turns publish; SSE handlers subscribe. Events are dicts; execution
events have a ``type`` of ``status`` or ``log``, and the last one of an execution has ``done: True``.

One server (the embedded default) delivers in-process only. Several servers behind a load balancer share a
Litestar channels backend (Postgres LISTEN/NOTIFY or Redis pub/sub, :mod:`app.engine.event_backends`): every
event is delivered here at once and queued for the bus; each server listens on one shared channel from the
start and hands on only the events of keys it has subscribers or listeners for (see docs/deploy.md). It also
keeps the recent log lines of runs that have not ended (:mod:`app.engine.recent_logs`), so a viewer that joins
a run running on another node gets the lines that node published but has not stored yet.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import uuid
from collections import defaultdict, deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from app.engine.recent_logs import DONE_MARK, LOG_MARK, RecentLogs, is_run_key

if TYPE_CHECKING:
    from litestar.channels import ChannelsBackend

log = logging.getLogger(__name__)

_QUEUE_LIMIT = 10_000
# Events waiting for the bus: beyond this many a burst drops log lines (viewers read them back from the
# database by their seq); the ends of runs and anything that is not a log line are always kept.
_OUTBOX_LIMIT = 50_000
CHANNEL = "bifrost_events"
_WATCH_SECONDS = 2.0  # how often the listening connection is checked
TRUNCATED = " … [cut in the live view of other servers: {n} characters in all; the stored line is whole]"


class EventHub:
    """Fan-out of events per key (an execution id, ``turn:<id>``...) to any number of subscriber queues.

    Args:
        backend: A Litestar channels backend shared by every server; None delivers in this process only.
        max_payload: The largest message the backend carries, in bytes (Postgres NOTIFY: under 8,000).
        channel: The one channel every server listens on.
        keep_recent_logs: Keep the recent log lines other servers and nodes publish (a server's viewers
            join runs late; a node, which has none, may pass False). Only with a backend.
    """

    def __init__(
        self,
        backend: ChannelsBackend | None = None,
        *,
        max_payload: int = 7_900,
        channel: str = CHANNEL,
        keep_recent_logs: bool = True,
    ) -> None:
        self._subscribers: dict[str, set[asyncio.Queue[dict[str, Any]]]] = defaultdict(set)
        self._listeners: dict[str, list[Callable[[dict[str, Any]], None]]] = defaultdict(list)
        self.backend = backend
        self.channel = channel
        self.max_payload = max_payload
        self.node = uuid.uuid4().hex[:12]  # skips its own messages when they come back from the bus
        self._outbox: deque[tuple[str, str]] = deque()
        self._dropped = 0
        self._wake: asyncio.Event | None = None
        self._idle: asyncio.Event | None = None  # set whenever the outbox has been sent
        self._tasks: list[asyncio.Task[None]] = []
        self._batch = 0
        self.recent = RecentLogs() if backend is not None and keep_recent_logs else None
        self._run_end: list[Callable[[str], None]] = []

    @property
    def distributed(self) -> bool:
        """Whether events also travel to other servers."""
        return self.backend is not None

    def subscribe(self, execution_id: str) -> asyncio.Queue[dict[str, Any]]:
        """Return a queue that receives every later event of ``execution_id`` (published on any server)."""
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

    def recent_logs(self, execution_id: str) -> list[dict[str, Any]]:
        """Log lines of ``execution_id`` other processes published lately and it has not ended since, by seq.

        As the dispatcher buffers them (``timestamp`` a datetime); empty in-process (the dispatcher holds them).
        """
        return self.recent.lines(execution_id) if self.recent is not None else []

    def on_run_end(self, callback: Callable[[str], None]) -> None:
        """Call ``callback(execution_id)`` when another process publishes the end of a run (stored by then)."""
        self._run_end.append(callback)

    def on_remote(self, key: str, callback: Callable[[dict[str, Any]], None]) -> None:
        """Call ``callback(event)`` for every event of ``key`` that another server publishes (cache drops...)."""
        self._listeners[key].append(callback)

    def publish(self, execution_id: str, event: dict[str, Any]) -> None:
        """Deliver ``event`` to current subscribers here and queue it for other servers; never blocks.

        A subscriber too slow to keep up loses events, never blocks others.
        """
        self._deliver(execution_id, event)
        if self.backend is None:
            return
        if self.recent is not None and event.get("done"):
            self.recent.end(execution_id)  # a run this process ended (a lost node's, a cancel): it is stored
        if len(self._outbox) >= _OUTBOX_LIMIT and event.get("type") == "log":
            self._dropped += 1
            return
        data = json.dumps(event, ensure_ascii=False, default=str)
        if not data.isascii():
            # A lone surrogate cannot go out as UTF-8: replace it here rather than fail the whole batch later.
            data = data.encode("utf-8", errors="replace").decode("utf-8")
        self._outbox.append((execution_id, data))
        if self._wake is not None:
            self._wake.set()

    def _deliver(self, key: str, event: dict[str, Any]) -> None:
        for queue in self._subscribers.get(key, ()):
            try:
                queue.put_nowait(event)
            except asyncio.QueueFull:
                pass

    # ----- the bus ------------------------------------------------------------------------------------
    async def start(self) -> None:
        """Connect to the bus and listen (no-op in-process). Idempotent."""
        if self.backend is None or self._tasks:
            return
        await self.backend.on_startup()
        await self.backend.subscribe([self.channel])
        log.info("events: shared with other servers through %s", type(self.backend).__name__)
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        if self._outbox:
            self._wake.set()
        self._tasks = [
            asyncio.create_task(self._send_loop(), name="event-hub-send"),
            asyncio.create_task(self._receive_loop(), name="event-hub-receive"),
            asyncio.create_task(self._watch_loop(), name="event-hub-watch"),
        ]

    async def stop(self, flush_seconds: float = 2.0) -> None:
        """Send what is queued (for at most ``flush_seconds``), then disconnect."""
        if self.backend is None or not self._tasks:
            return
        if self._outbox and self._idle is not None:
            self._idle.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._idle.wait(), flush_seconds)
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks = []
        self._wake = self._idle = None
        with contextlib.suppress(Exception):
            await self.backend.unsubscribe([self.channel])
        with contextlib.suppress(Exception):
            await self.backend.on_shutdown()

    async def _send_loop(self) -> None:
        assert self.backend is not None and self._wake is not None
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._outbox:
                payload: bytes | None = None
                try:
                    payload = self._take_payload()
                    if payload is None:
                        continue
                    await self.backend.publish(payload, [self.channel])
                except Exception:  # the bus is down (or one batch is bad): this batch is lost, the loop goes on
                    log.exception("events: could not publish %d bytes to the bus", len(payload or b""))
                    await asyncio.sleep(0.5)
            if self._idle is not None:
                self._idle.set()
            if self._dropped:
                log.warning("events: %d log event(s) were not sent to other servers (burst)", self._dropped)
                self._dropped = 0

    def _take_payload(self) -> bytes | None:
        """As many queued events as fit in one message: ``node batch`` then ``key<TAB>json`` per line."""
        self._batch += 1
        head = f"{self.node} {self._batch}"  # unique: Postgres folds identical notifications of one transaction
        parts = [head]
        size = len(head.encode())
        while self._outbox:
            key, data = self._outbox[0]
            line = f"{key}\t{data}"
            length = len(line.encode()) + 1
            if size + length > self.max_payload:
                if len(parts) > 1:
                    break
                self._outbox.popleft()
                shrunk = self._shrink(key, data, self.max_payload - size - 1)
                if shrunk is None:
                    continue
                line, length = shrunk, len(shrunk.encode()) + 1
            else:
                self._outbox.popleft()
            parts.append(line)
            size += length
        return "\n".join(parts).encode() if len(parts) > 1 else None

    def _shrink(self, key: str, data: str, room: int) -> str | None:
        """An event larger than ``room`` bytes: a log line is cut with a marker; anything else is dropped."""
        event = json.loads(data)
        message = event.get("message")
        if event.get("type") != "log" or not isinstance(message, str):
            log.warning("events: a %s event of %s is too large for the bus; not sent", event.get("type"), key)
            return None
        marker = TRUNCATED.format(n=len(message))

        def line(keep: int) -> str:
            cut = {**event, "message": message[:keep] + marker, "truncated": True}
            return f"{key}\t{json.dumps(cut, ensure_ascii=False, default=str)}"

        low, high = 0, len(message)  # the longest start of the message that fits
        while low < high:
            middle = (low + high + 1) // 2
            if len(line(middle).encode()) <= room:
                low = middle
            else:
                high = middle - 1
        result = line(low)
        return result if len(result.encode()) <= room else None

    async def _watch_loop(self) -> None:
        """Listen again when the listening connection broke (a database restart): LISTEN ends with it."""
        assert self.backend is not None
        healthy = getattr(self.backend, "healthy", None)
        if healthy is None:
            return  # redis-py's pub/sub reconnects and subscribes again by itself
        while True:
            await asyncio.sleep(_WATCH_SECONDS)
            if healthy():
                continue
            log.warning("events: the bus connection was lost; connecting again")
            try:
                with contextlib.suppress(Exception):
                    await self.backend.on_shutdown()
                await self.backend.on_startup()
                await self.backend.subscribe([self.channel])
            except Exception:
                log.exception("events: could not reconnect to the bus; trying again in %s s", _WATCH_SECONDS)
                continue
            receiver = self._tasks[1]
            receiver.cancel()  # it waits on the old connection's queue
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await receiver
            self._tasks[1] = asyncio.create_task(self._receive_loop(), name="event-hub-receive")

    async def _receive_loop(self) -> None:
        assert self.backend is not None
        while True:
            try:
                async for _channel, payload in self.backend.stream_events():
                    self.receive(payload)
            except asyncio.CancelledError:
                raise
            except Exception:  # a broken message or connection must not end live events for good
                log.exception("events: reading the bus failed; listening again")
                await asyncio.sleep(0.5)

    def _run_ended(self, execution_id: str) -> None:
        # Before the end reaches this server's viewers: one who sees it finds the run's token refused here.
        if self.recent is not None:
            self.recent.end(execution_id)
        for callback in self._run_end:
            try:
                callback(execution_id)
            except Exception:
                log.exception("events: a run-end listener failed for %s", execution_id)

    def receive(self, payload: bytes | str) -> int:
        """Hand one bus message's events to local subscribers and listeners; returns how many were for us.

        Only events whose key has a subscriber or listener here are decoded, so a server pays little for
        the runs nobody watches on it.
        """
        text = payload.decode() if isinstance(payload, bytes) else payload
        head, _, body = text.partition("\n")
        if head.split(" ", 1)[0] == self.node or not body:
            return 0
        handled = 0
        for line in body.split("\n"):
            key, _, data = line.partition("\t")
            if is_run_key(key):  # sorted undecoded: most of these have nobody watching here
                if LOG_MARK in data:
                    if self.recent is not None:
                        self.recent.add(key, data)
                elif DONE_MARK in data:
                    self._run_ended(key)
            listeners = self._listeners.get(key)
            if key not in self._subscribers and not listeners:
                continue
            event = json.loads(data)
            handled += 1
            self._deliver(key, event)
            for callback in listeners or ():
                try:
                    callback(event)
                except Exception:
                    log.exception("events: a listener of %s failed", key)
        return handled
