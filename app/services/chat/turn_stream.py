"""What a running chat turn produces: its event stream (:class:`Turn`), its text (:class:`TurnWriter`), notices.

Events, in order: ``segment`` ``{index}`` then ``token`` ``{index, content}`` (the assistant's text as the model
writes it), ``tool`` / ``tool_update`` ``{call}``, ``notice`` ``{content}``, and ``done`` last. Followers that
connect late get every event from the start.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.db import transaction
from app.services.actor import Actor
from app.services.chat.conversations import ConversationService


class Turn:
    """The events of one turn, kept for followers that connect late."""

    def __init__(self, turn_id: str, conversation_id: str, user_id: str) -> None:
        self.id = turn_id
        self.conversation_id = conversation_id
        self.user_id = user_id
        self.events: list[dict[str, Any]] = []
        self.done = False
        self.finished_at: float | None = None
        self.task: asyncio.Task[None] | None = None
        # A waiting call of this turn was decided before it ended (no approval needed after all, or
        # its run could not be submitted): the conversation goes on right after it when none waits.
        self.decided_meanwhile = False
        self._followers: set[asyncio.Queue[dict[str, Any]]] = set()
        # Several servers (turn_relay.py): a turn started here also goes to the bus; a mirror is another
        # server's turn, fed from the bus.
        self.publish: Callable[[dict[str, Any]], None] | None = None
        self.mirror = False

    def emit(self, kind: str, **data: Any) -> dict[str, Any]:
        """Add an event and hand it to every follower (and to other servers' viewers)."""
        event = {"seq": len(self.events), "type": kind, **data}
        self.take(event)
        if self.publish is not None:
            self.publish(event)
        return event

    def take(self, event: dict[str, Any]) -> None:
        """Append an event with the next sequence number and hand it to every follower (mirrors use it)."""
        self.events.append(event)
        if event["type"] == "done" and not self.done:
            self.done, self.finished_at = True, time.monotonic()
        for queue in self._followers:
            queue.put_nowait(event)

    def segment_texts(self, before: int | None = None) -> dict[int, str]:
        """The assistant's text of each segment, from the events before sequence number ``before`` (all by default)."""
        chunks: dict[int, list[str]] = {}
        for event in self.events:
            if before is not None and event["seq"] >= before:
                break
            if event["type"] == "segment":
                chunks[event["index"]] = []
            elif event["type"] == "token":
                chunks[event["index"]].append(event["content"])
        return {index: "".join(parts) for index, parts in chunks.items()}

    def finish(self) -> None:
        """Emit ``done`` (once)."""
        if not self.done:
            self.done = True
            self.finished_at = time.monotonic()
            self.emit("done")

    async def follow(self, after: int = -1) -> AsyncIterator[dict[str, Any]]:
        """Every event after ``after`` (a sequence number), live until ``done``."""
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._followers.add(queue)  # before reading the backlog: no event falls between the two
        try:
            for event in list(self.events):
                if event["seq"] > after:
                    after = event["seq"]
                    yield event
                    if event["type"] == "done":
                        return
            while True:
                event = await queue.get()
                if event["seq"] <= after:
                    continue
                after = event["seq"]
                yield event
                if event["type"] == "done":
                    return
        finally:
            self._followers.discard(queue)


class TurnWriter:
    """The assistant's text of a turn, in segments split by tool calls; each segment is one message."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession], turn: Turn, actor: Actor) -> None:
        self.sessions, self.turn, self.actor = sessions, turn, actor
        self.index = -1
        self.text = ""

    def token(self, content: str) -> None:
        """Append text to the current segment (a new one after a tool call), announcing it."""
        if not content:
            return
        if not self.text:
            self.index += 1
            self.turn.emit("segment", index=self.index)
        self.text += content
        self.turn.emit("token", index=self.index, content=content)

    def take(self) -> str:
        """The text not stored yet (the caller stores it in its own transaction)."""
        text, self.text = self.text, ""
        return text

    async def flush(self) -> None:
        """Store the text not stored yet as an assistant message."""
        if not self.text:
            return
        text = self.take()
        async with transaction(self.sessions) as session:
            service = ConversationService(session)
            conversation = await service.get(self.actor, self.turn.conversation_id, lock=True)
            await service.add_message(conversation, "assistant", text, self.turn.id)


async def store_notice(sessions: async_sessionmaker[AsyncSession], turn: Turn, actor: Actor, text: str) -> None:
    """The platform speaks in the turn (no model, a provider failure...): announced and stored as a notice."""
    turn.emit("notice", content=text)
    async with transaction(sessions) as session:
        service = ConversationService(session)
        conversation = await service.get(actor, turn.conversation_id, lock=True)
        await service.add_message(conversation, "notice", text, turn.id)
