"""Chat turns: a user message (or an approval) starts a background task that answers it.

A turn streams events that pages (SSE) and the API (NDJSON) follow while it runs, from its start
even when they connect late:

* ``segment`` ``{index}`` then ``token`` ``{index, content}``: the assistant's text as the model writes it;
* ``tool`` / ``tool_update`` ``{call}``: a tool call appears, starts, ends (or waits for approval);
* ``notice`` ``{content}``: the platform speaks (no model configured, provider failure, ...);
* ``done``: the last event.

Tool calls go through ``ExecutionService.submit(..., trigger="chat")``: each is a recorded
execution run by a worker with its timeout, and its result or error goes back to the model.
No database transaction is open while the model writes or a tool runs.

Turns live in the web process: a server stopped mid-turn leaves the turn's stored part behind
(the user's message, text stored before each tool call, calls ``running``). On the next start
:func:`recover_interrupted_turns` ends such leftovers (calls ``interrupted``, a notice after them).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

from sqlalchemy import and_, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlmodel import col

from agents.chat import build_chat_agent, dump_history, load_history
from agents.commands import HELP, CommandError, is_command, parse_command
from agents.models import ModelConfigurationError, build_model_async, model_label
from agents.tools import arguments_schema, make_tools
from app.db import transaction
from app.models.ai import ChatConversation, ChatMessage, ChatToolCall
from app.models.base import new_id, utcnow
from app.services.actor import Actor
from app.services.chat import approval_flow
from app.services.chat.agents import ChatAgentService, ChatToolService
from app.services.chat.ai import provider_error, usage_counts
from app.services.chat.ai_settings import AIConfigurationError, AISettingsService
from app.services.chat.ai_usage import AIUsageService
from app.services.chat.approval_flow import Decisions
from app.services.chat.conversations import (
    AWAITING,
    DEFAULT_TITLE,
    ConversationService,
    check_message,
    message_view,
    title_from,
    tool_call_view,
)
from app.services.chat.views import MessageView, ToolCallView, ToolWorkflow
from app.services.errors import ConflictError, DomainError, InvalidInputError, NotFoundError, PermissionDeniedError
from app.services.executions.approvals import ApprovalService
from app.services.executions.dispatch import Dispatcher
from app.services.executions.service import TERMINAL, ExecutionService, execution_view
from app.services.executions.views import ExecutionView
from app.services.identity.auth import AuthService
from app.services.knowledge.service import KnowledgeRuntime, KnowledgeService
from app.services.secrets import SecretBox
from app.settings import Settings
from bifrost.enums import ExecutionStatus

log = logging.getLogger(__name__)

KEEP_FINISHED_SECONDS = 600.0  # a browser reconnecting shortly after the end still gets the events
WAIT_MARGIN_SECONDS = 30.0
MAX_RESULT_CHARS = 20_000  # what the model reads of one tool result
NO_MODEL_HINT = "Meanwhile tools run by command: /tools lists them, /run <workflow> key=value ... runs one."
REJECTED = "The user rejected this call; it did not run. Do not call it again unless the user asks."
INTERRUPTED = "interrupted"  # a tool call status: its turn was lost when the server stopped
INTERRUPTED_CALL = (
    "The server stopped during this call's turn, so the assistant never got its result "
    "(its execution, if it started, is listed under Executions)."
)
FAILED_TURN_CALL = "The assistant failed unexpectedly during this call's turn (the error has been logged)."
INTERRUPTED_REPLY = (
    "The server restarted while this reply was being written, so it stopped here (what was already "
    "stored is kept above). Send your message again to continue."
)


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

    def emit(self, kind: str, **data: Any) -> dict[str, Any]:
        """Add an event and hand it to every follower."""
        event = {"seq": len(self.events), "type": kind, **data}
        self.events.append(event)
        for queue in self._followers:
            queue.put_nowait(event)
        return event

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


class _Writer:
    """The assistant's text of a turn, in segments split by tool calls; each segment is one message."""

    def __init__(self, runtime: ChatRuntime, turn: Turn, actor: Actor) -> None:
        self.runtime, self.turn, self.actor = runtime, turn, actor
        self.index = -1
        self.text = ""

    def token(self, content: str) -> None:
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
        if not self.text:
            return
        text = self.take()
        async with transaction(self.runtime.sessions) as session:
            service = ConversationService(session)
            conversation = await service.get(self.actor, self.turn.conversation_id, lock=True)
            await service.add_message(conversation, "assistant", text, self.turn.id)


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
        self.turns: dict[str, Turn] = {}
        self.active: dict[str, str] = {}  # conversation id -> running turn id

    # ----- starting turns -------------------------------------------------------------------------
    def turn(self, actor: Actor, turn_id: str) -> Turn:
        """A turn of the actor's (404 for anyone else's or a forgotten one)."""
        turn = self.turns.get(turn_id)
        if turn is None or turn.user_id != actor.user_id:
            raise NotFoundError(f"Turn {turn_id!r} not found (it may have ended a while ago: reload the conversation).")
        return turn

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
            if conversation.title == DEFAULT_TITLE:
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
        self.turns[turn.id] = turn
        self.active[conversation_id] = turn.id

        async def run() -> None:
            writer = _Writer(self, turn, actor)
            try:
                await self._command_outcome(turn, actor, writer, call_id)
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

    async def _command_outcome(self, turn: Turn, actor: Actor, writer: _Writer, call_id: str) -> None:
        """A /run call decided by an approver: wait for its run (approved) and say how it went."""
        async with transaction(self.sessions) as session:
            call, _ = await ConversationService(session).call(actor, call_id)
            workflow, status, error, execution_id = call.workflow_name, call.status, call.error, call.execution_id
        if status != "approved" or execution_id is None:
            async with transaction(self.sessions) as session:
                call, _ = await ConversationService(session).call(actor, call_id)
                view = tool_call_view(call)
            turn.emit("tool_update", call=view)
            writer.token(f"{workflow} did not run: {error}")
            return
        outcome = await self._tool_call(turn, actor, workflow, call.arguments, None, existing_call=call_id)
        if outcome["status"] == ExecutionStatus.COMPLETED.value:
            writer.token(f"{workflow} completed.")
        else:
            writer.token(f"{workflow} failed: {outcome.get('error')}")

    def _start(
        self, actor: Actor, conversation_id: str, turn_id: str, prompt: str | None, decisions: Decisions | None
    ) -> Turn:
        self._forget_finished()
        turn = Turn(turn_id, conversation_id, actor.user_id)
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
        writer = _Writer(self, turn, actor)
        try:
            if prompt is not None and is_command(prompt):
                await self._command(turn, actor, writer, prompt)
            else:
                await self._agent_turn(turn, actor, writer, prompt, decisions)
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
        turn.emit("notice", content=text)
        async with transaction(self.sessions) as session:
            service = ConversationService(session)
            conversation = await service.get(actor, turn.conversation_id, lock=True)
            await service.add_message(conversation, "notice", text, turn.id)

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
                resolved, problem = None, str(exc)
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
            }

    async def _agent_turn(
        self, turn: Turn, actor: Actor, writer: _Writer, prompt: str | None, decisions: Decisions | None
    ) -> None:
        from pydantic_ai import AgentRunResultEvent
        from pydantic_ai.messages import PartDeltaEvent, PartStartEvent, TextPart, TextPartDelta, repair_messages
        from pydantic_ai.tools import DeferredToolRequests, DeferredToolResults, ToolDenied

        context = await self._context(actor, turn.conversation_id)
        if context["resolved"] is None:
            await self._notice(turn, actor, f"{context['problem']} {NO_MODEL_HINT}")
            return
        try:
            model = await build_model_async(context["resolved"].config)
        except ModelConfigurationError as exc:
            await self._notice(turn, actor, f"The AI model cannot be used: {exc}. {NO_MODEL_HINT}")
            return
        tools = make_tools(context["tools"])
        workflow_of = {t.tool_name: t.workflow for t in tools}

        async def run_tool(workflow: str, arguments: dict[str, Any], model_call_id: str) -> Any:
            await writer.flush()
            return await self._tool_call(turn, actor, workflow, arguments, model_call_id)

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
            await self._notice(turn, actor, f"{mapped} {NO_MODEL_HINT}")
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

    # ----- tools ----------------------------------------------------------------------------------
    async def _tool_call(
        self,
        turn: Turn,
        actor: Actor,
        workflow: str,
        arguments: dict[str, Any],
        model_call_id: str | None,
        *,
        existing_call: str | None = None,
    ) -> dict[str, Any]:
        """Record the call, run the workflow, record and announce the outcome; returns what the model reads.

        An approved call whose run was submitted while it waited (``execution_id`` set) is not run
        again: its run's outcome is awaited.
        """
        async with transaction(self.sessions) as session:
            service = ConversationService(session)
            conversation = await service.get(actor, turn.conversation_id, lock=True)
            call: ChatToolCall | None = None
            if existing_call is not None:
                call = (await service.call(actor, existing_call))[0]
            elif model_call_id:
                call = await service.approved_call(conversation.id, model_call_id)
            new = call is None
            if call is None:
                call = await service.add_tool_call(
                    conversation, turn.id, workflow, arguments, status="running", model_call_id=model_call_id
                )
            else:
                call.status, call.updated_at = "running", utcnow()  # approved earlier, running now
            call_id, submitted = call.id, call.execution_id
            view = tool_call_view(call)
        turn.emit("tool" if new else "tool_update", call=view)
        outcome = await self._execute(actor, workflow, arguments, call_id, turn, submitted)
        if outcome["status"] == ExecutionStatus.AWAITING_APPROVAL.value:  # a /run of a workflow that needs approval
            async with transaction(self.sessions) as session:
                call, _ = await ConversationService(session).call(actor, call_id)
                call.status, call.needs_approval, call.updated_at = AWAITING, True, utcnow()
                view = tool_call_view(call)
            turn.emit("tool_update", call=view)
            return outcome
        async with transaction(self.sessions) as session:
            call, _ = await ConversationService(session).call(actor, call_id)
            call.status = "completed" if outcome["status"] == ExecutionStatus.COMPLETED.value else "failed"
            call.execution_id = outcome.get("execution_id")
            call.result = outcome.get("result")
            call.error = outcome.get("error")
            call.updated_at = utcnow()
            view = tool_call_view(call)
        turn.emit("tool_update", call=view)
        return _for_model(outcome)

    async def _set_execution(self, actor: Actor, call_id: str, execution_id: str, turn: Turn) -> None:
        async with transaction(self.sessions) as session:
            call, _ = await ConversationService(session).call(actor, call_id)
            call.execution_id, call.updated_at = execution_id, utcnow()
            view = tool_call_view(call)
        turn.emit("tool_update", call=view)

    async def _execute(
        self,
        actor: Actor,
        workflow: str,
        arguments: dict[str, Any],
        call_id: str,
        turn: Turn,
        submitted: str | None = None,
    ) -> dict[str, Any]:
        """Submit through the one submit path (unless ``submitted`` already), wait for the end, and say how it went."""
        if submitted is not None:
            async with transaction(self.sessions) as session:
                execution = await ExecutionService(session).get(actor, submitted)
        else:
            try:
                async with transaction(self.sessions) as session:
                    # The agent's tool list holds for everything the conversation runs (docs/ai.md).
                    refused = await ChatToolService(session).refusal(
                        actor, await _agent_of(session, actor, turn), workflow
                    )
                    if refused is not None:
                        return {"status": ExecutionStatus.FAILED.value, "error": refused}
                    execution = await ExecutionService(session, self.dispatcher).submit(
                        workflow, arguments, actor, trigger="chat"
                    )
            except InvalidInputError as exc:
                details = "; ".join(f"{e.get('field')}: {e.get('message')}" for e in exc.errors) or str(exc)
                return {"status": ExecutionStatus.FAILED.value, "error": f"Invalid arguments: {details}"}
            except DomainError as exc:
                return {"status": ExecutionStatus.FAILED.value, "error": str(exc)}
            await self._set_execution(actor, call_id, execution.id, turn)
            if execution.status == ExecutionStatus.AWAITING_APPROVAL.value:
                note = "This run waits for an approver (see Approvals); it runs once approved."
                return {"status": execution.status, "execution_id": execution.id, "error": note}
        view = await self._outcome_of(actor, execution.id, execution.timeout_seconds)
        outcome: dict[str, Any] = {"status": view["status"], "execution_id": execution.id}
        if view["status"] == ExecutionStatus.COMPLETED.value:
            outcome["result"] = view["result"]
        else:
            outcome["error"] = view["error_message"] or f"The execution ended {view['status']}."
        return outcome

    async def _outcome_of(self, actor: Actor, execution_id: str, timeout_seconds: int) -> ExecutionView:
        """The execution once ended (or as it is when the wait runs out).

        A run released by an approver in another server process is unknown to this dispatcher, whose
        wait returns at once: the row is polled then.
        """
        deadline = time.monotonic() + timeout_seconds + WAIT_MARGIN_SECONDS
        await self.dispatcher.wait(execution_id, timeout_seconds + WAIT_MARGIN_SECONDS)
        while True:
            async with transaction(self.sessions) as session:
                view = execution_view(await ExecutionService(session).get(actor, execution_id), actor)
            if view["status"] in TERMINAL or time.monotonic() > deadline:
                return view
            await asyncio.sleep(0.5)

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

    # ----- command mode ---------------------------------------------------------------------------
    async def _command(self, turn: Turn, actor: Actor, writer: _Writer, text: str) -> None:
        context_tools: list[ToolWorkflow]
        async with transaction(self.sessions) as session:
            conversation = await ConversationService(session).get(actor, turn.conversation_id)
            agent = await ChatAgentService(session).for_conversation(actor, conversation.agent_id)
            context_tools = await ChatToolService(session).tools_for(actor, agent)
        schemas = {t["name"]: arguments_schema(t["params_schema"]) for t in context_tools}
        try:
            command = parse_command(text, schemas)
        except CommandError as exc:
            writer.token(str(exc))
            return
        if command.name == "help":
            writer.token(HELP)
        elif command.name == "tools":
            writer.token(_tools_text(context_tools))
        elif command.workflow not in schemas:
            writer.token(f"No tool named {command.workflow!r} here. /tools lists the ones you can run.")
        else:
            await writer.flush()
            outcome = await self._tool_call(turn, actor, str(command.workflow), command.arguments, None)
            if outcome["status"] == ExecutionStatus.COMPLETED.value:
                writer.token(f"{command.workflow} completed.")
            else:
                writer.token(f"{command.workflow} failed: {outcome.get('error')}")


