"""Chat turns: a user message (or an approval) starts a background task that answers it.

A turn streams events that pages (SSE) and the API (NDJSON) follow while it runs, from its start
even when they connect late (:class:`~app.services.chat.turn_stream.Turn`). The model's turn is
:mod:`~app.services.chat.model_turn`, command mode (``/run`` ...) :mod:`~app.services.chat.command_mode`,
tool calls :mod:`~app.services.chat.tool_runs` (each through ``ExecutionService.submit(..., trigger="chat")``),
calls waiting for an approver :mod:`~app.services.chat.approval_flow`, and what a stopped server left
behind :mod:`~app.services.chat.turn_recovery`. This module starts turns (one at a time per
conversation), decides and resumes waiting calls, and ends failed turns cleanly. No database
transaction is open while the model writes or a tool runs.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlmodel import col

from agents.commands import is_command
from app.db import transaction
from app.models.ai import ChatToolCall
from app.models.base import new_id, utcnow
from app.services.actor import Actor
from app.services.chat import approval_flow
from app.services.chat.approval_flow import Decisions
from app.services.chat.command_mode import command_outcome, run_command
from app.services.chat.conversations import (
    AWAITING,
    ConversationService,
    check_message,
    message_view,
    retitle,
    title_from,
    tool_call_view,
)
from app.services.chat.mcp_tools import ExternalTools
from app.services.chat.model_turn import ModelTurn
from app.services.chat.tool_runs import ToolRunner
from app.services.chat.turn_recovery import recover_interrupted_turns
from app.services.chat.turn_relay import ActiveTurns, TurnBus, TurnRelay
from app.services.chat.turn_stream import Turn, TurnWriter, store_notice
from app.services.chat.views import MessageView, ToolCallView
from app.services.errors import ConflictError, DomainError, NotFoundError, PermissionDeniedError
from app.services.executions.approvals import ApprovalService
from app.services.executions.dispatch import Dispatcher
from app.services.identity.auth import AuthService
from app.services.knowledge.service import KnowledgeRuntime
from app.services.secrets import SecretBox
from app.settings import Settings

__all__ = ["ChatRuntime", "Turn", "recover_interrupted_turns"]

log = logging.getLogger(__name__)

KEEP_FINISHED_SECONDS = 600.0  # a browser reconnecting shortly after the end still gets the events
FAILED_TURN_CALL = "The assistant failed unexpectedly during this call's turn (the error has been logged)."


class ChatRuntime:
    """Runs chat turns in the web process (one at a time per conversation).

    Args:
        sessions: Session factory (short transactions).
        dispatcher: Runs tool executions (the submit path's dispatcher).
        settings: Server settings.
        secret_box: Decrypts the model's API key secret.
        knowledge: Knowledge runtime for the knowledge-search tool.
    """

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        dispatcher: Dispatcher,
        settings: Settings,
        secret_box: Callable[[], SecretBox],
        knowledge: KnowledgeRuntime,
    ) -> None:
        self.sessions = sessions
        self.dispatcher = dispatcher
        self.settings = settings
        self.secret_box = secret_box
        self.knowledge = knowledge
        self.tools = ToolRunner(sessions, dispatcher, ExternalTools(sessions, secret_box))
        self.model_turn = ModelTurn(sessions, dispatcher, settings, secret_box, knowledge, self.tools)
        self.turns: dict[str, Turn] = {}
        self.active = ActiveTurns()  # conversation id -> running turn id (with several servers: any server's)
        self.relay: TurnRelay | None = None  # several servers: turns reach viewers on the others

    def share_turns(self, bus: TurnBus) -> None:
        """Publish this server's turns on ``bus`` and follow other servers' turns through it."""
        self.relay = TurnRelay(bus, self.turns, self.active)

    # ----- starting turns -------------------------------------------------------------------------
    def turn(self, actor: Actor, turn_id: str) -> Turn:
        """A turn of the actor's (404 for anyone else's or a forgotten one)."""
        turn = self.turns.get(turn_id)
        if turn is None or turn.user_id != actor.user_id:
            raise NotFoundError(f"Turn {turn_id!r} not found (it may have ended a while ago: reload the conversation).")
        return turn

    async def find_turn(self, actor: Actor, turn_id: str) -> Turn:
        """Like :meth:`turn`, and a turn running on another server is mirrored here (several servers).

        Raises:
            NotFoundError: No server has the turn, or it is not the actor's.
        """
        if turn_id not in self.turns and self.relay is not None:
            mirror = await self.relay.mirror(turn_id)
            if mirror is not None:
                self._forget_finished()
                self.turns.setdefault(turn_id, mirror)
        return self.turn(actor, turn_id)

    def active_turn(self, conversation_id: str) -> str | None:
        """The running turn of a conversation, if any."""
        return self.active.get(conversation_id)

    async def send(self, actor: Actor, conversation_id: str, content: Any) -> tuple[Turn, MessageView]:
        """Store the user's message and start the turn that answers it.

        Raises:
            InvalidInputError: Empty or too long message.
            NotFoundError: Not the actor's conversation.
            ConflictError: A reply is still being written, or a tool call waits for approval.
        """
        text = check_message(content)
        await self.resume_conversation(actor, conversation_id)  # approvals decided elsewhere, or expired
        async with transaction(self.sessions) as session:
            service = ConversationService(session)
            conversation = await service.get(actor, conversation_id, lock=True)
            if conversation.id in self.active:
                raise ConflictError("A reply is still being written in this conversation; wait for it to finish.")
            if await service.calls(conversation.id, AWAITING):
                raise ConflictError(
                    "A tool call waits for an approver (see Approvals); the conversation goes on once it is decided."
                )
            turn_id = new_id()
            message = await service.add_message(conversation, "user", text, turn_id)
            view = message_view(message)
            if retitle(conversation.title, text):
                conversation.title = title_from(text)
                view["conversation_title"] = conversation.title  # the page shows the new title at once
        return self._start(actor, conversation.id, turn_id, text, None), view

    async def decide(self, actor: Actor, call_id: str, approve: bool) -> tuple[Turn | None, ToolCallView]:
        """Approve or reject a call waiting for approval; the turn continues once every waiting call is decided.

        Returns:
            The continuing turn (None while other calls of the same answer still wait) and the call.

        Raises:
            NotFoundError: Not a call of the actor's conversations.
            ConflictError: The call is not waiting (decided already), or a reply is being written.
        """
        async with transaction(self.sessions) as session:
            service = ConversationService(session)
            call, conversation = await service.call(actor, call_id)
            await service.get(actor, conversation.id, lock=True)
            if call.status != AWAITING:
                raise ConflictError(f"This tool call is not waiting for approval (it is {call.status}).")
            if conversation.id in self.active:
                raise ConflictError("A reply is still being written in this conversation; wait for it to finish.")
            execution_id = call.execution_id
            if execution_id is not None:
                # Its run waits for an approver: deciding here is deciding the run, with the approver rules
                # (the requester may not approve their own run unless the workflow allows it).
                reason = None if approve else "Rejected in the chat."
                await ApprovalService(session, self.dispatcher).decide(actor, execution_id, approve, reason)
        if execution_id is not None:
            turn = await self.resume_decided(execution_id)
            async with transaction(self.sessions) as session:
                call, _ = await ConversationService(session).call(actor, call_id)
                return turn, tool_call_view(call)
        async with transaction(self.sessions) as session:
            service = ConversationService(session)
            call, conversation = await service.call(actor, call_id)
            await service.get(actor, conversation.id, lock=True)
            if call.status != AWAITING:
                raise ConflictError(f"This tool call is not waiting for approval (it is {call.status}).")
            call.status = "approved" if approve else "rejected"
            if not approve:
                call.error = "Rejected by the user."
            call.updated_at = utcnow()
            view = tool_call_view(call)
            batch = [c for c in await service.calls(conversation.id) if c.turn_id == call.turn_id and c.needs_approval]
            if any(c.status == AWAITING for c in batch):
                return None, view
            decisions: Decisions = {c.model_call_id: c.status == "approved" for c in batch if c.model_call_id}
        return self._start(actor, conversation.id, new_id(), None, decisions), view

    async def resume_decided(self, execution_id: str) -> Turn | None:
        """Continue the conversation whose tool call waited for this run's approval, once it is decided.

        Returns the continuing turn, or None (no chat call waits for it, others of its answer still
        wait, or a reply is being written: then the next message resumes it).
        """
        async with transaction(self.sessions) as session:
            plan = await approval_flow.decided(session, execution_id, set(self.active))
            if plan is None:
                return None
            try:
                actor = await AuthService(session).actor_for_user(plan.user_id, plan.organization_id)
            except DomainError:  # the user is gone or switched off: nobody to continue for
                return None
        if plan.conversation_id in self.active:
            return None
        if plan.command_call_id is not None:
            return self._start_command_outcome(actor, plan.conversation_id, plan.command_call_id)
        return self._start(actor, plan.conversation_id, new_id(), None, plan.decisions)

    async def _resume_batch(self, actor: Actor, turn: Turn) -> None:
        async with transaction(self.sessions) as session:
            decisions = await approval_flow.batch_decisions(session, turn.conversation_id, turn.id)
        if decisions is not None and turn.conversation_id not in self.active:
            self._start(actor, turn.conversation_id, new_id(), None, decisions)

    async def resume_conversation(self, actor: Actor, conversation_id: str) -> None:
        """Resume calls of the actor's conversation whose runs were decided meanwhile (elsewhere, or expired)."""
        async with transaction(self.sessions) as session:
            conversation = await ConversationService(session).get(actor, conversation_id)
            decided = await approval_flow.decided_in(session, conversation.id)
        for execution_id in decided:
            if await self.resume_decided(execution_id) is not None:
                return

    def _start_command_outcome(self, actor: Actor, conversation_id: str, call_id: str) -> Turn:
        self._forget_finished()
        turn = Turn(new_id(), conversation_id, actor.user_id)
        if self.relay is not None:
            self.relay.share(turn)
        self.turns[turn.id] = turn
        self.active[conversation_id] = turn.id

        async def run() -> None:
            writer = TurnWriter(self.sessions, turn, actor)
            try:
                await command_outcome(self.sessions, self.tools, turn, actor, writer, call_id)
            except Exception:
                log.exception("chat turn %s failed", turn.id)
            finally:
                try:
                    await writer.flush()
                except Exception:
                    log.exception("chat turn %s: could not store the reply", turn.id)
                self.active.pop(conversation_id, None)
                turn.finish()

        turn.task = asyncio.create_task(run(), name=f"chat-turn-{turn.id}")
        return turn

    def _start(
        self, actor: Actor, conversation_id: str, turn_id: str, prompt: str | None, decisions: Decisions | None
    ) -> Turn:
        self._forget_finished()
        turn = Turn(turn_id, conversation_id, actor.user_id)
        if self.relay is not None:
            self.relay.share(turn)
        self.turns[turn_id] = turn
        self.active[conversation_id] = turn_id
        turn.task = asyncio.create_task(self._run(turn, actor, prompt, decisions), name=f"chat-turn-{turn_id}")
        return turn

    def _forget_finished(self) -> None:
        now = time.monotonic()
        for turn_id in [
            t.id for t in self.turns.values() if t.finished_at and now - t.finished_at > KEEP_FINISHED_SECONDS
        ]:
            del self.turns[turn_id]

    # ----- running a turn -------------------------------------------------------------------------
    async def _run(self, turn: Turn, actor: Actor, prompt: str | None, decisions: Decisions | None) -> None:
        writer = TurnWriter(self.sessions, turn, actor)
        try:
            if prompt is not None and is_command(prompt):
                await run_command(self.sessions, self.tools, turn, actor, writer, prompt)
            else:
                await self.model_turn.run(turn, actor, writer, prompt, decisions)
        except PermissionDeniedError as exc:  # e.g. no agent is offered to the user any more
            try:
                await self._notice(turn, actor, str(exc))
            except Exception:
                log.exception("chat turn %s: could not store the notice", turn.id)
        except Exception:
            log.exception("chat turn %s failed", turn.id)
            try:
                await self._end_open_calls(turn)
                await self._notice(turn, actor, "The assistant failed unexpectedly; the error has been logged.")
            except Exception:  # e.g. the conversation was deleted meanwhile
                log.exception("chat turn %s: could not store the notice", turn.id)
        finally:
            try:
                await writer.flush()
            except Exception:
                log.exception("chat turn %s: could not store the reply", turn.id)
            self.active.pop(turn.conversation_id, None)  # before "done": the user may write again at once
            turn.finish()
            if turn.decided_meanwhile:
                await self._resume_batch(actor, turn)

    async def _end_open_calls(self, turn: Turn) -> None:
        """After a failed turn: its calls still marked running end failed (the page would show them running)."""
        async with transaction(self.sessions) as session:
            stmt = select(ChatToolCall).where(
                col(ChatToolCall.turn_id) == turn.id, col(ChatToolCall.status) == "running"
            )
            views = []
            for call in (await session.execute(stmt)).scalars():
                call.status, call.error, call.updated_at = "failed", FAILED_TURN_CALL, utcnow()
                views.append(tool_call_view(call))
        for view in views:
            turn.emit("tool_update", call=view)

    async def _notice(self, turn: Turn, actor: Actor, text: str) -> None:
        await store_notice(self.sessions, turn, actor, text)
