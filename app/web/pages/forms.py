"""Custom forms: the forms list (``/forms``) and each form's page (``/forms/{id}``).

A custom form renders its stored ``form_schema`` (or, when it has none, the schema generated from
its workflow) with the same field partial as the automatic workflow forms, plus file fields and
markdown. Conditional fields (``visible_when``) are decided here on the server: a field that
others depend on re-renders them (htmx, out-of-band) when its value changes; no user-written
script ever runs in the browser. Submitting checks the schema's own rules (required, min/max,
pattern, with the schema's message), stores uploads with :meth:`FileService.save_upload` and runs
the workflow through the one submit path (``ExecutionService.submit``, ``trigger="form"``), whose
parameter validation reports the rest next to the fields.

The helpers here are shared with the anonymous pages of public forms (``public_forms.py``).
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from litestar import MediaType, Request, get, post
from litestar.datastructures import UploadFile
from litestar.params import Parameter
from litestar.response import Redirect, Template
from litestar.types import ControllerRouterHandler

from app.models import Form, Workflow
from app.services.actor import Actor
from app.services.errors import InvalidInputError, NotFoundError, whole_number
from app.services.executions.service import ExecutionService, params_model
from app.services.files.service import FileTooLargeError
from app.services.forms.data_providers import DataProviderService
from app.services.forms.schema import schema_from_workflow
from app.services.forms.service import FormService
from app.services.workflows.catalogue import WorkflowService
from app.web.deps import db, get_platform
from app.web.guards import FORM_OVERHEAD_BYTES
from app.web.pages.common import PageController, layout_context, render_string
from app.web.pages.form_fields import errors_by_field, initial_values, option_key, params_from_values, values_from_form
from app.web.pages.providers import FieldOptions, dependents, resolve_fields
from app.web.pages.workflows import check_provider_choices
from bifrost._schema import validate_parameters
from bifrost.errors import ValidationError

# Room for the multipart framing and the text fields around the files.
_CHUNK = 64 * 1024
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


@dataclass
class LoadedCustomForm:
    """A custom form, its workflow and what its page needs from the database."""

    form: Form
    workflow: Workflow
    fields: list[dict[str, Any]]
    providers: dict[str, Workflow | None]
    layout: dict[str, Any] = field(default_factory=dict)

    @property
    def by_name(self) -> dict[str, dict[str, Any]]:
        """Fields by name."""
        return {f["name"]: f for f in self.fields}


def fields_from_schema(schema: dict[str, Any]) -> list[dict[str, Any]]:
    """Render-ready fields of a ``form_schema`` (the keys the automatic form's fields also have)."""
    fields = []
    for raw in schema.get("fields") or []:
        item = {"parse": None, "items": None, "data_provider_inputs": {}, **raw}
        item["data_provider_inputs"] = item.get("data_provider_inputs") or {}
        fields.append(item)
    return fields


async def load_custom_form(
    session: Any, actor: Actor, form: Form, *, layout: dict[str, Any] | None = None
) -> LoadedCustomForm:
    """Read a form's workflow and data providers (in ``session``) as ``actor`` sees them.

    Raises:
        NotFoundError: The workflow is gone or not visible in the actor's scope.
    """
    if form.workflow_id is None:
        raise NotFoundError("This form has no workflow to run.")
    workflow = await WorkflowService(session).get(actor, form.workflow_id)
    schema = form.form_schema or schema_from_workflow(workflow.parameters)
    fields = fields_from_schema(schema)
    providers: dict[str, Workflow | None] = {}
    service = DataProviderService(session)
    for provider_name in {f["data_provider"] for f in fields if f.get("data_provider")}:
        try:
            providers[provider_name] = await service.provider(actor, provider_name)
        except NotFoundError:
            providers[provider_name] = None
    return LoadedCustomForm(form, workflow, fields, providers, layout or {})


# ----- conditional visibility -------------------------------------------------------------------------
def _has_value(value: Any) -> bool:
    if isinstance(value, str):
        return bool(value.strip())
    if isinstance(value, list):
        return bool(value)
    return bool(value)


def _matches(value: Any, expected: Any) -> bool:
    if isinstance(value, bool):
        return value == (expected is True or option_key(expected) == "true")
    if isinstance(value, list):
        return option_key(expected) in value
    return isinstance(value, str) and value == option_key(expected)


def visible_names(fields: list[dict[str, Any]], values: dict[str, Any]) -> set[str]:
    """Names of the fields shown for ``values``.

    A field with ``visible_when`` is shown when the field it names is shown and has a value (or,
    with ``equals``, that value); a field hidden this way hides the fields that depend on it.
    """
    by_name = {f["name"]: f for f in fields}
    decided: dict[str, bool] = {}

    def shown(name: str, trail: tuple[str, ...] = ()) -> bool:
        if name in decided:
            return decided[name]
        rule = (by_name.get(name) or {}).get("visible_when")
        if not rule:
            result = True
        elif name in trail or rule.get("field") not in by_name:
            result = False  # a cycle or a dangling reference never shows (the schema refuses both)
        else:
            other = rule["field"]
            value = values.get(other)
            wanted = rule.get("equals")
            result = shown(other, (*trail, name)) and (_has_value(value) if wanted is None else _matches(value, wanted))
        decided[name] = result
        return result

    return {f["name"] for f in fields if shown(f["name"])}


def form_dependents(loaded: LoadedCustomForm) -> dict[str, list[str]]:
    """Fields to re-render when a field changes: provider inputs and ``visible_when`` rules."""
    graph = {name: list(names) for name, names in dependents(loaded.fields, loaded.providers).items()}
    for f in loaded.fields:
        rule = f.get("visible_when")
        if rule and rule.get("field"):
            targets = graph.setdefault(rule["field"], [])
            if f["name"] not in targets:
                targets.append(f["name"])
    return graph


def downstream(graph: dict[str, list[str]], changed: str) -> list[str]:
    """Every field reachable from ``changed``, nearest first."""
    order: list[str] = []
    queue = list(graph.get(changed, []))
    while queue:
        current = queue.pop(0)
        if current not in order and current != changed:
            order.append(current)
            queue.extend(graph.get(current, []))
    return order


# ----- the schema's own rules -------------------------------------------------------------------------
def _number(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def check_rules(fields: list[dict[str, Any]], values: dict[str, Any], shown: set[str]) -> dict[str, str]:
    """Errors of the schema's rules (required, email, min/max, pattern) for the shown fields.

    File fields are checked when the files are read (:func:`read_uploads`).
    """
    errors: dict[str, str] = {}
    for f in fields:
        name, kind = f["name"], f["type"]
        if name not in shown or kind in ("markdown", "file", "checkbox"):
            continue
        value = values.get(name)
        if not _has_value(value):
            if f.get("required"):
                errors[name] = "This field is required."
            continue
        rules = f.get("validation") or {}
        message = rules.get("message")
        if kind == "email" and not _EMAIL.match(str(value).strip()):
            errors[name] = message or "Enter an email address such as name@example.com."
            continue
        if kind == "number":
            number = _number(str(value))
            if number is None:
                errors[name] = "Enter a number."
            elif rules.get("min") is not None and number < rules["min"]:
                errors[name] = message or f"Must be at least {rules['min']}."
            elif rules.get("max") is not None and number > rules["max"]:
                errors[name] = message or f"Must be at most {rules['max']}."
        elif isinstance(value, str):
            if rules.get("min") is not None and len(value) < rules["min"]:
                errors[name] = message or f"Must be at least {rules['min']} characters."
            elif rules.get("max") is not None and len(value) > rules["max"]:
                errors[name] = message or f"Must be at most {rules['max']} characters."
            elif rules.get("pattern") and re.fullmatch(rules["pattern"], value) is None:
                errors[name] = message or "Does not have the expected format."
    return errors


# ----- files ----------------------------------------------------------------------------------------
def _uploads(form: Any, name: str) -> list[UploadFile]:
    return [u for u in form.getall(name, []) if isinstance(u, UploadFile) and u.filename]


def check_files(fields: list[dict[str, Any]], form: Any, shown: set[str]) -> dict[str, str]:
    """Required file fields without a file, and files of a type the field does not accept."""
    errors: dict[str, str] = {}
    for f in fields:
        if f["type"] != "file" or f["name"] not in shown:
            continue
        uploads = _uploads(form, f["name"])
        if not uploads and f.get("required"):
            errors[f["name"]] = "Choose a file."
        elif len(uploads) > 1 and not f.get("multiple"):
            errors[f["name"]] = "Choose one file."
        accept = [a.lower() for a in f.get("accept") or []]
        for upload in uploads:
            kind = (upload.content_type or "").lower()
            if accept and not any(upload.filename.lower().endswith(a) or a == kind for a in accept):
                errors[f["name"]] = f"{upload.filename}: accepted are {', '.join(accept)}."
    return errors


async def _chunks(upload: UploadFile) -> AsyncIterator[bytes]:
    while chunk := await upload.read(_CHUNK):
        yield chunk


async def save_files(
    request: Request[Any, Any, Any], actor: Actor, loaded: LoadedCustomForm, form: Any, shown: set[str]
) -> tuple[dict[str, Any], dict[str, str]]:
    """Store the uploads of the shown file fields in ``uploads/<form id>/...``.

    Returns:
        ``(params, errors)``: per file field ``{"path", "name", "size", "content_type"}`` (a list of
        them when the field takes several files), and error messages by field.
    """
    files = get_platform(request.app.state).files
    params: dict[str, Any] = {}
    errors: dict[str, str] = {}
    for f in loaded.fields:
        if f["type"] != "file" or f["name"] not in shown:
            continue
        saved = []
        for upload in _uploads(form, f["name"]):
            try:
                info = await files.save_upload(
                    actor, loaded.form.id, upload.filename, _chunks(upload), upload.content_type
                )
            except FileTooLargeError as exc:
                errors[f["name"]] = str(exc)
                break
            except InvalidInputError as exc:
                errors[f["name"]] = "; ".join(e["message"] for e in exc.errors) or str(exc)
                break
            saved.append({"path": info.path, "name": info.name, "size": info.size, "content_type": info.content_type})
        if saved:
            params[f["name"]] = saved if f.get("multiple") else saved[0]
    return params, errors


def body_too_large(request: Request[Any, Any, Any]) -> str | None:
    """A message when the declared body exceeds the upload limit (checked before reading it)."""
    limit = get_platform(request.app.state).files.max_file_bytes
    declared = request.headers.get("content-length", "")
    declared_size = whole_number(declared)
    if declared_size is not None and declared_size <= limit + FORM_OVERHEAD_BYTES:
        return None
    if declared_size is None and "multipart" not in request.headers.get("content-type", ""):
        return None
    return f"The upload is too large: files may be at most {_size(limit)}."


def _size(count: int) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if count < 1024 or unit == "GiB":
            return f"{count:g} {unit}" if unit == "bytes" else f"{count:.1f} {unit}"
        count = count / 1024  # type: ignore[assignment]
    return f"{count} bytes"


# ----- rendering ------------------------------------------------------------------------------------
def page_context(
    loaded: LoadedCustomForm,
    values: dict[str, Any],
    states: dict[str, FieldOptions],
    *,
    base_url: str,
    errors: dict[str, str] | None = None,
    general: list[str] | None = None,
) -> dict[str, Any]:
    """The context of ``pages/forms/form.html``."""
    return {
        **loaded.layout,
        "form": loaded.form,
        "workflow": loaded.workflow,
        "fields": loaded.fields,
        "shown": visible_names(loaded.fields, values),
        "values": values,
        "states": states,
        "errors": errors or {},
        "general_errors": general or [],
        "dependents": form_dependents(loaded),
        "base_url": base_url,
        "fields_url": f"{base_url}/fields",
    }


async def render_fields(
    request: Request[Any, Any, Any],
    actor: Actor,
    loaded: LoadedCustomForm,
    base_url: str,
    field_name: str | None,
    changed: str | None,
) -> str:
    """htmx: one provider field (``field_name``), or every field downstream of ``changed`` (out of band)."""
    names = {f["name"] for f in loaded.fields}
    values = values_from_form(loaded.fields, request.query_params)
    graph = form_dependents(loaded)
    if field_name is not None:
        if field_name not in names:
            raise NotFoundError(f"The form has no field {field_name!r}.")
        order, oob = [field_name], False
    else:
        if changed not in names:
            raise NotFoundError(f"The form has no field {changed!r}.")
        order, oob = downstream(graph, changed or ""), True
    states: dict[str, FieldOptions] = {}
    for current in order:
        if current not in visible_names(loaded.fields, values):
            continue
        resolved = await resolve_fields(request, actor, loaded.fields, values, loaded.providers, run=True, only=current)
        states.update(resolved)
        # A choice that disappeared is cleared before the fields depending on it are decided.
        state, value = resolved.get(current), values.get(current)
        if state is not None and value:
            chosen = value if isinstance(value, list) else [value]
            kept = [v for v in chosen if state.allows(v)]
            values[current] = kept if isinstance(value, list) else (kept[0] if kept else "")
    by_name = loaded.by_name
    return render_string(
        request,
        "pages/forms/_fields.html",
        fields=[by_name[n] for n in order],
        shown=visible_names(loaded.fields, values),
        values=values,
        states=states,
        errors={},
        dependents=graph,
        fields_url=f"{base_url}/fields",
        oob=oob,
    )


async def submit_form(
    request: Request[Any, Any, Any], actor: Actor, loaded: LoadedCustomForm, base_url: str
) -> tuple[str | None, dict[str, Any]]:
    """Check and run a submitted form.

    Returns:
        ``(execution_id, {})`` when it started, else ``(None, context)`` to show the form again
        with the user's input and the errors.
    """
    form = await request.form()
    values = values_from_form(loaded.fields, form)
    shown = visible_names(loaded.fields, values)
    kept = [f for f in loaded.fields if f["name"] in shown and f["type"] not in ("file", "markdown")]
    params, errors = params_from_values(kept, values)
    errors = {**check_rules(loaded.fields, values, shown), **errors, **check_files(loaded.fields, form, shown)}
    chosen = {f["name"] for f in kept if f.get("data_provider") and values.get(f["name"])}
    states = await resolve_fields(request, actor, kept, values, loaded.providers, run=chosen)
    check_provider_choices(kept, values, states, errors)
    names = {f["name"] for f in loaded.fields}
    general: list[str] = []
    if not errors:
        file_params, errors = await save_files(request, actor, loaded, form, shown)
        params.update(file_params)
    if errors:
        # The workflow's own validation too (files left out: they were not stored), nothing written.
        try:
            checked = {k: v for k, v in params.items() if k not in errors}
            validate_parameters(params_model(loaded.workflow), checked)
        except ValidationError as exc:
            found, general = errors_by_field(exc.errors, names)
            file_names = {f["name"] for f in loaded.fields if f["type"] == "file"}
            errors = {**{k: v for k, v in found.items() if k not in file_names}, **errors}
            general = [g for g in general if not any(g.startswith(n) for n in file_names)]
        return None, page_context(loaded, values, states, base_url=base_url, errors=errors, general=general)
    platform = get_platform(request.app.state)
    try:
        async with db(request) as session:
            execution = await ExecutionService(session, platform.dispatcher).submit(
                loaded.workflow.id,
                params,
                actor,
                loaded.form.organization_id if actor.is_superuser else None,
                trigger="form",
                form_id=loaded.form.id,
            )
    except InvalidInputError as exc:
        errors, general = errors_by_field(exc.errors, names)
        if not exc.errors:
            general = [str(exc)]
        return None, page_context(loaded, values, states, base_url=base_url, errors=errors, general=general)
    return execution.id, {}


# ----- pages ------------------------------------------------------------------------------------------
class FormPages(PageController):
    """``/forms``: the custom forms a user may use, and each form's page."""

    path = "/forms"

    @get("/")
    async def index(self, request: Request[Any, Any, Any], actor: Actor) -> Template:
        """The forms the user may use (admins: every form of the scope, inactive ones marked)."""
        async with db(request) as session:
            forms = await FormService(session).list(actor)
            layout = await layout_context(request, session, actor)
        return Template("pages/forms/list.html", context={**layout, "forms": forms})

    async def _load(self, request: Request[Any, Any, Any], actor: Actor, form_id: str, *, layout: bool) -> Any:
        async with db(request) as session:
            form = await FormService(session).get(actor, form_id)
            context = await layout_context(request, session, actor) if layout else {}
            return await load_custom_form(session, actor, form, layout=context)

    @get("/{form_id:str}")
    async def page(
        self,
        request: Request[Any, Any, Any],
        actor: Actor,
        form_id: str,
        from_execution: str | None = Parameter(query="from", default=None, required=False, max_length=64),
    ) -> Template:
        """The form, filled with its defaults, or with the values of a run it started ("Edit and run")."""
        loaded = await self._load(request, actor, form_id, layout=True)
        given = None
        if from_execution:
            async with db(request) as session:
                previous = await ExecutionService(session).get(actor, from_execution)
            if previous.workflow_id == loaded.workflow.id:
                given = previous.input_data
        values = initial_values(loaded.fields, given)
        states = await resolve_fields(request, actor, loaded.fields, values, loaded.providers, run=False)
        context = page_context(loaded, values, states, base_url=f"/forms/{form_id}")
        return Template("pages/forms/form.html", context=context)

    @get("/{form_id:str}/fields", media_type=MediaType.HTML)
    async def fields(
        self,
        request: Request[Any, Any, Any],
        actor: Actor,
        form_id: str,
        field: str | None = None,
        changed: str | None = None,
    ) -> str:
        """htmx: re-render provider fields and conditional fields from the form's current input."""
        loaded = await self._load(request, actor, form_id, layout=False)
        return await render_fields(request, actor, loaded, f"/forms/{form_id}", field, changed)

    @post("/{form_id:str}/run", status_code=200, request_max_body_size=None)
    async def run(self, request: Request[Any, Any, Any], actor: Actor, form_id: str) -> Template | Redirect:
        """Submit: start the execution and go to its live page, or show the form again with errors."""
        loaded = await self._load(request, actor, form_id, layout=True)
        too_large = body_too_large(request)
        if too_large:
            values = initial_values(loaded.fields)
            context = page_context(loaded, values, {}, base_url=f"/forms/{form_id}", general=[too_large])
            return Template("pages/forms/form.html", context=context, status_code=413)
        execution_id, context = await submit_form(request, actor, loaded, f"/forms/{form_id}")
        if execution_id is None:
            return Template("pages/forms/form.html", context=context)
        return Redirect(f"/executions/{execution_id}", status_code=303)


FORM_PAGE_HANDLERS: list[ControllerRouterHandler] = [FormPages]