async def _agent_of(session: AsyncSession, actor: Actor, turn: Turn) -> str | None:
    """The agent id of the turn's conversation."""
    return (await ConversationService(session).get(actor, turn.conversation_id)).agent_id


def _tools_text(tools: list[ToolWorkflow]) -> str:
    if not tools:
        return "No tool workflows are available to you here."
    lines = ["Tools you can run here (/run <name> key=value ...):"]
    for tool in tools:
        params = ", ".join(
            f"{p['name']}{'' if p.get('required') else '?'}" for p in tool.get("parameters") or [] if "name" in p
        )
        approval = " (needs approval)" if tool["needs_approval"] else ""
        description = (tool.get("tool_description") or tool.get("description") or "").strip().splitlines()
        summary = f": {description[0]}" if description else ""
        lines.append(f"- {tool['name']}({params}){approval}{summary}")
    return "\n".join(lines)


def _for_model(outcome: dict[str, Any]) -> dict[str, Any]:
    """What the model reads of a tool's outcome (a long result is cut, saying so)."""
    answer = {k: v for k, v in outcome.items() if k != "execution_id"}
    text = json.dumps(answer, ensure_ascii=False, default=str)
    if len(text) > MAX_RESULT_CHARS:
        answer = {
            "status": outcome["status"],
            "result_truncated": text[:MAX_RESULT_CHARS],
            "note": f"The result was {len(text)} characters; only the first {MAX_RESULT_CHARS} are shown.",
        }
    return answer


# ----- start-up recovery ----------------------------------------------------------------------------
async def recover_interrupted_turns(sessions: async_sessionmaker[AsyncSession]) -> int:
    """On server start: end the chat turns a stopped server left unfinished; returns how many.

    Turns run in the web process, so after a restart none is running. A conversation was left
    mid-turn when a tool call is still ``running`` (or ``approved`` with its batch decided), or
    when its last message is one a turn always answers: the user's message, or a tool call
    whose result the stored history never got. Such calls end ``interrupted``; a notice follows
    the reply's stored part; calls the lost turn left unanswered in the history are closed so a
    new message can be sent. Only the serving process may call this (like execution recovery).
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
