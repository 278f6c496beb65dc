"""The chat API: conversations, messages (turns), approvals, tools and agents, under /api (and /api/sdk/v1,
where per-execution tokens are refused: the chat is for people).

* ``GET|POST /chat/conversations``, ``GET|PATCH|DELETE /chat/conversations/{id}``
* ``POST /chat/conversations/{id}/messages`` ``{"content"}`` → 202 ``{turn_id, message}``;
  ``?wait=true`` → 200 with the turn's ``events`` and the new ``messages``; ``?stream=true`` → NDJSON events.
* ``GET /chat/turns/{id}/events`` → NDJSON events of a turn (from its start), until ``done``.
* ``POST /chat/tool-calls/{id}/approve|reject`` → ``{call, turn_id}`` (``?wait=true`` waits for the reply).
* ``GET /chat/tools`` (``?agent_id=``) → the tool workflows the caller may run here;
  ``PUT /chat/tools/{workflow}`` ``{"needs_approval"}`` (platform admins).
* ``GET|POST /chat/agents``, ``GET|PATCH|DELETE /chat/agents/{id}`` (writes: platform admins).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Annotated, Any, cast

from litestar import Controller, Request, Response, delete, get, patch, post, put
from litestar.datastructures import State
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import Parameter
from litestar.response import Stream
from litestar.types import ControllerRouterHandler

from app.services.actor import Actor
from app.services.chat.agents import ChatAgentService, ChatToolService, agent_view
from app.services.chat.conversations import ConversationService, conversation_view, require_chat_user
from app.services.chat.turns import ChatRuntime, Turn
from app.services.chat.views import (
    AgentBody,
    AgentView,
    ApprovalBody,
    ChatEvent,
    ConversationBody,
    ConversationDetail,
    ConversationView,
    Decision,
    MessageAccepted,
    MessageBody,
    TitleBody,
    ToolApproval,
    ToolView,
    TurnEvents,
    TurnReply,
)
from app.services.errors import InvalidInputError
from app.services.secrets import secret_box
from app.settings import Settings
from app.web.api.schemas import documented_body
from app.web.deps import db, get_platform

NDJSON = "application/x-ndjson"


def chat_runtime(request: Request[Any, Any, Any]) -> ChatRuntime:
    """The server's chat runtime (created on first use, kept on the app state)."""
    return chat_runtime_of(request.app.state)


def chat_runtime_of(state: State) -> ChatRuntime:
    """The chat runtime kept on the app ``state`` (created on first use; at start-up with several servers)."""
    runtime: ChatRuntime | None = state.get("chat_runtime")
    if runtime is None:
        platform = get_platform(state)
        settings: Settings = state.settings
        runtime = ChatRuntime(
            platform.sessions,
            platform.dispatcher,
            settings,
            lambda: secret_box(settings.secret_key, settings.home),
            platform.knowledge,
        )
        if platform.hub.distributed:  # several servers: a turn's viewers may be on another one
            runtime.share_turns(platform.hub)
        state["chat_runtime"] = runtime
    return runtime


def _body(data: Any) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise InvalidInputError.field("body", "must be a JSON object")
    return data


def _ndjson(turn: Turn, after: int = -1) -> Stream:
    async def lines() -> AsyncIterator[bytes]:
        async for event in turn.follow(after):
            yield (json.dumps(event, ensure_ascii=False, default=str) + "\n").encode()

    return Stream(lines(), media_type=NDJSON, status_code=200)


# The NDJSON routes document one line (an event) as their body.
EVENTS_RESPONSE = ResponseSpec(ChatEvent, description="NDJSON: one event per line, until `done`", media_type=NDJSON)


async def _finished(request: Request[Any, Any, Any], actor: Actor, turn: Turn) -> TurnEvents:
    events = cast(list[ChatEvent], [event async for event in turn.follow()])
    async with db(request) as session:
        messages = await ConversationService(session).messages(actor, turn.conversation_id)
    return {"turn_id": turn.id, "events": events, "messages": [m for m in messages if m["turn_id"] == turn.id]}


