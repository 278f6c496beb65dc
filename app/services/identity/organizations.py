"""Organizations (platform admins only)."""

from __future__ import annotations

import builtins
import time
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from app.models import Organization
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
from app.services.identity import actor_cache
from bifrost.types import Organization as OrganizationPublic

_UPDATABLE = {"name", "domain", "is_active"}


def organization_public(org: Organization) -> OrganizationPublic:
    """Return the SDK shape of an organization."""
    return OrganizationPublic(id=org.id, name=org.name, is_active=org.is_active, domain=org.domain)


def _clean_name(name: Any) -> str:
    if not isinstance(name, str) or not name.strip():
        raise InvalidInputError.field("name", "must be a non-empty string")
    if len(name.strip()) > 200:
        raise InvalidInputError.field("name", "must be at most 200 characters")
    return name.strip()


# Organizations change rarely and are read on every submit (the context carries their name).
_CACHE_TTL_SECONDS = 5.0
_cache: dict[str, tuple[float, Organization]] = {}


cluster.register("organizations", _cache.clear)  # other servers drop theirs after a write here


def _forget_cached(session: AsyncSession) -> None:
    cluster.invalidate_after_commit(session, "organizations")
    actor_cache.clear_now_and_after_commit(session)


class OrganizationService:
    """Create, read, update and soft-delete organizations."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def _name_taken(self, name: str, exclude_id: str | None = None) -> bool:
        # SQL lower() folds ASCII only on SQLite; the exact match catches the rest (and the unique index backs both).
        stmt = select(col(Organization.id)).where(
            (col(Organization.name) == name) | (func.lower(col(Organization.name)) == name.lower())
        )
        if exclude_id:
            stmt = stmt.where(col(Organization.id) != exclude_id)
        return (await self.session.execute(stmt)).first() is not None

    async def create(self, actor: Actor, name: str, domain: str | None = None, is_active: bool = True) -> Organization:
        """Create an organization with a unique name."""
        actor.require_admin("create organizations")
        clean = _clean_name(name)
        if await self._name_taken(clean):
            raise ConflictError(f"An organization named {clean!r} already exists.")
        org = Organization(
            name=clean, domain=optional_text(domain, "domain", 255), is_active=require_bool(is_active, "is_active")
        )
        self.session.add(org)
        await self.session.flush()
        await audit.record(
            self.session, actor, audit.ORGANIZATION_CREATED, "organization", org.id, org.id, {"name": org.name}
        )
        return org

    async def get(self, actor: Actor, org_id: str) -> Organization:
        """Return an organization; users may read only their own."""
        org = await self.session.get(Organization, org_id)
        if org is None or not (actor.is_superuser or actor.organization_id == org_id):
            raise NotFoundError(f"Organization {org_id!r} not found.")
        return org

    async def cached(self, org_id: str | None) -> Organization | None:
        """The organization with this id from a few-second cache (None for None or unknown)."""
        if org_id is None:
            return None
        entry = _cache.get(org_id)
        if entry is not None and entry[0] > time.monotonic():
            return entry[1]
        org = await self.session.get(Organization, org_id)
        if org is not None:
            # A copy outside any session: a rollback of this session (or an edit through it) cannot change it.
            org = Organization.model_validate(org.model_dump())
            _cache[org_id] = (time.monotonic() + _CACHE_TTL_SECONDS, org)
        return org

    async def find(self, id_or_name: str) -> Organization | None:
        """Return the organization with this id or (case-insensitive) name, without permission checks."""
        org = await self.session.get(Organization, id_or_name)
        if org is not None:
            return org
        stmt = select(Organization).where(
            (col(Organization.name) == id_or_name) | (func.lower(col(Organization.name)) == id_or_name.lower())
        )
        return (await self.session.execute(stmt)).scalars().first()

    async def list(self, actor: Actor, include_inactive: bool = False) -> builtins.list[Organization]:
        """List organizations, by name."""
        actor.require_admin("list organizations")
        stmt = select(Organization).order_by(col(Organization.name))
        if not include_inactive:
            stmt = stmt.where(col(Organization.is_active).is_(True))
        return list((await self.session.execute(stmt)).scalars())

    async def update(self, actor: Actor, org_id: str, **updates: Any) -> Organization:
        """Update name, domain or is_active."""
        actor.require_admin("update organizations")
        reject_unknown_fields(updates, _UPDATABLE)
        org = await self.get(actor, org_id)
        if "name" in updates:
            clean = _clean_name(updates["name"])
            if await self._name_taken(clean, exclude_id=org.id):
                raise ConflictError(f"An organization named {clean!r} already exists.")
            org.name = clean
        if "domain" in updates:
            org.domain = optional_text(updates["domain"], "domain", 255)
        if "is_active" in updates:
            org.is_active = require_bool(updates["is_active"], "is_active")
        await self.session.flush()
        _forget_cached(self.session)
        details = {"fields": sorted(updates), "name": org.name, "is_active": org.is_active}
        await audit.record(self.session, actor, audit.ORGANIZATION_UPDATED, "organization", org.id, org.id, details)
        return org

    async def delete(self, actor: Actor, org_id: str) -> bool:
        """Soft-delete: the organization is deactivated, its data kept."""
        actor.require_admin("delete organizations")
        org = await self.session.get(Organization, org_id)
        if org is None:
            return False
        org.is_active = False
        await self.session.flush()
        _forget_cached(self.session)
        details = {"name": org.name}
        await audit.record(self.session, actor, audit.ORGANIZATION_DEACTIVATED, "organization", org.id, org.id, details)
        return True
