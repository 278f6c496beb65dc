"""Authentication: passwords, API keys and per-execution SDK tokens, each resolved to an :class:`Actor`."""

from __future__ import annotations

import builtins
from datetime import timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from app.models import ApiKey, Execution, Organization, User
from app.models.base import utcnow
from app.services.actor import Actor
from app.services.audit import events as audit
from app.services.errors import (
    AuthenticationError,
    DomainError,
    InvalidInputError,
    NotFoundError,
    PermissionDeniedError,
)
from app.services.identity import actor_cache
from app.services.identity.organizations import OrganizationService
from app.services.identity.security import (
    API_KEY_PREFIX,
    EXECUTION_TOKEN_PREFIX,
    hash_token,
    new_api_key,
    verify_password,
)
from app.services.identity.totp import second_step_needed
from app.services.identity.users import UserService
from app.services.workflows.catalogue import WorkflowService

# last_used_at is written at most this often per key, to keep API calls read-only.
_LAST_USED_RESOLUTION = timedelta(seconds=60)


async def _check_org_active(session: AsyncSession, user: User) -> None:
    if user.organization_id:
        org = await session.get(Organization, user.organization_id)
        if org is None or not org.is_active:
            raise AuthenticationError("Your organization is deactivated; ask a platform admin.")


class SecondFactorRequired(DomainError):
    """The password was right, and the sign-in needs a second step before any session starts.

    Attributes:
        user_id: Who is signing in.
        session_version: Their session version now (the pending step is void once it changes).
        step: ``totp`` (enter a code) or ``enrol`` (the policy requires a factor the user has not set up).
    """

    def __init__(self, user: User, step: str) -> None:
        super().__init__("Enter the code of your authenticator app to finish signing in.")
        self.user_id = user.id
        self.session_version = user.session_version
        self.step = step


# Scopes an API key may have (None: no scope, everything its user may do).
API_KEY_SCOPES: tuple[str | None, ...] = (None, "notebook")


def _actor(user: User, acting_org_id: str | None, **extra: Any) -> Actor:
    """The actor of ``user`` acting in ``acting_org_id``; ``extra`` sets key/token fields or narrows powers."""
    fields: dict[str, Any] = {
        "user_id": user.id,
        "email": user.email,
        "name": user.name,
        "organization_id": user.organization_id,
        "is_superuser": user.is_superuser,
        "acting_org_id": acting_org_id,
    }
    return Actor(**{**fields, **extra})


def cached_actor_for_token(token: str, requested_org: str | None = None) -> Actor | None:
    """The actor a bearer token resolved to a moment ago, if still cached (no database needed)."""
    return actor_cache.get(hash_token(token), requested_org)


