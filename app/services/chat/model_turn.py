"""A chat turn answered by the model: its context, the streamed reply, tool calls, and calls left waiting.

The model (pydantic-ai) streams text into the turn and calls tools through
:class:`~app.services.chat.tool_runs.ToolRunner`. Calls of workflows that need approval end the turn
deferred: each is stored ``awaiting_approval`` and its run submitted at once, to wait for an approver
(:mod:`app.services.chat.approval_flow`). No database transaction is open while the model writes.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from agents.chat import build_chat_agent, dump_history, load_history
from agents.models import ModelConfigurationError, build_model_async, model_label
from agents.tools import make_tools
from app.db import transaction
from app.models.base import utcnow
from app.services.actor import Actor
from app.services.chat import approval_flow
from app.services.chat.agents import ChatAgentService, ChatToolService
from app.services.chat.ai import provider_error, usage_counts
from app.services.chat.ai_settings import AIConfigurationError, AISettingsService, notice_for
from app.services.chat.ai_usage import AIUsageService
from app.services.chat.approval_flow import Decisions
from app.services.chat.conversations import AWAITING, ConversationService, tool_call_view
from app.services.chat.tool_runs import ToolRunner
from app.services.chat.turn_stream import Turn, TurnWriter, store_notice
from app.services.chat.views import ToolCallView
from app.services.executions.dispatch import Dispatcher
from app.services.knowledge.service import KnowledgeRuntime, KnowledgeService
from app.services.mcp.choices import add_choices
from app.services.secrets import SecretBox
from app.settings import Settings

log = logging.getLogger(__name__)

NO_MODEL_HINT = "Meanwhile tools run by command: /tools lists them, /run <workflow> key=value ... runs one."
REJECTED = "The user rejected this call; it did not run. Do not call it again unless the user asks."


class ModelTurn:
    """Answers turns with the conversation's agent and model.

    Args:
        sessions: Session factory (short transactions).
        dispatcher: The submit path's dispatcher (runs of waiting calls are submitted through it).
        settings: Server settings.
        secret_box: Decrypts the model's API key secret.
        knowledge: Knowledge runtime for the knowledge-search tool.
        tools: Runs the model's tool calls.
    """

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        dispatcher: Dispatcher,
        settings: Settings,
        secret_box: Callable[[], SecretBox],
        knowledge: KnowledgeRuntime,
        tools: ToolRunner,
    ) -> None:
        self.sessions = sessions
        self.dispatcher = dispatcher
        self.settings = settings
        self.secret_box = secret_box
        self.knowledge = knowledge
        self.tools = tools

    async def _context(self, actor: Actor, conversation_id: str) -> dict[str, Any]:
        """What a turn needs from the database, read in one short transaction."""
        async with transaction(self.sessions) as session:
            conversation = await ConversationService(session).get(actor, conversation_id)
            agent = await ChatAgentService(session).for_conversation(actor, conversation.agent_id)
            tools = await ChatToolService(session).tools_for(actor, agent)
            ai_settings = AISettingsService(session, self.settings, self.secret_box)
            try:
                resolved: Any = await ai_settings.resolve(actor, agent.model)
                problem = None
            except AIConfigurationError as exc:
                resolved, problem = None, notice_for(actor.is_superuser, str(exc))
            namespaces = (
                agent.knowledge_namespaces
                if agent.knowledge_namespaces is not None
                else await ai_settings.chat_namespaces(actor)
            )
            return {
                "history": load_history(conversation.history),
                "instructions": agent.instructions,
                "tools": tools,
                "resolved": resolved,
                "problem": problem,
                "namespaces": list(namespaces),
                "agent_id": agent.id,
            }

    async def run(
        self, turn: Turn, actor: Actor, writer: TurnWriter, prompt: str | None, decisions: Decisions | None
    ) -> None:
        """Answer ``prompt`` (or continue after ``decisions`` on waiting calls), streaming into ``turn``."""
        from pydantic_ai import AgentRunResultEvent
        from pydantic_ai.messages import PartDeltaEvent, PartStartEvent, TextPart, TextPartDelta, repair_messages
        from pydantic_ai.tools import DeferredToolRequests, DeferredToolResults, ToolDenied

        context = await self._context(actor, turn.conversation_id)
        if context["resolved"] is None:
            await store_notice(self.sessions, turn, actor, f"{context['problem']} {NO_MODEL_HINT}")
            return
        try:
            model = await build_model_async(context["resolved"].config)
        except ModelConfigurationError as exc:
            notice = notice_for(actor.is_superuser, f"The AI model cannot be used: {exc}.")
            await store_notice(self.sessions, turn, actor, f"{notice} {NO_MODEL_HINT}")
            return
        # Data-provider parameters carry their current choices (enum); tools of MCP servers come after workflows.
        metas = await add_choices(self.sessions, self.dispatcher, actor, list(context["tools"]), trigger="chat")
        if self.tools.external is not None:
            metas += await self.tools.external.for_agent(context["agent_id"])
        tools = make_tools(metas)
        workflow_of = {t.tool_name: t.workflow for t in tools}

        async def run_tool(workflow: str, arguments: dict[str, Any], model_call_id: str) -> Any:
            await writer.flush()
            return await self.tools.call(turn, actor, workflow, arguments, model_call_id)

        async def search(query: str) -> list[dict[str, Any]]:
            return await self._search(actor, query, context["namespaces"])

        agent = build_chat_agent(
            instructions=context["instructions"],
            tools=tools,
            run_tool=run_tool,
            knowledge_search=search if context["namespaces"] else None,
            knowledge_namespaces=context["namespaces"],
        )
        history = context["history"]
        if prompt is not None:
            # A new message closes calls a lost turn left unanswered (pydantic-ai refuses a prompt after them).
            history = repair_messages(history)
        deferred = None
        if decisions:
            deferred = DeferredToolResults(
                approvals={
                    k: True if ok is True else ToolDenied(ok if isinstance(ok, str) else REJECTED)
                    for k, ok in decisions.items()
                }
            )
        result = None
        try:
            async with agent.run_stream_events(
                prompt, message_history=history, deferred_tool_results=deferred, model=model
            ) as events:
                async for event in events:
                    if isinstance(event, PartStartEvent) and isinstance(event.part, TextPart):
                        writer.token(event.part.content)
                    elif isinstance(event, PartDeltaEvent) and isinstance(event.delta, TextPartDelta):
                        writer.token(event.delta.content_delta)
                    elif isinstance(event, AgentRunResultEvent):
                        result = event.result
        except Exception as exc:
            mapped = provider_error(exc)
            if mapped is None:
                raise
            await writer.flush()
            await store_notice(self.sessions, turn, actor, f"{mapped} {NO_MODEL_HINT}")
            return
        if result is None:
            await writer.flush()
            return
        label = model_label(model, context["resolved"].config.model)
        waiting: list[ToolCallView] = []
        waiting_calls: list[str] = []
        # One transaction for the end of the turn: the last text, the history, the usage, waiting calls.
        async with transaction(self.sessions) as session:
            service = ConversationService(session)
            conversation = await service.get(actor, turn.conversation_id, lock=True)
            text = writer.take()
            if text:
                await service.add_message(conversation, "assistant", text, turn.id)
            conversation.history = dump_history(result.all_messages())
            conversation.updated_at = utcnow()
            inp, out, requests = usage_counts(result.usage)
            await AIUsageService(session).record(
                actor,
                source="chat",
                model=label,
                input_tokens=inp,
                output_tokens=out,
                requests=requests,
                conversation_id=conversation.id,
            )
            if isinstance(result.output, DeferredToolRequests):
                for part in result.output.approvals:
                    call = await service.add_tool_call(
                        conversation,
                        turn.id,
                        workflow_of.get(part.tool_name, part.tool_name),
                        part.args_as_dict(),
                        status=AWAITING,
                        model_call_id=part.tool_call_id,
                        needs_approval=True,
                    )
                    waiting_calls.append(call.id)
        # Each waiting call's run is submitted now: it waits for an approver (the approvals page).
        for call_id in waiting_calls:
            async with transaction(self.sessions) as session:
                call, conversation = await ConversationService(session).call(actor, call_id)
                problem = await ChatToolService(session).refusal(actor, conversation.agent_id, call.workflow_name)
                if problem is None:
                    problem = await approval_flow.submit_for_approval(session, self.dispatcher, call, actor)
                if problem is not None:
                    call.status, call.error = "rejected", problem
                if call.status != AWAITING:
                    turn.decided_meanwhile = True
                waiting.append(tool_call_view(call))
        for view in waiting:
            turn.emit("tool", call=view)

    async def _search(self, actor: Actor, query: str, namespaces: list[str]) -> list[dict[str, Any]]:
        try:
            async with transaction(self.sessions) as session:
                hits = await KnowledgeService(session, self.knowledge).search(
                    actor, query, namespaces=namespaces, limit=5
                )
        except Exception as exc:  # the model reads the problem and can answer without knowledge
            log.warning("chat knowledge search failed: %s", exc)
            return [{"error": f"The knowledge search failed: {exc}"}]
        return [{k: h.get(k) for k in ("namespace", "key", "score", "content")} for h in hits]
