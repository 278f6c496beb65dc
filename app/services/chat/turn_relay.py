"""Chat turn streams across servers: a turn runs on the server that started it, viewers may be on any.

The server running a turn publishes each event on the event bus under ``turn:<id>``. A browser that
reconnects to another server (a load balancer's choice) gets a mirror of the turn there: that server
subscribes to ``turn:<id>``, asks every server (``#turns``) for the turn, and the one running it answers
with who owns it and every event so far, then the live ones follow in order. Each server also announces
which conversations have a reply being written (:class:`ActiveTurns`), so one reply at a time per
conversation holds on every server. With one server there is no bus and nothing here runs. Uses only the bus protocol below (the engine's ``EventHub`` has it).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Iterator
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


ACTIVE = "#active-turns"  # the bus key of "conversation C has a reply being written (turn T) / no more"
ANNOUNCE_SECONDS = 20.0  # running turns are announced again this often
FORGET_SECONDS = 60.0  # another server's running turn not announced for this long is over (its server stopped)


class ActiveTurns(dict[str, str]):
    """Conversation id -> the turn writing its reply: this server's, and the other servers' as they announce them.

    Membership and ``get`` see both, so "one reply at a time per conversation" holds across servers and a
    page served here knows a reply is being written elsewhere; setting and popping change this server's
    own entries and announce them (with one server nothing is announced and it is a plain dict).
    """

    def __init__(self) -> None:
        super().__init__()
        self.elsewhere: dict[str, tuple[str, float]] = {}  # conversation -> (turn, when announced)
        self.announce: Callable[[str, str | None], None] | None = None

    def __setitem__(self, conversation_id: str, turn_id: str) -> None:
        super().__setitem__(conversation_id, turn_id)
        if self.announce is not None:
            self.announce(conversation_id, turn_id)

    def pop(self, conversation_id: str, default: Any = None) -> Any:  # type: ignore[override]
        """Drop this server's entry (and announce that the reply is over)."""
        value = super().pop(conversation_id, default)
        if value is not None and self.announce is not None:
            self.announce(conversation_id, None)
        return value

    def _elsewhere(self, conversation_id: str) -> str | None:
        entry = self.elsewhere.get(conversation_id)
        if entry is None:
            return None
        if time.monotonic() - entry[1] > FORGET_SECONDS:
            del self.elsewhere[conversation_id]
            return None
        return entry[0]

    def __contains__(self, conversation_id: object) -> bool:
        return super().__contains__(conversation_id) or (
            isinstance(conversation_id, str) and self._elsewhere(conversation_id) is not None
        )

    def get(self, conversation_id: str, default: Any = None) -> Any:  # type: ignore[override]
        """This server's running turn of the conversation, else another server's, else ``default``."""
        return super().get(conversation_id) or self._elsewhere(conversation_id) or default

    def __iter__(self) -> Iterator[str]:
        own = list(super().__iter__())
        yield from own
        yield from (c for c in list(self.elsewhere) if c not in own and self._elsewhere(c))


class TurnRelay:
    """Shares this server's turns on the bus and mirrors other servers' turns here.

    Args:
        bus: The event bus shared by every server.
        turns: The runtime's turns by id (its own and mirrors), read when another server asks.
    """

    def __init__(self, bus: TurnBus, turns: dict[str, Turn], active: ActiveTurns | None = None) -> None:
        self.bus = bus
        self.turns = turns
        self._tasks: set[asyncio.Task[None]] = set()
        bus.on_remote(REQUESTS, self._asked)
        self.active = active
        if active is not None:
            active.announce = self._announce
            bus.on_remote(ACTIVE, self._announced)
            self._spawn(self._announce_again(), "chat-active-turns")

    def _spawn(self, coroutine: Any, name: str) -> None:
        task = asyncio.get_running_loop().create_task(coroutine, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _announce(self, conversation_id: str, turn_id: str | None) -> None:
        self.bus.publish(ACTIVE, {"conv": conversation_id, "turn": turn_id})

    async def gather_active(self, seconds: float = ANSWER_SECONDS) -> set[str]:
        """Ask every server which conversations have a reply being written; returns them after ``seconds``.

        A server starting up must not take another server's running turns for leftovers of a stop.
        """
        assert self.active is not None
        self.bus.publish(ACTIVE, {"ask": True})
        await asyncio.sleep(seconds)
        return set(self.active)

    def _announced(self, event: dict[str, Any]) -> None:
        assert self.active is not None
        if event.get("ask"):  # a server started: tell it ours
            for conversation_id, turn_id in list(dict.items(self.active)):
                self._announce(conversation_id, turn_id)
            return
        conversation = str(event.get("conv"))
        if event.get("turn"):
            self.active.elsewhere[conversation] = (str(event["turn"]), time.monotonic())
        else:
            self.active.elsewhere.pop(conversation, None)

    async def _announce_again(self) -> None:
        assert self.active is not None
        while True:  # so that another server forgets a turn whose server stopped, and only such a turn
            await asyncio.sleep(ANNOUNCE_SECONDS)
            for conversation_id, turn_id in list(dict.items(self.active)):
                self._announce(conversation_id, turn_id)

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
        self._spawn(self._feed(turn, key, queue), f"chat-turn-mirror-{turn_id}")
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
