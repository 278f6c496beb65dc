"""Chat turn streams across servers: a turn runs on the server that started it, viewers may be on any.

The server running a turn publishes each event on the event bus under ``turn:<id>``. A browser that
reconnects to another server (a load balancer's choice) gets a mirror of the turn there: that server
subscribes to ``turn:<id>``, asks every server (``#turns``) for the turn, and the one running it answers
with who owns it and every event so far, then the live ones follow in order. With one server there is no
bus and nothing here runs. Uses only the bus protocol below (the engine's ``EventHub`` has it).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any, Protocol

from app.services.chat.turn_stream import Turn

log = logging.getLogger(__name__)

REQUESTS = "#turns"  # the bus key of "who runs turn X? send me its events after N"
ANSWER_SECONDS = 2.0  # how long a server waits for the one running the turn to answer
IDLE_SECONDS = 600.0  # a mirror whose origin went silent this long ends (the origin server stopped)
TOO_LARGE = "(Part of this reply could not be streamed to this server; reload the conversation to see it.)"


class TurnBus(Protocol):
    """What the relay needs of the event bus."""

    def publish(self, execution_id: str, event: dict[str, Any]) -> None: ...
    def subscribe(self, execution_id: str) -> asyncio.Queue[dict[str, Any]]: ...
    def unsubscribe(self, execution_id: str, queue: asyncio.Queue[dict[str, Any]]) -> None: ...
    def on_remote(self, key: str, callback: Callable[[dict[str, Any]], None]) -> None: ...


def _key(turn_id: str) -> str:
    return f"turn:{turn_id}"


class TurnRelay:
    """Shares this server's turns on the bus and mirrors other servers' turns here.

    Args:
        bus: The event bus shared by every server.
        turns: The runtime's turns by id (its own and mirrors), read when another server asks.
    """

    def __init__(self, bus: TurnBus, turns: dict[str, Turn]) -> None:
        self.bus = bus
        self.turns = turns
        self._tasks: set[asyncio.Task[None]] = set()
        bus.on_remote(REQUESTS, self._asked)

    def share(self, turn: Turn) -> None:
        """Publish every later event of ``turn`` (one started here) for viewers on other servers."""
        key = _key(turn.id)
        turn.publish = lambda event: self.bus.publish(key, event)

    def _asked(self, request: dict[str, Any]) -> None:
        turn = self.turns.get(str(request.get("turn_id")))
        if turn is None or turn.mirror:
            return  # not ours: the server running it answers
        after = int(request.get("after", -1))
        key = _key(turn.id)
        self.bus.publish(key, {"type": "_owner", "seq": -1, "user_id": turn.user_id, "conv": turn.conversation_id})
        for event in list(turn.events):
            if event["seq"] > after:
                self.bus.publish(key, event)

    async def mirror(self, turn_id: str) -> Turn | None:
        """A live copy of another server's turn, or None when no server answers for it in time."""
        key = _key(turn_id)
        queue = self.bus.subscribe(key)
        self.bus.publish(REQUESTS, {"turn_id": turn_id, "after": -1})
        try:
            async with asyncio.timeout(ANSWER_SECONDS):
                while (owner := await queue.get())["type"] != "_owner":
                    pass  # live events from before the answer: the answer's replay repeats them in order
        except TimeoutError:
            self.bus.unsubscribe(key, queue)
            return None
        turn = Turn(turn_id, str(owner["conv"]), str(owner["user_id"]))
        turn.mirror = True
        task = asyncio.create_task(self._feed(turn, key, queue), name=f"chat-turn-mirror-{turn_id}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return turn

    async def _feed(self, turn: Turn, key: str, queue: asyncio.Queue[dict[str, Any]]) -> None:
        asked_after: int | None = None
        try:
            while not turn.done:
                try:
                    event = await asyncio.wait_for(queue.get(), IDLE_SECONDS)
                except TimeoutError:
                    turn.take({"seq": len(turn.events), "type": "notice", "content": TOO_LARGE})
                    turn.take({"seq": len(turn.events), "type": "done"})
                    break
                seq = int(event.get("seq", -1))
                if event.get("type") == "_owner" or seq < len(turn.events):
                    continue  # an answer to another mirror's question, or a repeat
                if seq > len(turn.events):
                    missing = len(turn.events)
                    if asked_after != missing - 1:  # events were lost on the way: ask once for them again
                        asked_after = missing - 1
                        self.bus.publish(REQUESTS, {"turn_id": turn.id, "after": asked_after})
                        continue
                    while len(turn.events) < seq:  # still missing after asking: too large for the bus
                        turn.take({"seq": len(turn.events), "type": "notice", "content": TOO_LARGE})
                turn.take(event)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("chat: mirroring turn %s failed", turn.id)
            with contextlib.suppress(Exception):
                turn.take({"seq": len(turn.events), "type": "done"})
        finally:
            self.bus.unsubscribe(key, queue)