class ConversationController(Controller):
    """The caller's conversations and their turns."""

    path = "/chat"
    tags = ["chat"]

    @get("/conversations")
    async def list_conversations(self, request: Request[Any, Any, Any], actor: Actor) -> list[ConversationView]:
        """The caller's conversations in the acting organization, most recent first."""
        async with db(request) as session:
            return [conversation_view(c) for c in await ConversationService(session).list(actor)]

    @post("/conversations", status_code=201)
    async def create_conversation(
        self,
        request: Request[Any, Any, Any],
        actor: Actor,
        data: Annotated[Any, documented_body(ConversationBody, closed=True)],
    ) -> ConversationView:
        """Start a conversation (``title``, ``agent_id`` optional)."""
        body = _body(data)
        unknown = set(body) - {"title", "agent_id"}
        if unknown:
            raise InvalidInputError.field(sorted(unknown)[0], "unknown field")
        async with db(request) as session:
            require_chat_user(actor)
            agent_id = body.get("agent_id")
            if agent_id is not None:
                if not isinstance(agent_id, str):
                    raise InvalidInputError.field("agent_id", "must be an agent id")
                agent_id = (await ChatAgentService(session).get(actor, agent_id)).id
            return conversation_view(await ConversationService(session).create(actor, body.get("title"), agent_id))

    @get("/conversations/{conversation_id:str}")
    async def get_conversation(
        self, request: Request[Any, Any, Any], actor: Actor, conversation_id: str
    ) -> ConversationDetail:
        """A conversation with its messages (tool messages carry their calls) and its running turn."""
        async with db(request) as session:
            service = ConversationService(session)
            conversation = await service.get(actor, conversation_id)
            messages = await service.messages(actor, conversation_id)
        return {
            **conversation_view(conversation),
            "messages": messages,
            "active_turn": chat_runtime(request).active_turn(conversation.id),
        }

    @patch("/conversations/{conversation_id:str}")
    async def rename(
        self,
        request: Request[Any, Any, Any],
        actor: Actor,
        conversation_id: str,
        data: Annotated[Any, documented_body(TitleBody)],
    ) -> ConversationView:
        """Rename (``{"title"}``)."""
        body = _body(data)
        async with db(request) as session:
            return conversation_view(
                await ConversationService(session).rename(actor, conversation_id, body.get("title"))
            )

    @delete("/conversations/{conversation_id:str}", status_code=204)
    async def delete_conversation(self, request: Request[Any, Any, Any], actor: Actor, conversation_id: str) -> None:
        """Delete a conversation (its executions stay in the history)."""
        async with db(request) as session:
            await ConversationService(session).delete(actor, conversation_id)

    @post(
        "/conversations/{conversation_id:str}/messages",
        status_code=202,
        responses={
            200: ResponseSpec(
                TurnReply, description="`?wait=true`: the finished turn (`?stream=true`: its events as NDJSON)"
            )
        },
    )
    async def send(
        self,
        request: Request[Any, Any, Any],
        actor: Actor,
        conversation_id: str,
        data: Annotated[Any, documented_body(MessageBody)],
        wait: bool = Parameter(default=False, description="Answer when the reply is complete"),
        stream: bool = Parameter(default=False, description="Stream the turn's events as NDJSON"),
    ) -> MessageAccepted:
        """Send a message (``{"content"}``); a message starting with ``/`` is a command."""
        body = _body(data)
        turn, message = await chat_runtime(request).send(actor, conversation_id, body.get("content"))
        # Litestar sends a returned Response as is: the 200 answers are documented by `responses` above.
        if stream:
            return _ndjson(turn)  # type: ignore[return-value]
        if wait:
            reply: TurnReply = {"message": message, **await _finished(request, actor, turn)}
            return Response(reply, status_code=200)  # type: ignore[return-value]
        return {"turn_id": turn.id, "message": message, "events_url": f"/api/chat/turns/{turn.id}/events"}

    @get("/turns/{turn_id:str}/events", media_type=NDJSON, responses={200: EVENTS_RESPONSE})
    async def events(
        self, request: Request[Any, Any, Any], actor: Actor, turn_id: str, after: int = Parameter(default=-1, ge=-1)
    ) -> Stream:
        """The events of a turn as NDJSON, from after ``after`` until ``done``."""
        require_chat_user(actor)
        return _ndjson(await chat_runtime(request).find_turn(actor, turn_id), after)  # on any server

    @post("/tool-calls/{call_id:str}/approve", status_code=200)
    async def approve(
        self, request: Request[Any, Any, Any], actor: Actor, call_id: str, wait: bool = Parameter(default=False)
    ) -> Decision:
        """Approve a call waiting for approval: it runs, and the reply continues."""
        return await self._decide(request, actor, call_id, True, wait)

    @post("/tool-calls/{call_id:str}/reject", status_code=200)
    async def reject(
        self, request: Request[Any, Any, Any], actor: Actor, call_id: str, wait: bool = Parameter(default=False)
    ) -> Decision:
        """Reject a call waiting for approval: it never runs, and the model is told."""
        return await self._decide(request, actor, call_id, False, wait)

    async def _decide(
        self, request: Request[Any, Any, Any], actor: Actor, call_id: str, approve: bool, wait: bool
    ) -> Decision:
        turn, call = await chat_runtime(request).decide(actor, call_id, approve)
        answer: Decision = {"call": call, "turn_id": turn.id if turn else None}
        if wait and turn is not None:
            finished = await _finished(request, actor, turn)
            answer.update(
                {"turn_id": finished["turn_id"], "events": finished["events"], "messages": finished["messages"]}
            )
        return answer


