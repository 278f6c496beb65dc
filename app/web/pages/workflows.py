"""The workflows catalogue and each workflow's automatic form (render, provider fields, submit)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from litestar import MediaType, Request, get, post
from litestar.params import Parameter
from litestar.response import Redirect, Template

from app.db import read_transaction
from app.models import Workflow
from app.services.actor import Actor
from app.services.errors import InvalidInputError, NotFoundError
from app.services.executions.service import ExecutionService, execution_view, params_model
from app.services.forms.data_providers import DataProviderService
from app.services.workflows.catalogue import WorkflowService, workflow_detail
from app.web.deps import db, get_platform
from app.web.pages.common import PageController, layout_context, render_string
from app.web.pages.form_fields import (
    errors_by_field,
    fields_from_parameters,
    initial_values,
    params_from_values,
    values_from_form,
)
from app.web.pages.providers import FieldOptions, dependents, resolve_fields
from app.web.pages.workflow_access import workflow_page_access
from bifrost._schema import validate_parameters
from bifrost.errors import ValidationError

_LAST_RUNS = 3


@dataclass
class LoadedForm:
    """A workflow's form and everything its page needs from the database."""

    workflow: Workflow
    fields: list[dict[str, Any]]
    providers: dict[str, Workflow | None]
    layout: dict[str, Any]


async def load_form(
    request: Request[Any, Any, Any], actor: Actor, name: str, *, with_layout: bool = True
) -> LoadedForm:
    """Read the workflow, build its fields and look up their data providers (one transaction)."""
    async with db(request) as session:
        workflow = await WorkflowService(session).get(actor, name)
        fields = fields_from_parameters(workflow.parameters, (workflow.params_schema or {}).get("$defs"))
        providers: dict[str, Workflow | None] = {}
        service = DataProviderService(session)
        for provider_name in {f["data_provider"] for f in fields if f.get("data_provider")}:
            try:
                providers[provider_name] = await service.provider(actor, provider_name)
            except NotFoundError:
                providers[provider_name] = None
        layout = await layout_context(request, session, actor) if with_layout else {}
    return LoadedForm(workflow, fields, providers, layout)


def form_context(
    loaded: LoadedForm,
    values: dict[str, Any],
    states: dict[str, FieldOptions],
    errors: dict[str, str] | None = None,
    general: list[str] | None = None,
) -> dict[str, Any]:
    """The template context of ``pages/workflow_form.html``."""
    return {
        **loaded.layout,
        "workflow": workflow_detail(loaded.workflow),
        "fields": loaded.fields,
        "values": values,
        "states": states,
        "errors": errors or {},
        "general_errors": general or [],
        "dependents": dependents(loaded.fields, loaded.providers),
        "fields_url": f"/workflows/{quote(loaded.workflow.name)}/fields",
    }


def check_provider_choices(
    fields: list[dict[str, Any]], values: dict[str, Any], states: dict[str, FieldOptions], errors: dict[str, str]
) -> None:
    """A provider-backed field only takes one of its provider's choices (added to ``errors``)."""
    for field in fields:
        state = states.get(field["name"])
        value = values.get(field["name"])
        chosen = value if isinstance(value, list) else [value] if value else []
        if state is None or not chosen or field["name"] in errors:
            continue
        if state.options is None:
            errors[field["name"]] = state.error or "The choices could not be loaded, so this value cannot be checked."
        elif not all(state.allows(v) for v in chosen):
            errors[field["name"]] = "Choose one of the listed options."


def _matches(workflow: Workflow, q: str, category: str) -> bool:
    """The page's filter: the category exactly, and every word of ``q`` in the name, description or tags."""
    if category and workflow.category != category:
        return False
    haystack = " ".join([workflow.name, workflow.description or "", workflow.category, *(workflow.tags or [])]).lower()
    return all(word in haystack for word in q.lower().split())


