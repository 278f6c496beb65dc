"""Roles of an organization, with user and form assignments (platform admins only).

A role may grant authoring (``can_author``): its active holders may start notebook runs, i.e. run
their own code as an execution of their organization (see :func:`grants_authoring`).
"""

from __future__ import annotations

import builtins
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from app.models import Form, Role, RoleForm, User, UserRole
from app.services import cluster
from app.services.actor import Actor
from app.services.audit import events as audit
from app.services.errors import (
    ConflictError,
    InvalidInputError,
    NotFoundError,
    optional_text,
    reject_unknown_fields,
    require_bool,
)
from app.services.identity.users import end_sessions
from bifrost.types import Role as RolePublic

_UPDATABLE = {"name", "description", "is_active", "can_author"}


class RoleView(RolePublic):
    """A role as the API shows it: the SDK's fields plus ``can_author`` (the SDK model ignores it)."""

    can_author: bool = False


def role_public(role: Role) -> RoleView:
    """Return the API / SDK shape of a role."""
    return RoleView(
        id=role.id,
        name=role.name,
        description=role.description,
        organization_id=role.organization_id,
        is_active=role.is_active,
        can_author=role.can_author,
    )


async def grants_authoring(session: AsyncSession, user_id: str) -> bool:
    """True when ``user_id`` holds an active role of their own organization that grants authoring."""
    stmt = (
        select(col(Role.id))
        .join(UserRole, col(UserRole.role_id) == col(Role.id))
        .join(User, col(User.id) == col(UserRole.user_id))
        .where(
            col(UserRole.user_id) == user_id,
            col(Role.can_author).is_(True),
            col(Role.is_active).is_(True),
            col(Role.organization_id) == col(User.organization_id),
        )
        .limit(1)
    )
    return (await session.execute(stmt)).first() is not None


def _ids(value: Any, field: str) -> builtins.list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise InvalidInputError.field(field, "must be a list of ids")
    return list(dict.fromkeys(value))


