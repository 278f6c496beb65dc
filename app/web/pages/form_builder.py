"""The form builder of platform admins: ``/admin/forms/new`` and ``/admin/forms/{id}``.

One server-rendered page per form: its settings (name, description, workflow, organization,
access level, roles, active) and its fields, each a small section of inputs. The buttons "Add a
field", "Remove", "Move up" and "Move down" post the whole page back and it is shown again
rearranged (nothing is saved until "Save"), so the builder needs no script and works with the
keyboard. A new form starts from the fields generated from its workflow
(:meth:`FormService.default_schema`). Saving goes through :class:`FormService`, whose 422
messages (``form_schema.fields[2].options: ...``) are shown next to the field they name.

How the text inputs map to ``form_schema`` (see ``docs/web-forms.md``): options are one per line,
``Label = value`` (or just ``value``); provider inputs one per line, ``arg = field:other_field`` or
``arg = value:fixed``; ``accept`` is comma separated; a default is typed as text and converted to
the field's type.
"""

from __future__ import annotations

import json
import re
from dataclasses import replace
from typing import Any

from litestar import Request, get, post
from litestar.response import Redirect, Template
from litestar.types import ControllerRouterHandler

from app.models import Form
from app.services.actor import Actor
from app.services.errors import InvalidInputError, whole_number
from app.services.forms.schema import FieldType
from app.services.forms.service import FormService
from app.services.identity.organizations import OrganizationService
from app.services.identity.roles import RoleService
from app.services.workflows.catalogue import WorkflowService
from app.web.deps import db
from app.web.pages.common import PAGE_EXCEPTION_HANDLERS, PageController, flash, form_text, layout_context
from app.web.pages.form_fields import option_key

FIELD_TYPES: list[str] = list(FieldType.__args__)  # type: ignore[attr-defined]
ACCESS_LEVELS = [
    ("role_based", "Users holding one of the roles below"),
    ("authenticated", "Every user of the organization"),
    ("public", "Anyone with the link, without logging in"),
]
_FIELD_PATH = re.compile(r"^form_schema\.fields\[(\d+)\](?:\.(.*))?$")


# ----- fields <-> the builder's inputs ------------------------------------------------------------------
def _text(value: Any) -> str:
    return "" if value is None else value if isinstance(value, str) else json.dumps(value)


def field_inputs(field: dict[str, Any]) -> dict[str, Any]:
    """A schema field as the texts its builder section shows."""
    rules = field.get("validation") or {}
    shown_when = field.get("visible_when") or {}
    inputs = field.get("data_provider_inputs") or {}
    return {
        "name": field.get("name", ""),
        "type": field.get("type", "text"),
        "label": field.get("label") or "",
        "help_text": field.get("help_text") or "",
        "placeholder": field.get("placeholder") or "",
        "required": bool(field.get("required")),
        "default": ", ".join(option_key(v) for v in field["default"])
        if isinstance(field.get("default"), list)
        else _text(field.get("default")),
        "min": _text(rules.get("min")),
        "max": _text(rules.get("max")),
        "pattern": rules.get("pattern") or "",
        "message": rules.get("message") or "",
        "options": "\n".join(
            f"{o['label']} = {option_key(o['value'])}" for o in field.get("options") or [] if isinstance(o, dict)
        ),
        "data_provider": field.get("data_provider") or "",
        "provider_inputs": "\n".join(
            f"{arg} = field:{source['field']}" if source.get("field") else f"{arg} = value:{_text(source.get('value'))}"
            for arg, source in inputs.items()
            if isinstance(source, dict)
        ),
        "visible_field": shown_when.get("field") or "",
        "visible_equals": _text(shown_when.get("equals")),
        "content": field.get("content") or "",
        "multiple": bool(field.get("multiple")),
        "accept": ", ".join(field.get("accept") or []),
    }


