"""Fill form fields from data providers: run them (through the submit path) and resolve their inputs.

Never call these while a database transaction of the request is open: a provider run commits
its own execution and waits for a worker, and on SQLite one open transaction would block the
very write the run needs.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from litestar import Request

from app.models import Workflow
from app.services.actor import Actor
from app.services.errors import DomainError, InvalidInputError
from app.services.executions.service import ExecutionService, execution_view
from app.services.forms.data_providers import (
    DataProviderError,
    Option,
    ProviderOutcome,
    ProviderRunner,
    cached_options,
    provider_options,
    validated_inputs,
)
from app.web.deps import db, get_platform
from app.web.pages.form_fields import option_key, params_from_values

# Extra seconds a form waits for a provider beyond the provider's own timeout.
_WAIT_MARGIN_SECONDS = 5.0


def provider_runner(request: Request[Any, Any, Any], actor: Actor) -> ProviderRunner:
    """A runner that submits the provider as ``actor`` (trigger ``form``) and waits for its outcome."""
    platform = get_platform(request.app.state)

    async def run(provider: Workflow, inputs: dict[str, Any]) -> ProviderOutcome:
        async with db(request) as session:
            execution = await ExecutionService(session, platform.dispatcher).submit(
                provider.name, inputs, actor, trigger="form", kind="data_provider"
            )
        if not await platform.dispatcher.wait(execution.id, provider.timeout_seconds + _WAIT_MARGIN_SECONDS):
            return ProviderOutcome(status="Running", error="the data provider did not answer in time")
        async with db(request) as session:
            done = await ExecutionService(session).get(actor, execution.id)
            # execution_view hides unexpected errors' details from non-admins, as everywhere else.
            return ProviderOutcome(
                status=done.status, result=done.result, error=execution_view(done, actor)["error_message"]
            )

    return run


@dataclass
class FieldOptions:
    """The state of one provider-backed field.

    Attributes:
        options: ``[{"label", "value"}]`` with values as HTML text, once known.
        error: Why there are no options (shown on the field).
        waiting_for: Labels of fields to fill in first (the provider needs their values).
        pending: Not cached: the page loads the options after it is shown.
        depends_on: Names of fields whose change re-renders this one.
    """

    options: list[dict[str, Any]] | None = None
    error: str | None = None
    waiting_for: list[str] = field(default_factory=list)
    pending: bool = False
    depends_on: list[str] = field(default_factory=list)

    def allows(self, text: str) -> bool:
        """True when ``text`` is the value of one of the options."""
        return any(o["value"] == text for o in self.options or ())


def _as_choices(options: list[Option]) -> list[dict[str, Any]]:
    return [{"label": o.label, "value": option_key(o.value)} for o in options]


def input_sources(
    target: dict[str, Any], provider: Workflow, fields: dict[str, dict[str, Any]]
) -> dict[str, dict[str, Any]]:
    """Where each input of ``target``'s provider comes from: ``{"arg": {"field": name} | {"value": v}}``.

    The field's ``data_provider_inputs`` when it has any; otherwise each provider parameter named
    like another field of the form takes that field's value.
    """
    explicit = target.get("data_provider_inputs")
    if explicit:
        return dict(explicit)
    return {
        p["name"]: {"field": p["name"]}
        for p in provider.parameters
        if p["name"] in fields and p["name"] != target["name"]
    }


def dependents(fields: list[dict[str, Any]], providers: dict[str, Workflow | None]) -> dict[str, list[str]]:
    """For each field, the provider-backed fields whose choices depend on its value (direct only)."""
    by_name = {f["name"]: f for f in fields}
    graph: dict[str, list[str]] = {}
    for target in fields:
        provider = providers.get(target.get("data_provider") or "")
        if provider is None:
            continue
        for source in input_sources(target, provider, by_name).values():
            origin = source.get("field")
            if isinstance(origin, str) and origin in by_name and target["name"] not in graph.setdefault(origin, []):
                graph[origin].append(target["name"])
    return graph


def provider_inputs(
    target: dict[str, Any], provider: Workflow, fields: dict[str, dict[str, Any]], values: dict[str, Any]
) -> tuple[dict[str, Any], list[str], list[str]]:
    """The inputs of ``target``'s provider taken from the form.

    Sources come from :func:`input_sources`.

    Returns:
        ``(inputs, depends_on, waiting_for)``: inputs by provider parameter, the fields they
        come from, and labels of fields that are empty although the provider requires them.
    """
    sources = input_sources(target, provider, fields)
    required = {p["name"] for p in provider.parameters if p.get("required")}
    inputs: dict[str, Any] = {}
    depends_on: list[str] = []
    waiting_for: list[str] = []
    for arg, source in sources.items():
        if "field" not in source:
            inputs[arg] = source.get("value")
            continue
        name = source["field"]
        origin = fields.get(name)
        if origin is None:
            continue
        depends_on.append(name)
        converted, problems = params_from_values([origin], values)
        if name in converted and not problems:
            inputs[arg] = converted[name]
        elif arg in required:
            waiting_for.append(origin.get("label") or name)
    return inputs, depends_on, waiting_for


async def resolve_fields(
    request: Request[Any, Any, Any],
    actor: Actor,
    fields: list[dict[str, Any]],
    values: dict[str, Any],
    providers: dict[str, Workflow | None],
    *,
    run: bool | set[str],
    only: str | None = None,
) -> dict[str, FieldOptions]:
    """Options of every provider-backed field (or just ``only``).

    Args:
        request: The page request (runs use its platform).
        actor: Who looks at the form.
        fields: The form's fields.
        values: Current input values.
        providers: Provider rows by name (None: not found or not visible).
        run: Run providers whose options are not cached (True: all, a set: those fields'), else
            mark them ``pending`` (the page loads them after it is shown).
        only: Resolve just this field.

    Returns:
        A :class:`FieldOptions` per provider-backed field name.
    """
    by_name = {f["name"]: f for f in fields}
    states: dict[str, FieldOptions] = {}
    to_run: list[tuple[str, Workflow, dict[str, Any]]] = []
    for target in fields:
        name = target["name"]
        provider_name = target.get("data_provider")
        if not provider_name or (only is not None and name != only):
            continue
        state = states[name] = FieldOptions()
        provider = providers.get(provider_name)
        if provider is None:
            state.error = f"The data provider {provider_name!r} is not available."
            continue
        inputs, state.depends_on, state.waiting_for = provider_inputs(target, provider, by_name, values)
        if state.waiting_for:
            continue
        try:
            clean = validated_inputs(provider, inputs)
        except InvalidInputError as exc:
            state.error = "Cannot load the choices: " + "; ".join(f"{e['field']}: {e['message']}" for e in exc.errors)
            continue
        hit = cached_options(provider, actor, clean)
        if hit is not None:
            state.options = _as_choices(hit)
        elif run is True or (isinstance(run, set) and name in run):
            to_run.append((name, provider, clean))
        else:
            state.pending = True
    if to_run:
        runner = provider_runner(request, actor)
        outcomes = await asyncio.gather(
            *(provider_options(actor, provider, inputs, runner) for _, provider, inputs in to_run),
            return_exceptions=True,
        )
        for (name, _, _), outcome in zip(to_run, outcomes, strict=True):
            if isinstance(outcome, list):
                states[name].options = _as_choices(outcome)
            elif isinstance(outcome, DataProviderError):
                states[name].error = f"Could not load the choices: {outcome}"
            elif isinstance(outcome, DomainError):
                states[name].error = f"Could not load the choices: {outcome}"
            else:
                raise outcome
    return states
