"""Who may run a workflow and whether its runs wait for approval: the access form of the workflow page.

Platform admins see the form on the workflow page (``/workflows/{name}``) and on its own page
(``/workflows/{name}/access``, where a refused change is shown again with the reason). A save sends
only the fields that differ from the effective policy, so what the admin left alone keeps following
the decorator; "Follow the code" clears every override. Everything goes through
:class:`~app.services.workflows.policies.PolicyService` (validation, audit) like ``PUT
/api/workflows/{name}/access``.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from litestar import Request, get, post
from litestar.response import Redirect, Template
from sqlalchemy.ext.asyncio import AsyncSession

from app.services.actor import Actor
from app.services.errors import InvalidInputError
from app.services.identity.organizations import OrganizationService
from app.services.workflows.access import ACCESS_LEVELS
from app.services.workflows.policies import PolicyService
from app.services.workflows.views import PolicyView
from app.web.deps import db
from app.web.pages.common import PageController, flash, form_text, layout_context

ACCESS_LABELS = {
    "everyone": "Everyone in the organization",
    "roles": "Only these roles (and platform admins)",
    "admins": "Platform admins only",
}
_FLAGS = ("needs_approval", "allow_self_approval", "schedules_skip_approval")
# What "Follow the code" sends: every override cleared, the flags back to off.
_RESET: dict[str, Any] = {
    "access": None,
    "roles": None,
    "organizations": None,
    "needs_approval": None,
    "approver_role": None,
    "allow_self_approval": False,
    "schedules_skip_approval": False,
}


def _form_values(policy: PolicyView) -> dict[str, Any]:
    """What the form shows for a policy (roles as one comma-separated text)."""
    return {
        "access": policy["access"],
        "roles": ", ".join(policy["roles"]),
        "organizations": list(policy["organizations"] or []),
        "approver_role": policy["approver_role"] or "",
        **{flag: bool(policy[flag]) for flag in _FLAGS},  # type: ignore[literal-required]
    }


async def access_context(
    session: AsyncSession, actor: Actor, workflow: str, values: dict[str, Any] | None = None
) -> dict[str, Any]:
    """What ``partials/_workflow_access.html`` needs (admins; ``values``: a refused submission to show again)."""
    policy = await PolicyService(session).get(actor, workflow)
    organizations = await OrganizationService(session).list(actor)
    return {
        "access_policy": policy,
        "access_values": values or _form_values(policy),
        "access_labels": ACCESS_LABELS,
        "access_organizations": organizations,
    }


async def workflow_page_access(session: AsyncSession, actor: Actor, workflow: str) -> dict[str, Any]:
    """What the workflow page adds: whether runs wait for approval, and the access form for platform admins."""
    if actor.is_superuser:
        context = await access_context(session, actor, workflow)
        return {**context, "needs_approval": context["access_policy"]["needs_approval"], "access_errors": []}
    return {"needs_approval": (await PolicyService(session).get(actor, workflow))["needs_approval"]}


def _submitted(form: Any) -> dict[str, Any]:
    """The form as the values it shows (kept as typed when the change is refused)."""
    organizations = form.getall("organizations", []) if hasattr(form, "getall") else []
    return {
        "access": form_text(form, "access"),
        "roles": form_text(form, "roles"),
        "organizations": [o for o in organizations if isinstance(o, str) and o],
        "approver_role": form_text(form, "approver_role").strip(),
        **{flag: form_text(form, flag) == "on" for flag in _FLAGS},
    }


def _changes(values: dict[str, Any], policy: PolicyView) -> dict[str, Any]:
    """The policy fields whose submitted value differs from the effective one (an unknown access is passed on:
    the service refuses it, naming the field)."""
    wanted: dict[str, Any] = {
        "access": values["access"] or None,
        "roles": [r.strip() for r in values["roles"].split(",") if r.strip()],
        "organizations": values["organizations"] or None,
        "approver_role": values["approver_role"] or None,
        **{flag: values[flag] for flag in _FLAGS},
    }
    if wanted["access"] is None:
        raise InvalidInputError.field("access", f"choose one of {', '.join(ACCESS_LEVELS)}")
    current: dict[str, Any] = dict(policy)
    return {key: value for key, value in wanted.items() if value != current.get(key)}


def _problem(exc: InvalidInputError) -> list[str]:
    return [f"{e['field']}: {e['message']}" for e in exc.errors] or [str(exc)]


class WorkflowAccessPages(PageController):
    """``/workflows/{name}/access``: the access form alone, and its posts."""

    path = "/workflows/{name:str}/access"

    async def _page(
        self,
        request: Request[Any, Any, Any],
        actor: Actor,
        name: str,
        values: dict[str, Any] | None = None,
        errors: list[str] | None = None,
    ) -> Template:
        async with db(request) as session:
            context = await access_context(session, actor, name, values)
            layout = await layout_context(request, session, actor)
        return Template(
            "pages/workflow_access.html",
            context={**layout, **context, "access_errors": errors or []},
            status_code=422 if errors else 200,
        )

    @get("/")
    async def show(self, request: Request[Any, Any, Any], actor: Actor, name: str) -> Template:
        """The access form of one workflow (platform admins)."""
        actor.require_admin("change workflow access")
        return await self._page(request, actor, name)

    async def _save(
        self, request: Request[Any, Any, Any], actor: Actor, name: str, values: dict[str, Any] | None
    ) -> Template | Redirect:
        actor.require_admin("change workflow access")
        try:
            async with db(request) as session:
                service = PolicyService(session)
                policy = await service.get(actor, name)
                changes = _RESET if values is None else _changes(values, policy)
                if changes:
                    policy = await service.update(actor, name, changes)
        except InvalidInputError as exc:
            return await self._page(request, actor, name, values, _problem(exc))
        if not changes:
            flash(request, "Nothing changed.")
        elif values is None:
            flash(request, f"{policy['workflow']} follows what its code declares again.")
        else:
            flash(request, f"Access of {policy['workflow']} saved.")
        return Redirect(f"/workflows/{quote(policy['workflow'])}#access", status_code=303)

    @post("/", status_code=200)
    async def save(self, request: Request[Any, Any, Any], actor: Actor, name: str) -> Template | Redirect:
        """Save the form: only the fields that differ from the effective policy are set."""
        return await self._save(request, actor, name, _submitted(await request.form()))

    @post("/reset", status_code=200)
    async def reset(self, request: Request[Any, Any, Any], actor: Actor, name: str) -> Template | Redirect:
        """Clear every override: the workflow follows its decorator again."""
        return await self._save(request, actor, name, None)


WORKFLOW_ACCESS_PAGE_HANDLERS = [WorkflowAccessPages]
