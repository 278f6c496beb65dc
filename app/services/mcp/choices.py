"""Current choices of parameters filled by a data provider, for tool schemas (MCP and the chat).

A form shows a provider-backed parameter as a select; a model or an MCP client gets the same
choices as a JSON Schema ``enum`` (:func:`agents.tools.arguments_schema`). The choices are the
provider's options for the caller's organization, run through the one submit path and cached
exactly as forms cache them (:mod:`app.services.forms.data_providers`, per provider, organization
and inputs, for the provider's ``cache_ttl_seconds``).

Only providers that need no input get an enum: a cascading provider (its options depend on another
parameter's value) cannot be run before the model has chosen that value. A provider that fails, or
does not answer within :data:`WAIT_SECONDS`, leaves its parameter without an enum: a listing never
fails because of one provider.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from agents.tools import provider_parameters
from app.db import transaction
from app.models import Workflow
from app.services.actor import Actor
from app.services.errors import DomainError
from app.services.executions.dispatch import Dispatcher
from app.services.executions.service import ExecutionService, execution_view
from app.services.forms.data_providers import ProviderOutcome, ProviderRunner, provider_options
from app.services.workflows.catalogue import WorkflowService

log = logging.getLogger(__name__)

WAIT_SECONDS = 10.0  # at most this long for one provider while a tool list is built


def _runner(
    sessions: async_sessionmaker[AsyncSession], dispatcher: Dispatcher, actor: Actor, trigger: str
) -> ProviderRunner:
    async def run(provider: Workflow, inputs: dict[str, Any]) -> ProviderOutcome:
        async with transaction(sessions) as session:
            execution = await ExecutionService(session, dispatcher).submit(
                provider.name, inputs, actor, trigger=trigger, kind="data_provider"
            )
        if not await dispatcher.wait(execution.id, min(float(provider.timeout_seconds), WAIT_SECONDS)):
            return ProviderOutcome(status="Running", error="the data provider did not answer in time")
        async with transaction(sessions) as session:
            done = await ExecutionService(session).get(actor, execution.id)
            return ProviderOutcome(
                status=done.status, result=done.result, error=execution_view(done, actor)["error_message"]
            )

    return run


async def add_choices(
    sessions: async_sessionmaker[AsyncSession],
    dispatcher: Dispatcher,
    actor: Actor,
    tools: list[dict[str, Any]],
    *,
    trigger: str,
) -> list[dict[str, Any]]:
    """``tools`` (tool metadata dicts) each with ``"choices"``: ``{parameter: [{"value", "label"}]}``.

    Call it with no transaction open: a provider run commits its own execution and waits for a worker.

    Args:
        sessions: Session factory (short transactions).
        dispatcher: Runs the providers.
        actor: Whose organization the choices are for (the runs act as them).
        tools: Metadata dicts with ``params_schema`` (:func:`app.services.mcp.catalog.tool_meta`).
        trigger: The trigger the provider runs are recorded with (``mcp``, ``chat``).
    """
    wanted = {name for tool in tools for name in provider_parameters(tool.get("params_schema")).values()}
    if not wanted:
        return tools
    # A key limited to one workflow may still fill that workflow's selects: the providers it uses are
    # part of it (docs/access.md: data providers follow the workflows that use them).
    runner_actor = dataclasses.replace(actor, api_key_workflow_id=None) if actor.api_key_workflow_id else actor
    run = _runner(sessions, dispatcher, runner_actor, trigger)

    async def options_of(name: str) -> list[dict[str, Any]] | None:
        try:
            async with transaction(sessions) as session:
                provider = await WorkflowService(session).get(runner_actor, name, kind="data_provider")
            found = await asyncio.wait_for(provider_options(runner_actor, provider, {}, run), WAIT_SECONDS + 5)
        except (DomainError, TimeoutError) as exc:
            log.info("tool choices: data provider %r gave none: %s", name, exc)
            return None
        return [{"value": o.value, "label": o.label} for o in found]

    names = sorted(wanted)
    results = dict(zip(names, await asyncio.gather(*(options_of(n) for n in names)), strict=True))
    enriched = []
    for tool in tools:
        by_param = provider_parameters(tool.get("params_schema"))
        choices = {param: results[prov] for param, prov in by_param.items() if results.get(prov)}
        enriched.append({**tool, "choices": choices} if choices else tool)
    return enriched
