"""Chat conversations: per user and organization, with their messages and tool calls.

A conversation belongs to the user who started it, in the organization they acted in; nobody
else sees it (platform admins included), and an unknown or foreign id is 404. Workflows
(per-execution SDK tokens) cannot use the chat.
"""

from __future__ import annotations

import builtins
import json
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from app.models.ai import ChatConversation, ChatMessage, ChatToolCall
from app.models.base import utcnow
from app.services.actor import Actor
from app.services.chat.views import ConversationView, MessageView, ToolCallView
from app.services.errors import InvalidInputError, NotFoundError, PermissionDeniedError, optional_text

DEFAULT_TITLE = "New conversation"
MAX_MESSAGE_CHARS = 20_000
MAX_TITLE = 200
AWAITING = "awaiting_approval"
DISPLAY_RESULT_CHARS = 4000


def require_chat_user(actor: Actor) -> None:
    """Refuse the chat to running workflows (execution tokens): it is for people."""
    if actor.execution_id:
        raise PermissionDeniedError("The chat is for people: workflows cannot use it (use bifrost.ai instead).")


def check_message(text: Any) -> str:
    """A chat message: non-empty text of at most 20,000 characters without NUL."""
    if not isinstance(text, str) or not text.strip():
        raise InvalidInputError.field("content", "must be non-empty text")
    if len(text) > MAX_MESSAGE_CHARS:
        raise InvalidInputError.field("content", f"must be at most {MAX_MESSAGE_CHARS} characters")
    if "\x00" in text:
        raise InvalidInputError.field("content", "must not contain NUL characters")
    return text.strip()


# Titles a command gives a conversation until its first real message (issue 19: not "/tools").
_COMMAND_TITLES = {"/tools": "Tools", "/help": "Help", "/?": "Help"}


def title_from(text: str) -> str:
    """A conversation title from its first message; a command gives a word for it ("Tools", "Run x")."""
    line = " ".join(text.split())
    if line.startswith("/"):
        head, _, rest = line.partition(" ")
        if head.lower() == "/run" and rest:
            return f"Run {rest.split(' ', 1)[0]}"[:60]
        return _COMMAND_TITLES.get(head.lower(), "Commands")
    return line if len(line) <= 60 else line[:57].rstrip() + "..."


def retitle(current: str, text: str) -> bool:
    """Whether a message should (re)title its conversation: the first message does, and the first real
    message after commands replaces the command's title."""
    if current == DEFAULT_TITLE:
        return True
    provisional = current in _COMMAND_TITLES.values() or current == "Commands" or current.startswith("Run ")
    return provisional and not text.lstrip().startswith("/")


def conversation_view(conversation: ChatConversation) -> ConversationView:
    """The API shape of a conversation (without messages)."""
    return {
        "id": conversation.id,
        "title": conversation.title,
        "agent_id": conversation.agent_id,
        "organization_id": conversation.organization_id,
        "created_at": conversation.created_at.isoformat(),
        "updated_at": conversation.updated_at.isoformat(),
    }


def _shown(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, indent=2, ensure_ascii=False, default=str)
    return text if len(text) <= DISPLAY_RESULT_CHARS else text[:DISPLAY_RESULT_CHARS] + "\n…"


def tool_call_view(call: ChatToolCall) -> ToolCallView:
    """The API shape of a tool call (``result_text`` is the result shortened for display)."""
    return {
        "id": call.id,
        "conversation_id": call.conversation_id,
        "turn_id": call.turn_id,
        "workflow": call.workflow_name,
        "arguments": call.arguments,
        "status": call.status,
        "needs_approval": call.needs_approval,
        "execution_id": call.execution_id,
        "result": call.result,
        "result_text": None if call.result is None else _shown(call.result),
        "error": call.error,
        "created_at": call.created_at.isoformat(),
        "updated_at": call.updated_at.isoformat(),
    }


def message_view(message: ChatMessage, call: ChatToolCall | None = None) -> MessageView:
    """The API shape of a message; a ``tool`` message carries its call."""
    view: MessageView = {
        "id": message.id,
        "seq": message.seq,
        "role": message.role,
        "content": message.content,
        "turn_id": message.turn_id,
        "created_at": message.created_at.isoformat(),
    }
    if message.role == "tool":
        view["tool_call"] = tool_call_view(call) if call is not None else None
    return view