class ChatToolController(Controller):
    """Tool workflows of the chat and their approval setting."""

    path = "/chat/tools"
    tags = ["chat"]

    @get("/")
    async def list_tools(
        self, request: Request[Any, Any, Any], actor: Actor, agent_id: str | None = Parameter(default=None)
    ) -> list[ToolView]:
        """The tool workflows the caller may run here (through ``agent_id``'s list when given)."""
        async with db(request) as session:
            agent = await ChatAgentService(session).get(actor, agent_id) if agent_id else None
            tools = await ChatToolService(session).tools_for(actor, agent)
        return [
            {
                "name": t["name"],
                "description": t["description"],
                "tool_description": t["tool_description"],
                "category": t["category"],
                "needs_approval": t["needs_approval"],
                "parameters": t["parameters"],
            }
            for t in tools
        ]

    @put("/{workflow:str}")
    async def set_approval(
        self,
        request: Request[Any, Any, Any],
        actor: Actor,
        workflow: str,
        data: Annotated[Any, documented_body(ApprovalBody)],
    ) -> ToolApproval:
        """``{"needs_approval": true|false}`` for one tool workflow (platform admins)."""
        body = _body(data)
        async with db(request) as session:
            return await ChatToolService(session).set_approval(actor, workflow, body.get("needs_approval"))


class ChatAgentController(Controller):
    """Chat agents: everyone lists those offered here; platform admins configure them."""

    path = "/chat/agents"
    tags = ["chat"]

    @get("/")
    async def list_agents(self, request: Request[Any, Any, Any], actor: Actor) -> list[AgentView]:
        """Agents offered in the acting organization (global ones included)."""
        async with db(request) as session:
            return [agent_view(a) for a in await ChatAgentService(session).list(actor)]

    @post("/", status_code=201)
    async def create_agent(
        self,
        request: Request[Any, Any, Any],
        actor: Actor,
        data: Annotated[Any, documented_body(AgentBody, closed=True)],
    ) -> AgentView:
        """Create an agent (``name``; ``instructions``, ``tools``, ``knowledge_namespaces``, ``model``, ...)."""
        async with db(request) as session:
            return agent_view(await ChatAgentService(session).create(actor, data))

    @get("/{agent_id:str}")
    async def get_agent(self, request: Request[Any, Any, Any], actor: Actor, agent_id: str) -> AgentView:
        """One agent."""
        async with db(request) as session:
            return agent_view(await ChatAgentService(session).get(actor, agent_id))

    @patch("/{agent_id:str}")
    async def update_agent(
        self,
        request: Request[Any, Any, Any],
        actor: Actor,
        agent_id: str,
        data: Annotated[Any, documented_body(AgentBody, closed=True)],
    ) -> AgentView:
        """Change an agent."""
        async with db(request) as session:
            return agent_view(await ChatAgentService(session).update(actor, agent_id, data))

    @delete("/{agent_id:str}", status_code=204)
    async def delete_agent(self, request: Request[Any, Any, Any], actor: Actor, agent_id: str) -> None:
        """Delete an agent (not the built-in default)."""
        async with db(request) as session:
            await ChatAgentService(session).delete(actor, agent_id)


CHAT_CONTROLLERS: list[ControllerRouterHandler] = [ConversationController, ChatToolController, ChatAgentController]
