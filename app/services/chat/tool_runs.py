"""Chat tool calls: record the call, run its workflow through the one submit path, record and announce the outcome.

Each call is an execution (``trigger="chat"``) run by a worker with its timeout; what the model reads of
its result is bounded. The agent's tool list holds for everything a conversation runs (docs/ai.md). No
transaction is open while a tool runs.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.db import transaction
from app.models.ai import ChatToolCall
from app.models.base import utcnow
from app.services.actor import Actor
from app.services.chat.agents import ChatToolService
from app.services.chat.conversations import AWAITING, ConversationService, tool_call_view
from app.services.chat.mcp_tools import ExternalTools, is_external
from app.services.chat.turn_stream import Turn
from app.services.errors import DomainError, InvalidInputError
from app.services.executions.dispatch import Dispatcher
from app.services.executions.service import TERMINAL, ExecutionService, execution_view
from app.services.executions.views import ExecutionView
from bifrost.enums import ExecutionStatus

WAIT_MARGIN_SECONDS = 30.0
MAX_RESULT_CHARS = 20_000  # what the model reads of one tool result


class ToolRunner:
    """Runs the tool calls of chat turns.

    Args:
        sessions: Session factory (short transactions).
        dispatcher: The submit path's dispatcher.
        external: Runs tools of external MCP servers.
    """

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        dispatcher: Dispatcher,
        external: ExternalTools | None = None,
    ) -> None:
        self.sessions = sessions
        self.dispatcher = dispatcher
        self.external = external  # tools of MCP servers given to agents (docs/mcp.md)

    async def call(
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
        return for_model(outcome)

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
        if self.external is not None and is_external(workflow):  # an MCP server's tool: runs over there
            async with transaction(self.sessions) as session:
                agent_id = await agent_of(session, actor, turn)
            return await self.external.call(actor, agent_id, workflow, arguments)
        if submitted is not None:
            async with transaction(self.sessions) as session:
                execution = await ExecutionService(session).get(actor, submitted)
        else:
            try:
                async with transaction(self.sessions) as session:
                    # The agent's tool list holds for everything the conversation runs (docs/ai.md).
                    refused = await ChatToolService(session).refusal(
                        actor, await agent_of(session, actor, turn), workflow
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


async def agent_of(session: AsyncSession, actor: Actor, turn: Turn) -> str | None:
    """The agent id of the turn's conversation."""
    return (await ConversationService(session).get(actor, turn.conversation_id)).agent_id


def for_model(outcome: dict[str, Any]) -> dict[str, Any]:
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