class ConversationService:
    """Conversations of the acting user in the acting organization."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def list(self, actor: Actor) -> builtins.list[ChatConversation]:
        """The actor's conversations here, most recently active first."""
        require_chat_user(actor)
        stmt = (
            select(ChatConversation)
            .where(*self._mine(actor))
            .order_by(col(ChatConversation.updated_at).desc(), col(ChatConversation.id))
        )
        return builtins.list((await self.session.execute(stmt)).scalars())

    @staticmethod
    def _mine(actor: Actor) -> builtins.list[Any]:
        org = col(ChatConversation.organization_id)
        return [
            col(ChatConversation.user_id) == actor.user_id,
            org.is_(None) if actor.acting_org_id is None else org == actor.acting_org_id,
        ]

    async def get(self, actor: Actor, conversation_id: str, *, lock: bool = False) -> ChatConversation:
        """One of the actor's conversations (404 for anyone else's, and unknown ids)."""
        require_chat_user(actor)
        stmt = select(ChatConversation).where(col(ChatConversation.id) == conversation_id, *self._mine(actor))
        if lock:
            stmt = stmt.with_for_update()
        found = (await self.session.execute(stmt)).scalars().first() if len(conversation_id) <= 36 else None
        if found is None:
            raise NotFoundError(f"Conversation {conversation_id!r} not found.")
        return found

    async def create(self, actor: Actor, title: Any = None, agent_id: str | None = None) -> ChatConversation:
        """Start a conversation (``agent_id``: an agent the actor may use, checked by the caller)."""
        require_chat_user(actor)
        clean = optional_text(title, "title", MAX_TITLE) or DEFAULT_TITLE
        conversation = ChatConversation(
            user_id=actor.user_id, organization_id=actor.acting_org_id, agent_id=agent_id, title=clean
        )
        self.session.add(conversation)
        await self.session.flush()
        return conversation

    async def rename(self, actor: Actor, conversation_id: str, title: Any) -> ChatConversation:
        """Rename a conversation (1-200 characters)."""
        conversation = await self.get(actor, conversation_id)
        clean = optional_text(title, "title", MAX_TITLE)
        if not clean:
            raise InvalidInputError.field("title", "must be non-empty text")
        conversation.title, conversation.updated_at = clean, utcnow()
        await self.session.flush()
        return conversation

    async def delete(self, actor: Actor, conversation_id: str) -> None:
        """Delete a conversation with its messages and tool calls (executions stay in the history)."""
        conversation = await self.get(actor, conversation_id)
        await self.session.execute(delete(ChatMessage).where(col(ChatMessage.conversation_id) == conversation.id))
        await self.session.execute(delete(ChatToolCall).where(col(ChatToolCall.conversation_id) == conversation.id))
        await self.session.delete(conversation)
        await self.session.flush()

    async def messages(self, actor: Actor, conversation_id: str) -> builtins.list[MessageView]:
        """The conversation as shown: messages in order, tool messages with their calls."""
        conversation = await self.get(actor, conversation_id)
        rows = (
            await self.session.execute(
                select(ChatMessage)
                .where(col(ChatMessage.conversation_id) == conversation.id)
                .order_by(col(ChatMessage.seq))
            )
        ).scalars()
        calls = {c.id: c for c in await self.calls(conversation.id)}
        return [message_view(m, calls.get(m.tool_call_id or "")) for m in rows]

    async def calls(self, conversation_id: str, status: str | None = None) -> builtins.list[ChatToolCall]:
        """Tool calls of a conversation (optionally with one status), oldest first."""
        stmt = select(ChatToolCall).where(col(ChatToolCall.conversation_id) == conversation_id)
        if status is not None:
            stmt = stmt.where(col(ChatToolCall.status) == status)
        return builtins.list((await self.session.execute(stmt.order_by(col(ChatToolCall.created_at)))).scalars())

    async def call(self, actor: Actor, call_id: str) -> tuple[ChatToolCall, ChatConversation]:
        """A tool call of one of the actor's conversations (404 otherwise)."""
        call = await self.session.get(ChatToolCall, call_id) if len(call_id) <= 36 else None
        if call is None:
            raise NotFoundError(f"Tool call {call_id!r} not found.")
        try:
            conversation = await self.get(actor, call.conversation_id)
        except NotFoundError:
            raise NotFoundError(f"Tool call {call_id!r} not found.") from None
        return call, conversation

    async def approved_call(self, conversation_id: str, model_call_id: str) -> ChatToolCall | None:
        """The approved call the model made with this id in this conversation, if any.

        Only approved calls are matched: some OpenAI-compatible servers reuse call ids, so an id alone
        could point at an older call of the conversation.
        """
        stmt = select(ChatToolCall).where(
            col(ChatToolCall.conversation_id) == conversation_id,
            col(ChatToolCall.model_call_id) == model_call_id,
            col(ChatToolCall.status) == "approved",
        )
        return (await self.session.execute(stmt)).scalars().first()

    async def add_message(
        self,
        conversation: ChatConversation,
        role: str,
        content: str,
        turn_id: str | None,
        tool_call_id: str | None = None,
    ) -> ChatMessage:
        """Append a message (numbered after the conversation's last one)."""
        message = ChatMessage(
            conversation_id=conversation.id,
            seq=conversation.next_seq,
            role=role,
            content=content,
            turn_id=turn_id,
            tool_call_id=tool_call_id,
        )
        conversation.next_seq += 1
        conversation.updated_at = utcnow()
        self.session.add(message)
        await self.session.flush()
        return message

    async def add_tool_call(
        self,
        conversation: ChatConversation,
        turn_id: str,
        workflow: str,
        arguments: dict[str, Any],
        *,
        status: str,
        model_call_id: str | None = None,
        needs_approval: bool = False,
    ) -> ChatToolCall:
        """Record a tool call and the message that shows it."""
        call = ChatToolCall(
            conversation_id=conversation.id,
            turn_id=turn_id,
            model_call_id=model_call_id,
            workflow_name=workflow,
            arguments=arguments,
            status=status,
            needs_approval=needs_approval,
        )
        self.session.add(call)
        await self.session.flush()
        await self.add_message(conversation, "tool", "", turn_id, tool_call_id=call.id)
        return call
