"""Users (platform admins manage them; everyone reads themselves)."""

from __future__ import annotations

import builtins
import re
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from app.models import Organization, User
from app.services.actor import Actor
from app.services.audit import events as audit
from app.services.errors import (
    ConflictError,
    InvalidInputError,
    NotFoundError,
    reject_unknown_fields,
    require_bool,
)
from app.services.identity import actor_cache
from app.services.identity.security import MIN_PASSWORD_LENGTH, hash_password
from bifrost.types import UserPublic

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_UPDATABLE = {"email", "name", "is_active", "is_superuser", "org_id", "organization_id", "password"}


async def end_sessions(session: AsyncSession, user_id: str) -> None:
    """End every web session of a user: their cookies' session version no longer matches.

    Called on logout, password change, deactivation and changes of admin flag, organization or roles.
    API keys are not sessions and keep working until revoked.
    """
    await session.execute(
        update(User).where(col(User.id) == user_id).values(session_version=User.session_version + 1)  # type: ignore[arg-type]
    )


def user_public(user: User) -> UserPublic:
    """Return the SDK shape of a user (never the password hash)."""
    return UserPublic(
        id=user.id,
        email=user.email,
        name=user.name,
        organization_id=user.organization_id,
        is_active=user.is_active,
        is_superuser=user.is_superuser,
    )


def _clean_email(email: Any) -> str:
    if not isinstance(email, str) or not _EMAIL.match(email.strip()):
        raise InvalidInputError.field("email", "must be a valid email address")
    return email.strip().lower()


def _clean_password(password: Any) -> str:
    if not isinstance(password, str) or len(password) < MIN_PASSWORD_LENGTH:
        raise InvalidInputError.field("password", f"must be at least {MIN_PASSWORD_LENGTH} characters")
    return password


class UserService:
    """Create, read, update and soft-delete users."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def by_email(self, email: str) -> User | None:
        """Return the user with this email (case-insensitive: emails are stored lower-cased), or None."""
        stmt = select(User).where(col(User.email) == email.strip().lower())
        return (await self.session.execute(stmt)).scalars().first()

    async def list_admins(self) -> builtins.list[User]:
        """Active platform admins, oldest first (bootstrap and CLI use, no actor)."""
        stmt = (
            select(User)
            .where(col(User.is_superuser).is_(True), col(User.is_active).is_(True))
            .order_by(col(User.created_at))
        )
        return list((await self.session.execute(stmt)).scalars())

    async def _check_org(self, org_id: str | None, is_superuser: bool) -> None:
        if org_id is not None and not isinstance(org_id, str):
            raise InvalidInputError.field("org_id", "must be an organization id")
        if org_id is None:
            if not is_superuser:
                raise InvalidInputError.field(
                    "org_id", "a user who is not a platform admin must belong to an organization"
                )
            return
        org = await self.session.get(Organization, org_id)
        if org is None:
            raise InvalidInputError.field("org_id", f"organization {org_id!r} does not exist")

    async def create(
        self,
        actor: Actor | None,
        email: str,
        name: str,
        is_superuser: bool = False,
        org_id: str | None = None,
        is_active: bool = True,
        password: str | None = None,
    ) -> User:
        """Create a user. ``actor=None`` is the bootstrap path used by ``bifrost init``."""
        if actor is not None:
            actor.require_admin("create users")
        clean_email = _clean_email(email)
        if not isinstance(name, str) or not name.strip():
            raise InvalidInputError.field("name", "must be a non-empty string")
        await self._check_org(org_id, require_bool(is_superuser, "is_superuser"))
        require_bool(is_active, "is_active")
        if await self.by_email(clean_email):
            raise ConflictError(f"A user with email {clean_email!r} already exists.")
        user = User(
            email=clean_email,
            name=name.strip(),
            is_superuser=bool(is_superuser),
            organization_id=org_id,
            is_active=bool(is_active),
            password_hash=hash_password(_clean_password(password)) if password is not None else None,
        )
        self.session.add(user)
        await self.session.flush()
        details = {"email": user.email, "is_superuser": user.is_superuser, "is_active": user.is_active}
        await audit.record(self.session, actor, audit.USER_CREATED, "user", user.id, user.organization_id, details)
        return user

    async def get(self, actor: Actor, user_id: str) -> User:
        """Return a user: admins any, others only themselves."""
        user = await self.session.get(User, user_id)
        if user is None or not (actor.is_superuser or actor.user_id == user_id):
            raise NotFoundError(f"User {user_id!r} not found.")
        return user

    async def list(self, actor: Actor, org_id: str | None = None) -> builtins.list[User]:
        """List users, optionally of one organization."""
        actor.require_admin("list users")
        stmt = select(User).order_by(col(User.email))
        if org_id:
            stmt = stmt.where(col(User.organization_id) == org_id)
        return list((await self.session.execute(stmt)).scalars())

    async def update(self, actor: Actor, user_id: str, **updates: Any) -> User:
        """Update profile fields, organization, admin flag or password."""
        actor.require_admin("update users")
        reject_unknown_fields(updates, _UPDATABLE)
        user = await self.get(actor, user_id)
        if "email" in updates:
            email = _clean_email(updates["email"])
            existing = await self.by_email(email)
            if existing and existing.id != user.id:
                raise ConflictError(f"A user with email {email!r} already exists.")
            user.email = email
        if "name" in updates:
            if not isinstance(updates["name"], str) or not updates["name"].strip():
                raise InvalidInputError.field("name", "must be a non-empty string")
            user.name = updates["name"].strip()
        if "is_active" in updates:
            user.is_active = require_bool(updates["is_active"], "is_active")
        superuser = require_bool(updates.get("is_superuser", user.is_superuser), "is_superuser")
        org_id = updates.get("org_id", updates.get("organization_id", user.organization_id))
        if "is_superuser" in updates or "org_id" in updates or "organization_id" in updates:
            await self._check_org(org_id, superuser)
            user.is_superuser, user.organization_id = superuser, org_id
        if "password" in updates:
            user.password_hash = hash_password(_clean_password(updates["password"]))
        await self.session.flush()
        if updates.keys() & {"password", "is_active", "is_superuser", "org_id", "organization_id"}:
            await end_sessions(self.session, user.id)
            await self.session.refresh(user)
        actor_cache.clear_now_and_after_commit(self.session)
        # Field names only: a new password (or any value) is never written to the audit log.
        changed = {"fields": sorted(updates), "is_superuser": user.is_superuser, "is_active": user.is_active}
        await audit.record(self.session, actor, audit.USER_UPDATED, "user", user.id, user.organization_id, changed)
        return user

    async def delete(self, actor: Actor, user_id: str) -> bool:
        """Soft-delete: the user is deactivated and can no longer log in."""
        actor.require_admin("delete users")
        user = await self.session.get(User, user_id)
        if user is None:
            return False
        if user.id == actor.user_id:
            raise InvalidInputError.field("user_id", "you cannot delete yourself")
        user.is_active = False
        await self.session.flush()
        await end_sessions(self.session, user.id)
        actor_cache.clear_now_and_after_commit(self.session)
        details = {"email": user.email}
        await audit.record(self.session, actor, audit.USER_DEACTIVATED, "user", user.id, user.organization_id, details)
        return True