class AuthService:
    """Turns credentials into an Actor."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def login(self, email: str, password: str, ip: str | None = None) -> User:
        """Check an email and password; the same error for unknown user and wrong password.

        A success is audited in this transaction; a failure is audited by :func:`record_failed_login` in
        the caller's next one (this transaction is rolled back with the error). Users of an SSO-only
        organization are refused (platform admins keep their password: the break-glass way in).

        Args:
            email: The email typed.
            password: The password typed.
            ip: The client address (the TCP peer, or the forwarded one behind a trusted proxy).

        Raises:
            AuthenticationError: Wrong email or password, inactive user or organization, SSO only.
            SecondFactorRequired: Right password; a TOTP code (or enrolment) must follow. Nothing is
                audited yet: the sign-in is recorded when the second step succeeds.
        """
        user = await UserService(self.session).by_email(email or "")
        if user is None or not user.is_active or not verify_password(user.password_hash, password or ""):
            raise AuthenticationError("Invalid email or password.")
        await self.check_org_active(user)
        if user.organization_id and not user.is_superuser:
            org = await self.session.get(Organization, user.organization_id)
            if org is not None and org.sso_only:
                raise AuthenticationError(
                    "Your organization signs in with single sign-on only: use its button on the login page."
                )
        step = await second_step_needed(self.session, user)
        if step is not None:
            raise SecondFactorRequired(user, step)
        await self.record_login(user, ip)
        return user

    async def check_org_active(self, user: User) -> None:
        """Refuse users of a deactivated organization (AuthenticationError)."""
        await _check_org_active(self.session, user)

    async def record_login(self, user: User, ip: str | None, details: dict[str, Any] | None = None) -> None:
        """A sign-in succeeded (password, password and code, or SSO): stamp it and audit it.

        Args:
            user: Who signed in.
            ip: The client address.
            details: How, e.g. ``{"method": "sso", "provider": "entra"}``; none for a plain password.
        """
        user.last_login_at = utcnow()
        await self.session.flush()
        await audit.record(
            self.session,
            _actor(user, user.organization_id),
            audit.LOGIN_SUCCEEDED,
            "user",
            user.id,
            user.organization_id,
            details,
            ip=ip,
        )

    async def resolve_org(self, user: User, requested: str | None) -> str | None:
        """The organization a user acts in: their own, or (admins) the requested id or name."""
        if not user.is_superuser:
            if requested and requested not in (user.organization_id,):
                org = await self.session.get(Organization, user.organization_id) if user.organization_id else None
                if org is None or requested.lower() != org.name.lower():
                    raise PermissionDeniedError("You may only act in your own organization.")
            return user.organization_id
        if not requested:
            return user.organization_id
        org = await OrganizationService(self.session).find(requested)
        if org is None:
            raise NotFoundError(f"Organization {requested!r} not found.")
        return org.id

    async def actor_for_user(
        self, user_id: str, requested_org: str | None = None, session_version: int | None = None
    ) -> Actor:
        """Build the actor of a logged-in user (session cookie).

        Args:
            user_id: The user the session belongs to.
            requested_org: Organization a platform admin acts in.
            session_version: The user's session version when the session started; a session from before
                the last :func:`end_sessions` is refused. None skips the check (internal callers).
        """
        user = await self.session.get(User, user_id)
        if (
            user is None
            or not user.is_active
            or (session_version is not None and session_version != user.session_version)
        ):
            raise AuthenticationError("Your session is no longer valid; log in again.")
        await _check_org_active(self.session, user)
        return _actor(user, await self.resolve_org(user, requested_org))

    async def actor_for_token(self, token: str, requested_org: str | None = None) -> Actor:
        """Resolve a bearer token: an API key (``bfk_``) or an execution token (``bfx_``).

        Resolved actors are cached for a few seconds (:mod:`app.services.identity.actor_cache`).
        """
        cached = cached_actor_for_token(token, requested_org)
        if cached is not None:
            return cached
        token_hash = hash_token(token)
        if token.startswith(EXECUTION_TOKEN_PREFIX):
            actor = await self._actor_for_execution_token(token_hash)
        elif token.startswith(API_KEY_PREFIX):
            actor = await self._actor_for_api_key(token_hash, requested_org)
        else:
            raise AuthenticationError("Unknown token format: expected an API key (bfk_...).")
        actor_cache.put(token_hash, requested_org, actor)
        return actor

    async def _actor_for_api_key(self, token_hash: str, requested_org: str | None) -> Actor:
        key = (await self.session.execute(select(ApiKey).where(col(ApiKey.key_hash) == token_hash))).scalars().first()
        if key is None or key.revoked_at is not None:
            raise AuthenticationError("Invalid or revoked API key.")
        user = await self.session.get(User, key.user_id)
        if user is None or not user.is_active:
            raise AuthenticationError("The user who owns this API key is inactive.")
        await _check_org_active(self.session, user)
        now = utcnow()
        if key.last_used_at is None or now - key.last_used_at > _LAST_USED_RESOLUTION:
            key.last_used_at = now
            await self.session.flush()
        acting: str | None
        if key.organization_id:
            if requested_org and requested_org != key.organization_id:
                org = await self.session.get(Organization, key.organization_id)
                if org is None or requested_org.lower() != org.name.lower():
                    raise PermissionDeniedError("This API key is limited to another organization.")
            acting = key.organization_id
        else:
            acting = await self.resolve_org(user, requested_org)
        return _actor(
            user,
            acting,
            # A key limited to one organization never carries platform-wide powers.
            is_superuser=user.is_superuser and key.organization_id is None,
            api_key_id=key.id,
            api_key_workflow_id=key.workflow_id,
            api_key_scope=key.scope,
        )

    async def _actor_for_execution_token(self, token_hash: str) -> Actor:
        stmt = select(Execution).where(col(Execution.sdk_token_hash) == token_hash, col(Execution.status) == "Running")
        execution = (await self.session.execute(stmt)).scalars().first()
        if execution is None:
            raise AuthenticationError("This execution token has expired (its execution has ended).")
        user = await self.session.get(User, execution.executed_by)
        if user is None or not user.is_active:
            raise AuthenticationError("The user of this execution is inactive.")
        await _check_org_active(self.session, user)
        narrowing: dict[str, Any] = {}
        if execution.api_key_id:
            # A run started with an API key keeps that key's limits (and dies with its revocation).
            key = await self.session.get(ApiKey, execution.api_key_id)
            if key is None or key.revoked_at is not None:
                raise AuthenticationError("The API key that started this execution has been revoked.")
            narrowing = {
                "is_superuser": user.is_superuser and key.organization_id is None,
                "api_key_workflow_id": key.workflow_id,
            }
        return _actor(
            user,
            execution.organization_id,
            api_key_id=execution.api_key_id,
            execution_id=execution.id,
            # Notebook runs (app.services.executions.external_runs) run the user's own code.
            external_run=execution.trigger == "notebook",
            **narrowing,
        )


async def record_failed_login(session: AsyncSession, email: str, reason: str, ip: str | None = None) -> None:
    """Audit a refused sign-in (in its own transaction: the attempt's was rolled back).

    Args:
        session: An open session.
        email: The email typed (stored lower-cased and cut to 320 characters; never the password).
        reason: Why it was refused, as the user was told.
        ip: The client address.
    """
    typed = (email or "").strip().lower()[:320]
    user = await UserService(session).by_email(typed) if typed else None
    await audit.record(
        session,
        None,
        audit.LOGIN_FAILED,
        "user",
        user.id if user else None,
        user.organization_id if user else None,
        {"reason": reason},
        ip,
        actor_email=typed or None,
    )


class ApiKeyService:
    """Create, list and revoke API keys. The secret is returned once, at creation."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def create(
        self,
        actor: Actor,
        name: str,
        organization_id: str | None = None,
        workflow_id: str | None = None,
        *,
        scope: str | None = None,
    ) -> tuple[ApiKey, str]:
        """Create a key acting as ``actor``; returns the row and the full key (shown once).

        Regular users' keys are always limited to their organization.

        Args:
            actor: Who creates it (the key acts as this user).
            name: A label.
            organization_id: Limit the key to this organization.
            workflow_id: Limit the key to running this one workflow.
            scope: ``"notebook"`` limits the key to what a notebook needs (docs/jupyter.md); None: no limit.
        """
        if scope not in API_KEY_SCOPES:
            raise InvalidInputError.field("scope", f"must be one of: {', '.join(repr(s) for s in API_KEY_SCOPES)}")
        if actor.api_key_id or actor.execution_id:
            # A key or a running workflow must never mint a (broader, longer-lived) key.
            raise PermissionDeniedError("API keys can only be created by a logged-in user (web session or CLI).")
        if not isinstance(name, str) or not name.strip():
            raise InvalidInputError.field("name", "must be a non-empty string")
        organization_id = organization_id or None  # "" from a form means "no limit"
        workflow_id = workflow_id or None
        if workflow_id is not None:
            try:
                await WorkflowService(self.session).get(actor, workflow_id)
            except NotFoundError:
                raise InvalidInputError.field("workflow_id", f"workflow {workflow_id!r} not found") from None
        if not actor.is_superuser:
            if organization_id not in (None, actor.organization_id):
                raise PermissionDeniedError("You may only create keys for your own organization.")
            organization_id = actor.acting_org_id
        elif organization_id and await self.session.get(Organization, organization_id) is None:
            raise InvalidInputError.field("organization_id", f"organization {organization_id!r} does not exist")
        key_text, prefix = new_api_key()
        key = ApiKey(
            name=name.strip(),
            prefix=prefix,
            key_hash=hash_token(key_text),
            user_id=actor.user_id,
            organization_id=organization_id,
            workflow_id=workflow_id,
            scope=scope,
        )
        self.session.add(key)
        await self.session.flush()
        details = {"name": key.name, "prefix": key.prefix, "workflow_id": key.workflow_id, "scope": key.scope}
        await audit.record(self.session, actor, audit.API_KEY_CREATED, "api_key", key.id, organization_id, details)
        return key, key_text

    async def list(self, actor: Actor) -> builtins.list[ApiKey]:
        """Admins see every key; others their own."""
        stmt = select(ApiKey).order_by(col(ApiKey.created_at).desc())
        if not actor.is_superuser:
            stmt = stmt.where(col(ApiKey.user_id) == actor.user_id)
        return list((await self.session.execute(stmt)).scalars())

    async def revoke(self, actor: Actor, key_id: str) -> ApiKey:
        """Revoke a key (it stops working at once)."""
        key = await self.session.get(ApiKey, key_id)
        if key is None or not (actor.is_superuser or key.user_id == actor.user_id):
            raise NotFoundError(f"API key {key_id!r} not found.")
        if key.revoked_at is None:
            key.revoked_at = utcnow()
            await self.session.flush()
            actor_cache.clear_now_and_after_commit(self.session)
            details = {"name": key.name, "prefix": key.prefix, "owner_id": key.user_id}
            await audit.record(
                self.session, actor, audit.API_KEY_REVOKED, "api_key", key.id, key.organization_id, details
            )
        return key
