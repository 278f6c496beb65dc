"""Start-up recovery of chat turns: end what a stopped server left mid-turn.

Turns live in the web process: a server stopped mid-turn leaves the turn's stored part behind (the
user's message, text stored before each tool call, calls ``running``). On the next start
:func:`recover_interrupted_turns` ends such leftovers (calls ``interrupted``, a notice after them).
"""

from __future__ import annotations

import logging
from collections.abc import Collection

from sqlalchemy import and_, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlmodel import col

from agents.chat import dump_history, load_history
from app.db import transaction
from app.models.ai import ChatConversation, ChatMessage, ChatToolCall
from app.models.base import utcnow
from app.services.chat.conversations import AWAITING, ConversationService

log = logging.getLogger(__name__)

INTERRUPTED = "interrupted"  # a tool call status: its turn was lost when the server stopped
INTERRUPTED_CALL = (
    "The server stopped during this call's turn, so the assistant never got its result "
    "(its execution, if it started, is listed under Executions)."
)
INTERRUPTED_REPLY = (
    "The server restarted while this reply was being written, so it stopped here (what was already "
    "stored is kept above). Send your message again to continue."
)


async def recover_interrupted_turns(sessions: async_sessionmaker[AsyncSession], running: Collection[str] = ()) -> int:
    """On server start: end the chat turns a stopped server left unfinished; returns how many.

    Turns run in the web process, so after a restart none is running here (with several servers, those
    another server runs now are passed in ``running`` and kept). A conversation was left
    mid-turn when a tool call is still ``running`` (or ``approved`` with its batch decided), or
    when its last message is one a turn always answers: the user's message, or a tool call
    whose result the stored history never got. Such calls end ``interrupted``; a notice follows
    the reply's stored part; calls the lost turn left unanswered in the history are closed so a
    new message can be sent. Only the serving process may call this (like execution recovery).

    Args:
        sessions: Session factory.
        running: Conversations whose reply another server is writing now (several servers): left alone.
    """
    async with transaction(sessions) as session:
        last_message = (
            select(col(ChatMessage.conversation_id))
            .join(
                ChatConversation,
                and_(
                    col(ChatConversation.id) == col(ChatMessage.conversation_id),
                    col(ChatMessage.seq) == col(ChatConversation.next_seq) - 1,
                ),
            )
            .where(col(ChatMessage.role).in_(("user", "tool")))
        )
        open_calls = select(col(ChatToolCall.conversation_id)).where(
            col(ChatToolCall.status).in_(("running", "approved"))
        )
        candidates = set((await session.execute(last_message)).scalars())
        candidates |= set((await session.execute(open_calls)).scalars())
        candidates -= set(running)
    recovered = 0
    for conversation_id in sorted(candidates):
        try:
            async with transaction(sessions) as session:
                recovered += await _recover_conversation(session, conversation_id)
        except Exception:  # one odd conversation must not stop the server from starting
            log.exception("chat recovery of conversation %s failed", conversation_id)
    if recovered:
        log.warning("chat: %d reply(ies) interrupted by the server restart were marked interrupted", recovered)
    return recovered


async def _recover_conversation(session: AsyncSession, conversation_id: str) -> int:
    from pydantic_ai.messages import ModelRequest, RetryPromptPart, ToolReturnPart, repair_messages

    stmt = select(ChatConversation).where(col(ChatConversation.id) == conversation_id).with_for_update()
    conversation = (await session.execute(stmt)).scalars().first()
    if conversation is None:
        return 0
    service = ConversationService(session)
    calls = await service.calls(conversation.id)
    waiting_turns = {c.turn_id for c in calls if c.status == AWAITING}  # their batch waits for the user: alive
    lost = [c for c in calls if c.status == "running" or (c.status == "approved" and c.turn_id not in waiting_turns)]
    last = (
        (
            await session.execute(
                select(ChatMessage).where(
                    col(ChatMessage.conversation_id) == conversation.id,
                    col(ChatMessage.seq) == conversation.next_seq - 1,
                )
            )
        )
        .scalars()
        .first()
    )
    history = load_history(conversation.history)
    cut = bool(lost)
    if last is not None and last.role == "user":
        cut = True
    elif last is not None and last.role == "tool":
        call = next((c for c in calls if c.id == last.tool_call_id), None)
        if call is not None and call.turn_id not in waiting_turns:
            # After a tool result the turn goes on (the model answers, a command says how it went); an
            # agent turn that ended normally stored a history holding the result.
            answered = {
                part.tool_call_id
                for message in history
                if isinstance(message, ModelRequest)
                for part in message.parts
                if isinstance(part, ToolReturnPart | RetryPromptPart)
            }
            cut = cut or not (call.model_call_id and call.model_call_id in answered)
    if not cut:
        return 0
    now = utcnow()
    for call in lost:
        call.status, call.error, call.updated_at = INTERRUPTED, INTERRUPTED_CALL, now
    if not waiting_turns:
        repaired = repair_messages(history)
        if repaired != history:
            conversation.history = dump_history(repaired)
    await service.add_message(conversation, "notice", INTERRUPTED_REPLY, last.turn_id if last else None)
    return 1