class RoleService:
    """Roles live in the actor's acting organization."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    def _org(self, actor: Actor, what: str) -> str:
        actor.require_admin(what)
        if not actor.acting_org_id:
            raise InvalidInputError.field(
                "organization", "roles belong to an organization: select one (X-Bifrost-Org header or --org)"
            )
        return actor.acting_org_id

    async def _name_taken(self, org_id: str, name: str, exclude_id: str | None = None) -> bool:
        stmt = select(col(Role.id)).where(
            col(Role.organization_id) == org_id,
            (col(Role.name) == name) | (func.lower(col(Role.name)) == name.lower()),
        )
        if exclude_id:
            stmt = stmt.where(col(Role.id) != exclude_id)
        return (await self.session.execute(stmt)).first() is not None

    async def create(self, actor: Actor, name: str, description: str = "", can_author: Any = False) -> Role:
        """Create a role in the acting organization (``can_author``: its holders may start notebook runs)."""
        org_id = self._org(actor, "manage roles")
        if not isinstance(name, str) or not name.strip():
            raise InvalidInputError.field("name", "must be a non-empty string")
        if await self._name_taken(org_id, name.strip()):
            raise ConflictError(f"A role named {name.strip()!r} already exists in this organization.")
        role = Role(
            name=name.strip(),
            description=optional_text(description, "description", 2000) or "",
            organization_id=org_id,
            can_author=require_bool(can_author, "can_author"),
        )
        self.session.add(role)
        await self.session.flush()
        details = {"name": role.name, "can_author": role.can_author}
        await audit.record(self.session, actor, audit.ROLE_CREATED, "role", role.id, org_id, details)
        return role

    async def get(self, actor: Actor, role_id: str) -> Role:
        """Return a role of the acting organization."""
        org_id = self._org(actor, "manage roles")
        role = await self.session.get(Role, role_id)
        if role is None or role.organization_id != org_id:
            raise NotFoundError(f"Role {role_id!r} not found in this organization.")
        return role

    async def list(self, actor: Actor) -> builtins.list[Role]:
        """List active roles of the acting organization."""
        org_id = self._org(actor, "manage roles")
        stmt = (
            select(Role)
            .where(col(Role.organization_id) == org_id, col(Role.is_active).is_(True))
            .order_by(col(Role.name))
        )
        return list((await self.session.execute(stmt)).scalars())

    async def update(self, actor: Actor, role_id: str, **updates: Any) -> Role:
        """Update name, description, is_active or can_author."""
        reject_unknown_fields(updates, _UPDATABLE)
        role = await self.get(actor, role_id)
        if "name" in updates:
            name = updates["name"]
            if not isinstance(name, str) or not name.strip():
                raise InvalidInputError.field("name", "must be a non-empty string")
            if await self._name_taken(role.organization_id, name.strip(), exclude_id=role.id):
                raise ConflictError(f"A role named {name.strip()!r} already exists in this organization.")
            role.name = name.strip()
        if "description" in updates:
            role.description = optional_text(updates["description"], "description", 2000) or ""
        if "is_active" in updates:
            role.is_active = require_bool(updates["is_active"], "is_active")
        if "can_author" in updates:
            role.can_author = require_bool(updates["can_author"], "can_author")
        await self.session.flush()
        if {"name", "is_active"} & updates.keys():  # who holds which role name changed: on every server
            cluster.invalidate_after_commit(self.session, "roles")
        details = {
            "fields": sorted(updates),
            "name": role.name,
            "is_active": role.is_active,
            "can_author": role.can_author,
        }
        await audit.record(self.session, actor, audit.ROLE_UPDATED, "role", role.id, role.organization_id, details)
        return role

    async def delete(self, actor: Actor, role_id: str) -> None:
        """Soft-delete a role (deactivated; assignments kept for audit)."""
        role = await self.get(actor, role_id)
        role.is_active = False
        await self.session.flush()
        cluster.invalidate_after_commit(self.session, "roles")  # runs it allowed stop at once, on every server
        details = {"name": role.name}
        await audit.record(self.session, actor, audit.ROLE_DEACTIVATED, "role", role.id, role.organization_id, details)

    async def list_users(self, actor: Actor, role_id: str) -> builtins.list[str]:
        """Ids of users assigned to the role."""
        role = await self.get(actor, role_id)
        stmt = select(col(UserRole.user_id)).where(col(UserRole.role_id) == role.id).order_by(col(UserRole.user_id))
        return list((await self.session.execute(stmt)).scalars())

    async def list_forms(self, actor: Actor, role_id: str) -> builtins.list[str]:
        """Ids of forms assigned to the role."""
        role = await self.get(actor, role_id)
        stmt = select(col(RoleForm.form_id)).where(col(RoleForm.role_id) == role.id).order_by(col(RoleForm.form_id))
        return list((await self.session.execute(stmt)).scalars())

    async def assign_users(self, actor: Actor, role_id: str, user_ids: Any) -> None:
        """Assign users of the role's organization; unknown or foreign users are refused, nothing is half-written."""
        role = await self.get(actor, role_id)
        ids = _ids(user_ids, "user_ids")
        found = set(
            (
                await self.session.execute(
                    select(col(User.id)).where(col(User.id).in_(ids), col(User.organization_id) == role.organization_id)
                )
            ).scalars()  # type: ignore[attr-defined]
        )
        missing = [i for i in ids if i not in found]
        if missing:
            raise InvalidInputError.field("user_ids", f"not users of this organization: {', '.join(missing)}")
        existing = set(
            (
                await self.session.execute(select(col(UserRole.user_id)).where(col(UserRole.role_id) == role.id))
            ).scalars()
        )
        added = [i for i in ids if i not in existing]
        self.session.add_all(UserRole(role_id=role.id, user_id=i) for i in added)
        await self.session.flush()
        cluster.invalidate_after_commit(self.session, "roles")
        for user_id in added:  # a role change ends the user's sessions (issue 14, hole 6)
            await end_sessions(self.session, user_id)
        details = {"name": role.name, "user_ids": ids, "added": added}
        await audit.record(
            self.session, actor, audit.ROLE_USERS_ASSIGNED, "role", role.id, role.organization_id, details
        )

    async def assign_forms(self, actor: Actor, role_id: str, form_ids: Any) -> None:
        """Assign forms visible to the role's organization (its own or global)."""
        role = await self.get(actor, role_id)
        ids = _ids(form_ids, "form_ids")
        stmt = select(col(Form.id)).where(
            col(Form.id).in_(ids),
            (col(Form.organization_id) == role.organization_id) | col(Form.organization_id).is_(None),
        )
        found = set((await self.session.execute(stmt)).scalars())
        missing = [i for i in ids if i not in found]
        if missing:
            raise InvalidInputError.field("form_ids", f"not forms of this organization: {', '.join(missing)}")
        existing = set(
            (
                await self.session.execute(select(col(RoleForm.form_id)).where(col(RoleForm.role_id) == role.id))
            ).scalars()
        )
        added = [i for i in ids if i not in existing]
        self.session.add_all(RoleForm(role_id=role.id, form_id=i) for i in added)
        await self.session.flush()
        details = {"name": role.name, "form_ids": ids, "added": added}
        await audit.record(
            self.session, actor, audit.ROLE_FORMS_ASSIGNED, "role", role.id, role.organization_id, details
        )