class WorkflowPages(PageController):
    """``/workflows``: what can be run, and the form that runs it."""

    path = "/workflows"

    @get("/")
    async def catalogue(
        self,
        request: Request[Any, Any, Any],
        actor: Actor,
        q: str = Parameter(query="q", default="", max_length=200),
        category: str = Parameter(query="category", default="", max_length=200),
    ) -> Template:
        """Every workflow the user can run (those matching ``q`` and ``category``), with parameters and last runs."""
        async with db(request) as session:
            every = await WorkflowService(session).list(actor)
            errors = await WorkflowService(session).errors(actor) if actor.is_superuser else []
            layout = await layout_context(request, session, actor)
        workflows = [w for w in every if _matches(w, q, category)]
        # The history is read on its own connection (SQLite): runs never wait for this page.
        async with read_transaction(get_platform(request.app.state).sessions) as session:
            recent = await ExecutionService(session).recent_by_workflow(actor, [w.name for w in workflows], _LAST_RUNS)
        last_runs = {name: [execution_view(e, actor) for e in runs] for name, runs in recent.items()}
        return Template(
            "pages/workflows.html",
            context={
                **layout,
                "workflows": [workflow_detail(w) for w in workflows],
                "total": len(every),
                "categories": sorted({w.category for w in every}),
                "q": q,
                "category": category,
                "last_runs": last_runs,
                "workspace_errors": errors,
            },
        )

    @get("/{name:str}")
    async def form(
        self,
        request: Request[Any, Any, Any],
        actor: Actor,
        name: str,
        from_execution: str | None = Parameter(query="from", default=None, required=False),
    ) -> Template:
        """The workflow's form, filled with defaults (or with a previous run's parameters)."""
        loaded = await load_form(request, actor, name)
        given = None
        if from_execution:
            async with db(request) as session:
                previous = await ExecutionService(session).get(actor, from_execution)
            if previous.workflow_name == loaded.workflow.name:
                given = previous.input_data
        values = initial_values(loaded.fields, given)
        # Cached choices are shown at once; the others load right after the page (never blocking it).
        states = await resolve_fields(request, actor, loaded.fields, values, loaded.providers, run=False)
        async with db(request) as session:
            access = await workflow_page_access(session, actor, loaded.workflow.name)
        return Template("pages/workflow_form.html", context={**form_context(loaded, values, states), **access})

    @get("/{name:str}/fields", media_type=MediaType.HTML)
    async def fields(
        self,
        request: Request[Any, Any, Any],
        actor: Actor,
        name: str,
        field: str | None = None,
        changed: str | None = None,
    ) -> str:
        """htmx: one provider field with its choices (``field``), or every field that depends on ``changed``.

        The current input of the whole form comes as query parameters.
        """
        loaded = await load_form(request, actor, name, with_layout=False)
        names = {f["name"] for f in loaded.fields}
        values = values_from_form(loaded.fields, request.query_params)
        graph = dependents(loaded.fields, loaded.providers)
        if field is not None:
            if field not in names:
                raise NotFoundError(f"The form has no field {field!r}.")
            states = await resolve_fields(request, actor, loaded.fields, values, loaded.providers, run=True, only=field)
            return self._render_fields(request, loaded, [field], values, states, graph, oob=False)
        if changed not in names:
            raise NotFoundError(f"The form has no field {changed!r}.")
        # Everything downstream of the change, nearest first; a choice that disappeared is cleared
        # before the fields depending on it are resolved.
        order: list[str] = []
        queue = list(graph.get(changed or "", []))
        while queue:
            current = queue.pop(0)
            if current not in order:
                order.append(current)
                queue.extend(graph.get(current, []))
        found: dict[str, FieldOptions] = {}
        for current in order:
            resolved = await resolve_fields(
                request, actor, loaded.fields, values, loaded.providers, run=True, only=current
            )
            found.update(resolved)
            state = resolved.get(current)
            value = values.get(current)
            if state is not None and value:
                chosen = value if isinstance(value, list) else [value]
                kept = [v for v in chosen if state.allows(v)]
                values[current] = kept if isinstance(value, list) else (kept[0] if kept else "")
        return self._render_fields(request, loaded, order, values, found, graph, oob=True)

    @staticmethod
    def _render_fields(
        request: Request[Any, Any, Any],
        loaded: LoadedForm,
        names: list[str],
        values: dict[str, Any],
        states: dict[str, FieldOptions],
        graph: dict[str, list[str]],
        *,
        oob: bool,
    ) -> str:
        by_name = {f["name"]: f for f in loaded.fields}
        return render_string(
            request,
            "partials/fields.html",
            fields=[by_name[n] for n in names],
            values=values,
            states=states,
            dependents=graph,
            fields_url=f"/workflows/{quote(loaded.workflow.name)}/fields",
            oob=oob,
        )

    @post("/{name:str}/run", status_code=200)
    async def run(self, request: Request[Any, Any, Any], actor: Actor, name: str) -> Template | Redirect:
        """Submit the form: start the execution and go to its page, or show the form again with errors."""
        loaded = await load_form(request, actor, name)
        form = await request.form()
        values = values_from_form(loaded.fields, form)
        params, errors = params_from_values(loaded.fields, values)
        # Only fields with a value need their choices now (to check it); the others load lazily.
        chosen = {f["name"] for f in loaded.fields if f.get("data_provider") and values.get(f["name"])}
        states = await resolve_fields(request, actor, loaded.fields, values, loaded.providers, run=chosen)
        check_provider_choices(loaded.fields, values, states, errors)
        names = {f["name"] for f in loaded.fields}
        general: list[str] = []
        if errors:
            # Report the workflow's own validation too, with nothing written.
            try:
                validate_parameters(params_model(loaded.workflow), params)
            except ValidationError as exc:
                found, general = errors_by_field(exc.errors, names)
                errors = {**found, **errors}
            return Template("pages/workflow_form.html", context=form_context(loaded, values, states, errors, general))
        platform = get_platform(request.app.state)
        try:
            async with db(request) as session:
                execution = await ExecutionService(session, platform.dispatcher).submit(
                    loaded.workflow.name, params, actor, trigger="form"
                )
        except InvalidInputError as exc:
            errors, general = errors_by_field(exc.errors, names)
            if not exc.errors:
                general = [str(exc)]
            return Template("pages/workflow_form.html", context=form_context(loaded, values, states, errors, general))
        return Redirect(f"/executions/{execution.id}", status_code=303)
