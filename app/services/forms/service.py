"""Forms that run workflows: storage, access levels and who may use which form.

Visibility (enforced here, whichever route a call comes through):

* Platform admins see every form, active or not.
* Anyone else sees the *active* forms of the organization they act in, and
  global forms (``organization_id`` None), when the form's access level is
  ``public`` or ``authenticated``, or it is ``role_based`` and the user holds
  an active role of that organization to which the form is assigned.
* Forms that are not visible are reported as not found, so ids cannot be
  probed across organizations.
* :meth:`FormService.get_public` needs no user: it returns only active
  ``public`` forms (for anonymous visitors of a public form page).
"""

from __future__ import annotations

import builtins
from typing import Any, cast

from sqlalchemy import ColumnElement, delete, false, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from app.models import Form, Organization, Role, RoleForm, UserRole, Workflow
from app.models.base import utcnow
from app.services.actor import Actor
from app.services.errors import (
    InvalidInputError,
    NotFoundError,
    optional_text,
    reject_unknown_fields,
    require_bool,
)
from app.services.forms.schema import data_providers_used, schema_from_workflow, validate_form_schema
from app.services.forms.views import FormDetail, FormSchema
from app.services.workflows.catalogue import WorkflowService
from bifrost.types import FormPublic

ACCESS_LEVELS = ("public", "authenticated", "role_based")
# Levels open to every authenticated user of the form's organization (public adds anonymous visitors).
_OPEN_LEVELS = ("public", "authenticated")
_FIELDS = frozenset(
    {"name", "description", "workflow_id", "form_schema", "access_level", "organization_id", "is_active"}
)


def form_public(form: Form) -> FormPublic:
    """Return the SDK shape of a form."""
    return FormPublic(
        id=form.id,
        name=form.name,
        description=form.description,
        workflow_id=form.workflow_id,
        form_schema=form.form_schema,
        access_level=form.access_level,
        organization_id=form.organization_id,
        is_active=form.is_active,
    )


def form_detail(form: Form) -> FormDetail:
    """The SDK shape plus the bookkeeping the API shows (who created it, when)."""
    # cast: the spread of the SDK model's dump is not visible to the type checker.
    return cast(
        "FormDetail",
        {
            **form_public(form).model_dump(),
            "created_by": form.created_by,
            "created_at": form.created_at.isoformat(),
            "updated_at": form.updated_at.isoformat(),
        },
    )