def read_sections(form: Any) -> list[dict[str, Any]]:
    """The field sections of a posted builder page, in order (their inputs as typed)."""
    count = whole_number(form_text(form, "field_count")) or 0
    sections = []
    for i in range(min(count, 200)):
        p = f"f{i}_"
        section: dict[str, Any] = {
            key: form_text(form, p + key)
            for key in (
                "name", "type", "label", "help_text", "placeholder", "default", "min", "max", "pattern",
                "message", "options", "data_provider", "provider_inputs", "visible_field", "visible_equals",
                "content", "accept",
            )
        }  # fmt: skip
        section["required"] = form.get(p + "required") is not None
        section["multiple"] = form.get(p + "multiple") is not None
        sections.append(section)
    return sections


def _scalar(text: str) -> Any:
    """A typed value: JSON numbers, booleans and quoted strings as such, anything else as text."""
    try:
        value = json.loads(text)
    except ValueError:
        return text
    return value if isinstance(value, (int, float, bool, str)) else text


def _number(text: str) -> Any:
    try:
        number = float(text)
    except ValueError:
        return text  # the schema's validation names it
    return int(number) if number.is_integer() else number


def _options(text: str) -> list[dict[str, Any]] | None:
    options = []
    for line in text.splitlines():
        if not line.strip():
            continue
        label, sep, value = line.partition("=")
        value = value.strip() if sep else label.strip()
        options.append({"label": label.strip() or value, "value": value})
    return options or None


def _default(section: dict[str, Any], options: list[dict[str, Any]] | None) -> Any:
    text, kind = section["default"].strip(), section["type"]
    if not text:
        return None
    if kind == "number":
        return _number(text)
    if kind == "checkbox":
        return text.lower() in ("true", "yes", "1", "on")
    if kind == "multi_select":
        return [v.strip() for v in text.split(",") if v.strip()]
    return text


def _provider_inputs(text: str) -> dict[str, Any]:
    inputs: dict[str, Any] = {}
    for line in text.splitlines():
        arg, _, source = line.partition("=")
        if not arg.strip():
            continue
        kind, _, rest = source.strip().partition(":")
        inputs[arg.strip()] = {"field": rest.strip()} if kind.strip() == "field" else {"value": _scalar(rest.strip())}
    return inputs


def schema_from_sections(sections: list[dict[str, Any]]) -> dict[str, Any]:
    """The ``form_schema`` the sections describe (checked by the service when saved)."""
    fields = []
    for s in sections:
        options = _options(s["options"]) if s["type"] in ("select", "radio", "multi_select") else None
        field: dict[str, Any] = {"name": s["name"].strip(), "type": s["type"]}
        for key in ("label", "help_text", "placeholder", "content", "data_provider"):
            if s[key].strip():
                field[key] = s[key] if key == "content" else s[key].strip()
        if s["required"]:
            field["required"] = True
        if (default := _default(s, options)) is not None:
            field["default"] = default
        rules = {k: _number(s[k].strip()) for k in ("min", "max") if s[k].strip()}
        rules.update({k: s[k] for k in ("pattern", "message") if s[k].strip()})
        if rules:
            field["validation"] = rules
        if options:
            field["options"] = options
        if s["provider_inputs"].strip():
            field["data_provider_inputs"] = _provider_inputs(s["provider_inputs"])
        if s["visible_field"].strip():
            rule: dict[str, Any] = {"field": s["visible_field"].strip()}
            if s["visible_equals"].strip():
                rule["equals"] = _scalar(s["visible_equals"].strip())
            field["visible_when"] = rule
        if s["type"] == "file":
            field["multiple"] = s["multiple"]
            if s["accept"].strip():
                field["accept"] = [a.strip() for a in s["accept"].split(",") if a.strip()]
        fields.append(field)
    return {"fields": fields}


def apply_action(sections: list[dict[str, Any]], action: str) -> list[dict[str, Any]]:
    """Add, remove or move a section (``add``, ``remove:3``, ``up:3``, ``down:3``)."""
    verb, _, index_text = action.partition(":")
    if verb == "add":
        return [*sections, field_inputs({"name": f"field_{len(sections) + 1}", "type": "text"})]
    index = whole_number(index_text)
    if index is None or index >= len(sections):
        return sections
    i = index
    moved = list(sections)
    if verb == "remove":
        del moved[i]
    elif verb == "up" and i > 0:
        moved[i - 1], moved[i] = moved[i], moved[i - 1]
    elif verb == "down" and i < len(moved) - 1:
        moved[i + 1], moved[i] = moved[i], moved[i + 1]
    return moved


