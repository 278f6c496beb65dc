"""The chat page: conversations, replies streamed token by token (SSE into htmx), tool calls with approval.

A sent message comes back as two list items: the user's message and the reply's container,
which opens ``/chat/turns/<id>/live``. Every event of the turn arrives as one SSE ``chat``
message holding out-of-band fragments (a new text bubble, a token appended to it, a tool card
added or replaced, a notice), so the page needs no script of its own.

Tokens stream in as plain text; once a text segment is complete (a tool call follows it, or the
turn is done) its bubble is replaced by the Markdown rendered on the server (raw HTML escaped,
``javascript:`` links dropped), which is also how stored replies show on a reload.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from litestar import MediaType, Request, Response, get, post
from litestar.response import Redirect, ServerSentEvent, ServerSentEventMessage, Template
from markupsafe import escape

from app.services.actor import Actor
from app.services.chat.agents import ChatAgentService, agent_view
from app.services.chat.ai_settings import AIConfigurationError, notice_for
from app.services.chat.conversations import ConversationService, conversation_view, require_chat_user
from app.services.chat.turns import Turn
from app.services.errors import ConflictError, InvalidInputError, NotFoundError, PermissionDeniedError, whole_number
from app.web.api.ai import settings_service
from app.web.api.chat import chat_runtime
from app.web.deps import db
from app.web.markdown import render_chat_markdown
from app.web.pages.common import PageController, form_text, layout_context, render_string

_CLOSE_GRACE_SECONDS = 5.0  # the browser closes on "done" first (a server-side close makes it reconnect)
_KEEPALIVE_SECONDS = 15.0


def _alert(message: str) -> str:
    return f'<li class="msg platform" role="alert"><div class="bubble">{escape(message)}</div></li>'


def _rendered_segments(turn: Turn, texts: dict[int, str]) -> str:
    """Out-of-band replacements of finished text bubbles by their Markdown (idempotent: sent again on reconnect)."""
    return "".join(
        f'<div class="bubble md" id="turn-{turn.id}-seg-{index}" hx-swap-oob="true">{render_chat_markdown(text)}</div>'
        for index, text in texts.items()
    )


def event_html(request: Request[Any, Any, Any], turn: Turn, event: dict[str, Any]) -> str:
    """The out-of-band fragments that show one turn event in the page."""
    parts = f"#turn-{turn.id}-parts"
    kind = event["type"]
    if kind == "token":
        # Tokens are the hot path: a plain f-string, no template.
        return f'<span hx-swap-oob="beforeend:#turn-{turn.id}-seg-{event["index"]}">{escape(event["content"])}</span>'
    if kind == "segment":
        return (
            f'<div hx-swap-oob="beforeend:{parts}"><div class="msg assistant"><span class="who">Assistant</span>'
            f'<div class="bubble" id="turn-{turn.id}-seg-{event["index"]}"></div></div></div>'
        )
    if kind == "notice":
        return (
            f'<div hx-swap-oob="beforeend:{parts}"><div class="msg platform" role="status"><span class="who">Platform'
            f'</span><div class="bubble">{escape(event["content"])}</div></div></div>'
        )
    if kind == "tool":
        card = render_string(request, "partials/_chat_tool_call.html", c=event["call"], oob=False)
        # The text before a tool call is complete (the writer stored it): show it as Markdown now.
        texts = turn.segment_texts(before=event["seq"])
        finished = _rendered_segments(turn, {max(texts): texts[max(texts)]}) if texts else ""
        return f'{finished}<div hx-swap-oob="beforeend:{parts}">{card}</div>'
    if kind == "tool_update":
        return render_string(request, "partials/_chat_tool_call.html", c=event["call"], oob=True)
    if kind == "done":
        finished = _rendered_segments(turn, turn.segment_texts())
        return f'{finished}<p class="typing" id="turn-{turn.id}-typing" hx-swap-oob="true"></p>'
    return ""


def turn_html(request: Request[Any, Any, Any], turn_id: str) -> str:
    """The list item a reply streams into."""
    return render_string(request, "partials/_chat_turn.html", turn_id=turn_id)


class ChatPages(PageController):
    """``/chat``: the user's conversations and the assistant."""

    path = "/chat"

    async def _page(self, request: Request[Any, Any, Any], actor: Actor, conversation_id: str | None) -> Template:
        require_chat_user(actor)
        async with db(request) as session:
            service = ConversationService(session)
            conversations = await service.list(actor)
            conversation = await service.get(actor, conversation_id) if conversation_id else None
            messages = await service.messages(actor, conversation.id) if conversation else []
            agents_service = ChatAgentService(session)
            agents = [a for a in await agents_service.list(actor) if a.is_active]
            agent = await agents_service.for_conversation(actor, conversation.agent_id if conversation else None)
            try:
                await settings_service(request, session).resolve(actor, agent.model)
                model_ready, model_problem = True, ""
            except AIConfigurationError as exc:
                model_ready, model_problem = False, notice_for(actor.is_superuser, str(exc))
            layout = await layout_context(request, session, actor)
        return Template(
            "pages/chat.html",
            context={
                **layout,
                "conversations": [conversation_view(c) for c in conversations],
                "conversation": conversation_view(conversation) if conversation else None,
                "messages": messages,
                "agents": [agent_view(a) for a in agents],
                "agent_name": agent.name,
                "model_ready": model_ready,
                "model_problem": model_problem,
                "active_turn": chat_runtime(request).active_turn(conversation.id) if conversation else None,
            },
        )

    @get("/")
    async def index(self, request: Request[Any, Any, Any], actor: Actor) -> Template | Redirect:
        """The most recent conversation, or an empty page to start one."""
        async with db(request) as session:
            conversations = await ConversationService(session).list(actor)
        if conversations:
            return Redirect(f"/chat/{conversations[0].id}", status_code=303)
        return await self._page(request, actor, None)

    @get("/{conversation_id:str}")
    async def conversation(self, request: Request[Any, Any, Any], actor: Actor, conversation_id: str) -> Template:
        """One conversation with its messages and tool calls."""
        return await self._page(request, actor, conversation_id)

    @post("/new", status_code=303)
    async def new(self, request: Request[Any, Any, Any], actor: Actor) -> Redirect:
        """Start a conversation (with the chosen agent)."""
        form = await request.form()
        agent_id = form_text(form, "agent_id") or None
        async with db(request) as session:
            if agent_id:
                agent_id = (await ChatAgentService(session).get(actor, agent_id)).id
            conversation = await ConversationService(session).create(actor, None, agent_id)
        return Redirect(f"/chat/{conversation.id}", status_code=303)

    @post("/{conversation_id:str}/rename", status_code=303)
    async def rename(self, request: Request[Any, Any, Any], actor: Actor, conversation_id: str) -> Redirect:
        """Rename a conversation."""
        form = await request.form()
        async with db(request) as session:
            await ConversationService(session).rename(actor, conversation_id, form_text(form, "title"))
        return Redirect(f"/chat/{conversation_id}", status_code=303)

    @post("/{conversation_id:str}/delete", status_code=303)
    async def delete(self, request: Request[Any, Any, Any], actor: Actor, conversation_id: str) -> Redirect:
        """Delete a conversation."""
        async with db(request) as session:
            await ConversationService(session).delete(actor, conversation_id)
        return Redirect("/chat", status_code=303)

    @post("/{conversation_id:str}/messages", status_code=200)
    async def send(self, request: Request[Any, Any, Any], actor: Actor, conversation_id: str) -> Response[str]:
        """htmx: the user's message and the container its reply streams into (or why it was refused)."""
        form = await request.form()
        try:
            turn, message = await chat_runtime(request).send(actor, conversation_id, form_text(form, "content"))
        except (InvalidInputError, ConflictError) as exc:
            return Response(_alert(str(exc)), media_type=MediaType.HTML)
        html = render_string(request, "partials/_chat_message.html", m=message) + turn_html(request, turn.id)
        if "conversation_title" in message:  # the first message named the conversation: heading and list follow
            title = escape(message["conversation_title"])
            html += f'<h1 class="flush" id="conversation-title" hx-swap-oob="true">{title}</h1>'
            html += f'<span hx-swap-oob="innerHTML:#conversation-link-{escape(conversation_id)}">{title}</span>'
        return Response(html, media_type=MediaType.HTML)

    @post("/tool-calls/{call_id:str}/{decision:str}", status_code=200)
    async def decide(self, request: Request[Any, Any, Any], actor: Actor, call_id: str, decision: str) -> Response[str]:
        """htmx: approve or reject a waiting call; the card is replaced and the reply continues below."""
        if decision not in ("approve", "reject"):
            raise InvalidInputError.field("decision", "must be approve or reject")
        try:
            turn, call = await chat_runtime(request).decide(actor, call_id, decision == "approve")
        except (ConflictError, PermissionDeniedError) as exc:  # e.g. the requester may not approve their own run
            return Response(f'<p class="alert" role="alert">{escape(str(exc))}</p>', media_type=MediaType.HTML)
        html = render_string(request, "partials/_chat_tool_call.html", c=call, oob=False)
        if turn is not None:
            html += f'<div hx-swap-oob="beforeend:#messages">{turn_html(request, turn.id)}</div>'
        return Response(html, media_type=MediaType.HTML)

    @get("/turns/{turn_id:str}/live")
    async def live(self, request: Request[Any, Any, Any], actor: Actor, turn_id: str) -> ServerSentEvent:
        """Server-sent events of one reply: ``chat`` (HTML fragments) until ``done``."""
        require_chat_user(actor)
        try:
            turn = await chat_runtime(request).find_turn(actor, turn_id)  # running here or on another server
        except NotFoundError:
            # Ended long ago (or never ours): tell the browser to stop; a reload shows the stored reply.
            async def over() -> AsyncIterator[ServerSentEventMessage]:
                cleared = f'<p class="typing" id="turn-{escape(turn_id)}-typing" hx-swap-oob="true"></p>'
                yield ServerSentEventMessage(event="chat", data=cleared)
                yield ServerSentEventMessage(event="done", data="done")
                await asyncio.sleep(_CLOSE_GRACE_SECONDS)

            return ServerSentEvent(over())
        last = request.headers.get("last-event-id", "")
        resumed = whole_number(last)
        after = -1 if resumed is None else resumed  # a reconnecting browser resumes after what it has

        async def events() -> AsyncIterator[ServerSentEventMessage]:
            stream = turn.follow(after).__aiter__()
            while True:
                try:
                    event = await asyncio.wait_for(stream.__anext__(), _KEEPALIVE_SECONDS)
                except TimeoutError:
                    yield ServerSentEventMessage(comment="keep-alive")
                    continue
                except StopAsyncIteration:
                    return
                yield ServerSentEventMessage(event="chat", data=event_html(request, turn, event), id=str(event["seq"]))
                if event["type"] == "done":
                    yield ServerSentEventMessage(event="done", data="done")
                    await asyncio.sleep(_CLOSE_GRACE_SECONDS)
                    return

        return ServerSentEvent(events())


CHAT_PAGE_HANDLERS = [ChatPages]