def _name(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise InvalidInputError.field("name", "must be a non-empty string")
    if len(value.strip()) > 200:
        raise InvalidInputError.field("name", "must be at most 200 characters")
    return value.strip()


def _access_level(value: Any) -> str:
    if value not in ACCESS_LEVELS:
        raise InvalidInputError.field("access_level", f"must be one of {', '.join(ACCESS_LEVELS)}")
    return str(value)


def _not_found(form_id: str) -> NotFoundError:
    return NotFoundError(f"Form {form_id!r} not found.")


class FormService:
    """Reads forms for everyone (by access level) and manages them for platform admins."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    # ----- visibility ---------------------------------------------------------------------------
    def _visible(self, actor: Actor) -> ColumnElement[bool]:
        """SQL condition: the form is usable by ``actor`` (a non-admin)."""
        org = actor.acting_org_id
        in_scope: ColumnElement[bool] = col(Form.organization_id).is_(None)
        if org is not None:
            in_scope = in_scope | (col(Form.organization_id) == org)
            # Forms assigned to an active role of the acting organization that the user holds.
            by_role = (
                select(col(RoleForm.form_id))
                .join(Role, col(Role.id) == col(RoleForm.role_id))
                .join(UserRole, col(UserRole.role_id) == col(Role.id))
                .where(
                    col(UserRole.user_id) == actor.user_id,
                    col(Role.organization_id) == org,
                    col(Role.is_active).is_(True),
                )
            )
            role_ok: ColumnElement[bool] = (col(Form.access_level) == "role_based") & col(Form.id).in_(by_role)
        else:
            role_ok = false()  # roles belong to an organization: without one, none apply
        return col(Form.is_active).is_(True) & in_scope & (col(Form.access_level).in_(_OPEN_LEVELS) | role_ok)

    async def list(self, actor: Actor) -> builtins.list[Form]:
        """Forms the actor may use, by name.

        Platform admins get every form (inactive ones too); when acting in an
        organization, that organization's forms and the global ones.
        """
        stmt = select(Form).order_by(col(Form.name), col(Form.id))
        if actor.is_superuser:
            if actor.acting_org_id is not None:
                stmt = stmt.where(
                    col(Form.organization_id).is_(None) | (col(Form.organization_id) == actor.acting_org_id)
                )
        else:
            stmt = stmt.where(self._visible(actor))
        forms = builtins.list((await self.session.execute(stmt)).scalars())
        if actor.is_superuser:
            return forms
        # A form of a workflow the user may not run (its access policy) is not listed to them.
        runnable = {w.id for w in await WorkflowService(self.session).list(actor)}
        return [f for f in forms if f.workflow_id in runnable]

    async def get(self, actor: Actor, form_id: str) -> Form:
        """Return a form the actor may use (admins: any form).

        Raises:
            NotFoundError: Unknown, or not visible to the actor (the same answer).
        """
        if actor.is_superuser:
            form = await self.session.get(Form, form_id)
        else:
            stmt = select(Form).where(col(Form.id) == form_id, self._visible(actor))
            form = (await self.session.execute(stmt)).scalars().first()
            if form is not None:
                try:  # the workflow's access policy decides too (not found either way)
                    await WorkflowService(self.session).get(actor, form.workflow_id or "")
                except NotFoundError:
                    form = None
        if form is None:
            raise _not_found(form_id)
        return form

    async def get_public(self, form_id: str) -> Form:
        """Return an active ``public`` form without any logged-in user (anonymous form pages).

        Raises:
            NotFoundError: Unknown, inactive or not public (the same answer).
        """
        stmt = select(Form).where(
            col(Form.id) == form_id, col(Form.is_active).is_(True), col(Form.access_level) == "public"
        )
        form = (await self.session.execute(stmt)).scalars().first()
        if form is None:
            raise _not_found(form_id)
        return form

    async def can_run(self, actor: Actor, form: Form) -> bool:
        """True when ``actor`` may run the form's workflow through this form (it may see the form)."""
        if actor.is_superuser:
            return True
        stmt = select(col(Form.id)).where(col(Form.id) == form.id, self._visible(actor))
        return (await self.session.execute(stmt)).first() is not None

    # ----- writing (platform admins) ------------------------------------------------------------
    async def _workflow(self, value: Any, organization_id: str | None) -> Workflow:
        """The active workflow named or identified by ``value`` that a form of ``organization_id`` may run."""
        if not isinstance(value, str) or not value.strip():
            raise InvalidInputError.field("workflow_id", "must be the id or name of a workflow")
        try:
            workflow = await WorkflowService(self.session).get(None, value.strip())
        except NotFoundError:
            raise InvalidInputError.field("workflow_id", f"no workflow {value.strip()!r}") from None
        if workflow.organization_id is not None and workflow.organization_id != organization_id:
            where = "global forms" if organization_id is None else "this form's organization"
            raise InvalidInputError.field(
                "workflow_id", f"workflow {workflow.name!r} belongs to another organization than {where}"
            )
        return workflow

    async def _organization(self, value: Any) -> str | None:
        if value is None:
            return None
        if not isinstance(value, str) or not value:
            raise InvalidInputError.field("organization_id", "must be an organization id, or null for a global form")
        org = await self.session.get(Organization, value)
        if org is None:
            raise InvalidInputError.field("organization_id", f"no organization {value!r}")
        return org.id

    async def _check_data_providers(self, schema: dict[str, Any] | None, organization_id: str | None) -> None:
        service = WorkflowService(self.session)
        for index, name in data_providers_used(schema):
            try:
                provider = await service.get(None, name, kind="data_provider")
            except NotFoundError:
                provider = None
            if provider is None or provider.organization_id not in (None, organization_id):
                raise InvalidInputError.field(
                    f"form_schema.fields[{index}].data_provider", f"no data provider {name!r}"
                )

    async def create(self, actor: Actor, **data: Any) -> Form:
        """Create a form (platform admins).

        Args:
            actor: The caller.
            **data: ``name`` and ``workflow_id`` (id or name; the id is stored) are
                required; ``description``, ``form_schema`` (validated; None means
                "generated from the workflow when shown"), ``access_level``
                (default ``role_based``), ``organization_id`` (omitted: the
                organization the admin acts in; null: a global form) and
                ``is_active``.

        Raises:
            PermissionDeniedError: Not a platform admin.
            InvalidInputError: Naming the bad field; nothing is written.
        """
        actor.require_admin("create forms")
        reject_unknown_fields(data, _FIELDS)
        for required in ("name", "workflow_id"):
            if required not in data:
                raise InvalidInputError.field(required, "is required")
        organization_id = await self._organization(data.get("organization_id", actor.acting_org_id))
        schema = None if data.get("form_schema") is None else validate_form_schema(data["form_schema"])
        await self._check_data_providers(schema, organization_id)
        form = Form(
            name=_name(data["name"]),
            description=optional_text(data.get("description"), "description", 4000),
            workflow_id=(await self._workflow(data["workflow_id"], organization_id)).id,
            form_schema=schema,
            access_level=_access_level(data.get("access_level", "role_based")),
            organization_id=organization_id,
            is_active=require_bool(data.get("is_active", True), "is_active"),
            created_by=actor.user_id,
        )
        self.session.add(form)
        await self.session.flush()
        return form

    async def update(self, actor: Actor, form_id: str, **updates: Any) -> Form:
        """Change any of the fields :meth:`create` takes (platform admins).

        Moving a form to another organization drops its assignments to roles of
        the old one (a role only grants forms of its own organization).

        Raises:
            PermissionDeniedError: Not a platform admin.
            NotFoundError: No such form.
            InvalidInputError: Naming the bad field; nothing is changed.
        """
        actor.require_admin("change forms")
        reject_unknown_fields(updates, _FIELDS)
        form = await self.get(actor, form_id)
        # Validate everything before touching the row: a refused update changes nothing.
        organization_id = (
            await self._organization(updates["organization_id"])
            if "organization_id" in updates
            else form.organization_id
        )
        changes: dict[str, Any] = {"organization_id": organization_id}
        if "name" in updates:
            changes["name"] = _name(updates["name"])
        if "description" in updates:
            changes["description"] = optional_text(updates["description"], "description", 4000)
        if "access_level" in updates:
            changes["access_level"] = _access_level(updates["access_level"])
        if "is_active" in updates:
            changes["is_active"] = require_bool(updates["is_active"], "is_active")
        if "form_schema" in updates:
            raw = updates["form_schema"]
            changes["form_schema"] = None if raw is None else validate_form_schema(raw)
        schema = changes.get("form_schema", form.form_schema)
        await self._check_data_providers(schema, organization_id)
        workflow_ref = updates.get("workflow_id", form.workflow_id)
        if "workflow_id" in updates or organization_id != form.organization_id:
            changes["workflow_id"] = (await self._workflow(workflow_ref, organization_id)).id
        if organization_id != form.organization_id and organization_id is not None:
            other_roles = select(col(Role.id)).where(col(Role.organization_id) != organization_id)
            await self.session.execute(
                delete(RoleForm).where(col(RoleForm.form_id) == form.id, col(RoleForm.role_id).in_(other_roles))
            )
        for key, value in changes.items():
            setattr(form, key, value)
        form.updated_at = utcnow()
        await self.session.flush()
        return form

    async def delete(self, actor: Actor, form_id: str) -> None:
        """Delete a form and its role assignments (platform admins).

        Raises:
            PermissionDeniedError: Not a platform admin.
            NotFoundError: No such form.
        """
        actor.require_admin("delete forms")
        form = await self.get(actor, form_id)
        await self.session.execute(delete(RoleForm).where(col(RoleForm.form_id) == form.id))
        await self.session.delete(form)
        await self.session.flush()

    # ----- roles of a form ------------------------------------------------------------------------
    async def list_roles(self, actor: Actor, form_id: str) -> builtins.list[str]:
        """Ids of the roles the form is assigned to (platform admins)."""
        actor.require_admin("see the roles of forms")
        form = await self.get(actor, form_id)
        stmt = select(col(RoleForm.role_id)).where(col(RoleForm.form_id) == form.id).order_by(col(RoleForm.role_id))
        return builtins.list((await self.session.execute(stmt)).scalars())

    async def set_roles(self, actor: Actor, form_id: str, role_ids: Any) -> builtins.list[str]:
        """Replace the roles the form is assigned to (platform admins).

        Args:
            actor: The caller.
            form_id: The form.
            role_ids: Ids of roles of the form's organization (any organization's
                roles for a global form).

        Returns:
            The assigned role ids, sorted.

        Raises:
            InvalidInputError: A role is unknown or of another organization; nothing changes.
        """
        actor.require_admin("assign forms to roles")
        form = await self.get(actor, form_id)
        if not isinstance(role_ids, builtins.list) or not all(isinstance(r, str) and r for r in role_ids):
            raise InvalidInputError.field("role_ids", "must be a list of role ids")
        wanted = builtins.list(dict.fromkeys(role_ids))
        stmt = select(col(Role.id)).where(col(Role.id).in_(wanted))
        if form.organization_id is not None:
            stmt = stmt.where(col(Role.organization_id) == form.organization_id)
        found = set((await self.session.execute(stmt)).scalars())
        missing = [r for r in wanted if r not in found]
        if missing:
            raise InvalidInputError.field("role_ids", f"not roles of this form's organization: {', '.join(missing)}")
        await self.session.execute(delete(RoleForm).where(col(RoleForm.form_id) == form.id))
        self.session.add_all(RoleForm(role_id=r, form_id=form.id) for r in wanted)
        await self.session.flush()
        return sorted(wanted)

    # ----- generated schema ---------------------------------------------------------------------
    async def default_schema(self, actor: Actor, workflow: str) -> FormSchema:
        """The ``form_schema`` generated from a workflow's parameters (any user who can see the workflow).

        Raises:
            NotFoundError: No such workflow visible to the actor.
        """
        row = await WorkflowService(self.session).get(actor, workflow)
        return cast("FormSchema", schema_from_workflow(row.parameters))  # validated: {"fields": [...]}