def split_errors(errors: list[dict[str, Any]]) -> tuple[dict[str, str], dict[int, list[str]]]:
    """Service errors by form setting (``name``, ``workflow_id``, ...) and by field index."""
    settings: dict[str, str] = {}
    by_field: dict[int, list[str]] = {}
    for error in errors:
        path, message = str(error.get("field", "")), str(error.get("message", "is not valid"))
        match = _FIELD_PATH.match(path)
        if match:
            key = match.group(2)
            by_field.setdefault(int(match.group(1)), []).append(f"{key}: {message}" if key else message)
        else:
            settings[path or "form"] = f"{settings[path]}; {message}" if path in settings else message
    return settings, by_field


# ----- pages ------------------------------------------------------------------------------------------
class FormBuilderPages(PageController):
    """``/admin/forms``: create, edit and delete custom forms (platform admins)."""

    path = "/admin/forms"

    async def _render(
        self,
        request: Request[Any, Any, Any],
        actor: Actor,
        settings: dict[str, Any],
        sections: list[dict[str, Any]],
        *,
        form_id: str | None = None,
        errors: list[dict[str, Any]] | None = None,
        status_code: int = 200,
    ) -> Template:
        async with db(request) as session:
            workflows = await WorkflowService(session).list(actor)
            organizations = await OrganizationService(session).list(actor)
            org = settings.get("organization_id") or actor.acting_org_id
            roles = await RoleService(session).list(replace(actor, acting_org_id=org)) if org else []
            layout = await layout_context(request, session, actor)
        # Roles belong to one organization: after the organization changed, another one's are not kept.
        settings["role_ids"] = [r for r in settings.get("role_ids", []) if r in {role.id for role in roles}]
        setting_errors, field_errors = split_errors(errors or [])
        return Template(
            "pages/forms/builder.html",
            context={
                **layout,
                "form_id": form_id,
                "settings": settings,
                "sections": sections,
                "workflows": workflows,
                "organizations": organizations,
                "roles": roles,
                "field_types": FIELD_TYPES,
                "access_levels": ACCESS_LEVELS,
                "setting_errors": setting_errors,
                "field_errors": field_errors,
            },
            status_code=status_code,
        )

    @get("/new")
    async def new(self, request: Request[Any, Any, Any], actor: Actor, workflow: str | None = None) -> Template:
        """A new form; with ``workflow``, its fields start as the ones generated from that workflow."""
        actor.require_admin("create forms")
        sections: list[dict[str, Any]] = []
        settings: dict[str, Any] = {
            "name": "",
            "description": "",
            "workflow_id": "",
            "organization_id": actor.acting_org_id or "",
            "access_level": "role_based",
            "is_active": True,
            "role_ids": [],
        }
        if workflow:
            async with db(request) as session:
                row = await WorkflowService(session).get(actor, workflow)
                schema = await FormService(session).default_schema(actor, row.id)
            settings.update(workflow_id=row.id, name=row.name.replace("_", " ").capitalize())
            sections = [field_inputs(f) for f in schema["fields"]]
        return await self._render(request, actor, settings, sections)

    @get("/{form_id:str}")
    async def edit(self, request: Request[Any, Any, Any], actor: Actor, form_id: str) -> Template:
        """The builder for a stored form (its fields, or the generated ones when it stores none)."""
        actor.require_admin("change forms")
        async with db(request) as session:
            service = FormService(session)
            form = await service.get(actor, form_id)
            schema = form.form_schema or await service.default_schema(actor, form.workflow_id or "")
            role_ids = await service.list_roles(actor, form_id)
        return await self._render(
            request, actor, _settings_of(form, role_ids), [field_inputs(f) for f in schema["fields"]], form_id=form_id
        )

    @post("/save", status_code=200)
    async def save_new(self, request: Request[Any, Any, Any], actor: Actor) -> Template | Redirect:
        """Create the form, or apply add/remove/move and show the builder again."""
        return await self._save(request, actor, None)

    @post("/{form_id:str}/save", status_code=200)
    async def save(self, request: Request[Any, Any, Any], actor: Actor, form_id: str) -> Template | Redirect:
        """Update the form, or apply add/remove/move and show the builder again."""
        return await self._save(request, actor, form_id)

    async def _save(self, request: Request[Any, Any, Any], actor: Actor, form_id: str | None) -> Template | Redirect:
        actor.require_admin("change forms")
        posted = await request.form()
        sections = read_sections(posted)
        settings = {
            "name": form_text(posted, "name"),
            "description": form_text(posted, "description"),
            "workflow_id": form_text(posted, "workflow_id"),
            "organization_id": form_text(posted, "organization_id"),
            "access_level": form_text(posted, "access_level", "role_based"),
            "is_active": posted.get("is_active") is not None,
            "role_ids": [r for r in posted.getall("role_ids", []) if isinstance(r, str) and r],
        }
        action = form_text(posted, "action", "save")
        if action != "save":
            return await self._render(request, actor, settings, apply_action(sections, action), form_id=form_id)
        data = {
            "name": settings["name"],
            "description": settings["description"] or None,
            "workflow_id": settings["workflow_id"],
            "organization_id": settings["organization_id"] or None,
            "access_level": settings["access_level"],
            "is_active": settings["is_active"],
            "form_schema": schema_from_sections(sections),
        }
        try:
            async with db(request) as session:
                service = FormService(session)
                form = (
                    await service.create(actor, **data)
                    if form_id is None
                    else await service.update(actor, form_id, **data)
                )
                await service.set_roles(actor, form.id, settings["role_ids"])
        except InvalidInputError as exc:
            errors = exc.errors or [{"field": "form", "message": str(exc)}]
            return await self._render(
                request, actor, settings, sections, form_id=form_id, errors=errors, status_code=422
            )
        flash(request, f"Saved the form {form.name!r}.")
        return Redirect(f"/admin/forms/{form.id}", status_code=303)

    @post("/{form_id:str}/delete", status_code=303)
    async def delete(self, request: Request[Any, Any, Any], actor: Actor, form_id: str) -> Redirect:
        """Delete the form (and its role assignments)."""
        async with db(request) as session:
            await FormService(session).delete(actor, form_id)
        flash(request, "Form deleted.")
        return Redirect("/forms", status_code=303)


