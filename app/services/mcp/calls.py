"""A tool call from an MCP client: a normal execution (trigger ``mcp``) and the MCP result it answers.

The call goes through the one submit path (``ExecutionService.submit``): access policy, API key
limits, organization and parameter validation hold as for every trigger, and the run is recorded in
history with its logs. What the client gets back:

* completed: the result as ``structuredContent`` (an object; other values as ``{"result": value}``)
  plus the same JSON as text;
* a ``UserError`` (or any failure the platform words for users): a tool error with its message;
  other failures: a tool error with the message non-admins see everywhere else, and where to look;
* bad arguments: a tool error naming each field, and no execution;
* a workflow that needs approval: it waits for an approver; the answer says so and gives the
  execution page and the approvals page (the approval flow decides the run; nothing is held open).

Every answer carries the execution id in ``_meta`` (``bifrost/execution_id``) when there is one.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.db import transaction
from app.services.actor import Actor
from app.services.errors import DomainError, InvalidInputError
from app.services.executions.dispatch import Dispatcher
from app.services.executions.service import TERMINAL, ExecutionService, execution_view
from app.services.executions.views import ExecutionView
from bifrost.enums import ExecutionStatus

TRIGGER = "mcp"
WAIT_MARGIN_SECONDS = 30.0
MAX_TEXT_CHARS = 50_000  # the text copy of a result; the structured content is whole
EXECUTION_META = "bifrost/execution_id"


@dataclass
class CallOutcome:
    """What an MCP tool call answers (turned into a ``CallToolResult`` by the server).

    Attributes:
        text: The text content.
        structured: The structured content (an object), if any.
        is_error: A tool error (the model reads it and may correct itself).
        execution_id: The execution it started, if any.
    """

    text: str
    structured: dict[str, Any] | None = None
    is_error: bool = False
    execution_id: str | None = None


def invalid_arguments_text(exc: InvalidInputError) -> str:
    """``Invalid arguments: field: message; ...`` (what the model reads to correct its call)."""
    details = "; ".join(f"{e.get('field')}: {e.get('message')}" for e in exc.errors) or str(exc)
    return f"Invalid arguments: {details}"


def _as_text(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
    if len(text) > MAX_TEXT_CHARS:
        text = text[:MAX_TEXT_CHARS] + f"… (cut: {len(text)} characters; the structured content is whole)"
    return text


class ToolCalls:
    """Runs MCP tool calls as executions.

    Args:
        sessions: Session factory (short transactions; none is open while a run is awaited).
        dispatcher: The submit path's dispatcher.
        public_url: This server's base URL (links to the execution and approvals pages).
    """

    def __init__(self, sessions: async_sessionmaker[AsyncSession], dispatcher: Dispatcher, public_url: str) -> None:
        self.sessions = sessions
        self.dispatcher = dispatcher
        self.public_url = public_url.rstrip("/")

    async def call(self, actor: Actor, workflow: str, arguments: dict[str, Any]) -> CallOutcome:
        """Submit ``workflow`` with ``arguments`` as ``actor``, wait for its end, and say how it went."""
        try:
            async with transaction(self.sessions) as session:
                execution = await ExecutionService(session, self.dispatcher).submit(
                    workflow, arguments, actor, trigger=TRIGGER
                )
                execution_id, status, timeout = execution.id, execution.status, execution.timeout_seconds
        except InvalidInputError as exc:
            return CallOutcome(invalid_arguments_text(exc), is_error=True)
        except DomainError as exc:
            return CallOutcome(str(exc), is_error=True)
        if status == ExecutionStatus.AWAITING_APPROVAL.value:
            return self._awaiting(workflow, execution_id)
        view = await self._outcome_of(actor, execution_id, timeout)
        return self._outcome(view)

    def _links(self, execution_id: str) -> dict[str, str]:
        return {
            "execution_url": f"{self.public_url}/executions/{execution_id}",
            "approvals_url": f"{self.public_url}/approvals/{execution_id}",
        }

    def _awaiting(self, workflow: str, execution_id: str) -> CallOutcome:
        links = self._links(execution_id)
        text = (
            f"{workflow} needs approval: the run {execution_id} waits for an approver and has not run yet. "
            f"An approver decides it on the approvals page ({links['approvals_url']}); follow the run at "
            f"{links['execution_url']}. It runs once approved (a rejection cancels it)."
        )
        structured = {"status": ExecutionStatus.AWAITING_APPROVAL.value, "execution_id": execution_id, **links}
        return CallOutcome(text, structured, execution_id=execution_id)

    def _outcome(self, view: ExecutionView) -> CallOutcome:
        execution_id = view["execution_id"]
        if view["status"] == ExecutionStatus.COMPLETED.value:
            result = view["result"]
            structured = result if isinstance(result, dict) else {"result": result}
            return CallOutcome(_as_text(result), structured, execution_id=execution_id)
        url = self._links(execution_id)["execution_url"]
        if view["status"] not in TERMINAL:
            text = f"The run {execution_id} is still {view['status']}: follow it at {url}."
            return CallOutcome(text, {"status": view["status"], "execution_id": execution_id}, True, execution_id)
        message = view["error_message"] or f"The run ended {view['status']}."
        if not view["user_error"]:
            message = f"{message} (run {execution_id}: {url})"
        return CallOutcome(message, None, True, execution_id)

    async def _outcome_of(self, actor: Actor, execution_id: str, timeout_seconds: int) -> ExecutionView:
        """The execution once ended (or as it is when the wait runs out).

        A run another server process dispatched is unknown to this dispatcher, whose wait returns at
        once: the row is polled then.
        """
        deadline = time.monotonic() + timeout_seconds + WAIT_MARGIN_SECONDS
        await self.dispatcher.wait(execution_id, timeout_seconds + WAIT_MARGIN_SECONDS)
        while True:
            async with transaction(self.sessions) as session:
                view = execution_view(await ExecutionService(session).get(actor, execution_id), actor)
            if view["status"] in TERMINAL or time.monotonic() > deadline:
                return view
            await asyncio.sleep(0.5)