def _settings_of(form: Form, role_ids: list[str]) -> dict[str, Any]:
    return {
        "name": form.name,
        "description": form.description or "",
        "workflow_id": form.workflow_id or "",
        "organization_id": form.organization_id or "",
        "access_level": form.access_level,
        "is_active": form.is_active,
        "role_ids": role_ids,
    }


@post(
    "/admin/roles/{role_id:str}/forms",
    status_code=303,
    include_in_schema=False,
    exception_handlers=PAGE_EXCEPTION_HANDLERS,
)
async def assign_role_forms(request: Request[Any, Any, Any], actor: Actor, role_id: str) -> Redirect:
    """The role page's forms section: the ticked forms are the ones the role grants (platform admins)."""
    actor.require_admin("assign forms to roles")
    data = await request.form()
    wanted = {v for v in data.getall("form_ids", []) if isinstance(v, str)} if "form_ids" in data else set()
    async with db(request) as session:
        roles = RoleService(session)
        role = await roles.get(actor, role_id)
        current = set(await roles.list_forms(actor, role.id))
        if wanted - current:
            await roles.assign_forms(actor, role.id, sorted(wanted - current))
        forms = FormService(session)
        # RoleService only adds; a form's own role list is replaced without this role to take it away.
        for form_id in sorted(current - wanted):
            await forms.set_roles(actor, form_id, [r for r in await forms.list_roles(actor, form_id) if r != role.id])
    flash(request, "Form assignments saved.")
    return Redirect(f"/admin/roles/{role_id}", status_code=303)


FORM_BUILDER_PAGE_HANDLERS: list[ControllerRouterHandler] = [FormBuilderPages, assign_role_forms]
