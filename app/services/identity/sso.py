"""Signing in through a single sign-on provider: start (state, nonce, PKCE), then the callback.

1. :func:`start_sign_in` stores a pending sign-in (SHA-256 of ``state``, the nonce, the PKCE verifier,
   where to go next; ten minutes) and returns the provider URL.
2. :func:`consume_state` takes that row out in its own transaction: whatever happens next, a replayed
   ``state`` finds nothing.
3. :func:`complete_sign_in` trades the code for the ID token, verifies it (:mod:`oidc`), then finds the
   user: by the provider's subject once linked, else by a *verified* email, else creates one when the
   provider may (organization from the email domain map or the provider's default; the default role).
   The success is audited with ``method: sso``.

Email counts as verified when the ID token says ``email_verified: true``; Entra ID does not send that
claim, so for ``entra`` providers the optional claim ``xms_edov`` (email domain owner verified) counts.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from app.models import Organization, Role, User, UserRole
from app.models.base import utcnow
from app.models.sign_in import SsoIdentity, SsoLoginState, SsoProvider
from app.services.audit import events as audit
from app.services.identity import oidc
from app.services.identity.auth import AuthService
from app.services.identity.oidc import OidcError
from app.services.identity.sso_providers import SsoProviderService
from app.services.identity.users import UserService
from app.services.secrets import SecretBox

STATE_SECONDS = 600
_TRUE = (True, "true", "True", 1, "1")


def state_hash(state: str) -> str:
    """What is stored of a ``state`` value (and kept in the browser's session to bind it)."""
    return hashlib.sha256(state.encode()).hexdigest()


@dataclass(frozen=True)
class PendingSignIn:
    """A consumed pending sign-in."""

    provider_id: str
    provider_slug: str
    nonce: str
    code_verifier: str
    redirect_uri: str
    next_url: str


def _client(provider: SsoProvider, service: SsoProviderService) -> oidc.OidcClient:
    return oidc.OidcClient(provider.issuer, provider.client_id, service.client_secret(provider), provider.scopes)


async def start_sign_in(
    session: AsyncSession, box: Callable[[], SecretBox], ref: str, redirect_uri: str, next_url: str
) -> tuple[str, str]:
    """Begin a sign-in with provider ``ref`` (slug or id); returns ``(provider URL, state)``.

    Raises:
        OidcError: Unknown or inactive provider, or its discovery document cannot be read.
    """
    service = SsoProviderService(session, box)
    provider = await service.find(ref)
    if provider is None or not provider.is_active:
        raise OidcError(f"There is no single sign-on provider {ref!r}.")
    meta = await oidc.discover(provider.issuer)
    state, nonce, verifier = secrets.token_urlsafe(32), secrets.token_urlsafe(24), secrets.token_urlsafe(48)
    now = utcnow()
    await session.execute(delete(SsoLoginState).where(col(SsoLoginState.expires_at) < now))
    session.add(
        SsoLoginState(
            state_hash=state_hash(state),
            provider_id=provider.id,
            nonce=nonce,
            code_verifier=verifier,
            redirect_uri=redirect_uri,
            next_url=next_url,
            expires_at=now + timedelta(seconds=STATE_SECONDS),
        )
    )
    await session.flush()
    return oidc.authorization_url(meta, _client(provider, service), redirect_uri, state, nonce, verifier), state


async def consume_state(session: AsyncSession, state: str) -> PendingSignIn:
    """Take the pending sign-in of ``state`` out (commit this transaction on its own).

    Raises:
        OidcError: Unknown, already used or expired ``state``.
    """
    row = await session.get(SsoLoginState, state_hash(state or ""))
    if row is None:
        raise OidcError("This sign-in link was already used or is unknown: start the sign-in again.")
    await session.delete(row)
    await session.flush()
    if row.expires_at < utcnow():
        raise OidcError("This sign-in took more than ten minutes: start it again.")
    provider = await session.get(SsoProvider, row.provider_id)
    slug = provider.slug if provider else row.provider_id
    return PendingSignIn(row.provider_id, slug, row.nonce, row.code_verifier, row.redirect_uri, row.next_url)


def verified_email(provider: SsoProvider, claims: dict[str, Any]) -> str | None:
    """The token's email when the provider vouches for it (see the module docstring), lower-cased."""
    email = claims.get("email")
    if not isinstance(email, str) or "@" not in email:
        return None
    verified = claims.get("email_verified") in _TRUE or (provider.kind == "entra" and claims.get("xms_edov") in _TRUE)
    return email.strip().lower() if verified else None


async def complete_sign_in(
    session: AsyncSession, box: Callable[[], SecretBox], pending: PendingSignIn, code: str, ip: str | None
) -> User:
    """Finish a sign-in: code exchange, ID token verification, user matching; audits the success.

    Raises:
        OidcError: Any step failed; ``email`` (when known) is on the error for the failure's audit event.
    """
    service = SsoProviderService(session, box)
    provider = await session.get(SsoProvider, pending.provider_id)
    if provider is None or not provider.is_active:
        raise OidcError("This single sign-on provider was removed or switched off.")
    client = _client(provider, service)
    meta = await oidc.discover(provider.issuer)
    id_token = await oidc.exchange_code(meta, client, code, pending.redirect_uri, pending.code_verifier)
    claims = await oidc.verify_id_token(meta, client, id_token, pending.nonce)
    user = await _match_user(session, provider, claims)
    if not user.is_active:
        raise _refusal("Your account is deactivated; ask a platform admin.", user.email)
    auth = AuthService(session)
    await auth.check_org_active(user)
    await auth.record_login(user, ip, {"method": "sso", "provider": provider.slug})
    return user


def _refusal(message: str, email: str | None) -> OidcError:
    error = OidcError(message)
    error.email = email  # type: ignore[attr-defined]
    return error


async def _match_user(session: AsyncSession, provider: SsoProvider, claims: dict[str, Any]) -> User:
    subject = str(claims["sub"])[:255]
    stmt = select(SsoIdentity).where(col(SsoIdentity.provider_id) == provider.id, col(SsoIdentity.subject) == subject)
    identity = (await session.execute(stmt)).scalars().first()
    email = verified_email(provider, claims)
    if identity is not None:
        user = await session.get(User, identity.user_id)
        if user is None:
            raise _refusal("The account linked to this identity no longer exists.", email)
        identity.last_login_at = utcnow()
        return user
    if email is None:
        raise _refusal(
            f"{provider.display_name} did not send a verified email address, and no account is linked to this "
            "identity: ask a platform admin.",
            None,
        )
    user = await UserService(session).by_email(email)
    if user is None:
        user = await _create_user(session, provider, claims, email)
    session.add(
        SsoIdentity(provider_id=provider.id, subject=subject, user_id=user.id, email=email, last_login_at=utcnow())
    )
    await session.flush()
    return user


async def _create_user(session: AsyncSession, provider: SsoProvider, claims: dict[str, Any], email: str) -> User:
    if not provider.create_users:
        raise _refusal(
            f"There is no account for {email}: ask a platform admin to create one "
            f"(or to let {provider.display_name} create accounts).",
            email,
        )
    domain = email.rsplit("@", 1)[1]
    org_id = (provider.domain_map or {}).get(domain) or provider.organization_id
    if org_id is None:
        raise _refusal(f"Accounts for {domain} are not created automatically: ask a platform admin.", email)
    org = await session.get(Organization, org_id)
    if org is None or not org.is_active:
        raise _refusal("The organization new accounts go to is deactivated; ask a platform admin.", email)
    name = claims.get("name") if isinstance(claims.get("name"), str) and claims["name"].strip() else email
    user = await UserService(session).create(None, email, str(name)[:200], org_id=org.id)
    if provider.default_role:
        stmt = select(Role).where(
            col(Role.organization_id) == org.id, col(Role.name) == provider.default_role, col(Role.is_active)
        )
        role = (await session.execute(stmt)).scalars().first()
        if role is not None:
            session.add(UserRole(role_id=role.id, user_id=user.id))
            await session.flush()
    return user


async def record_failed_sso(
    session: AsyncSession, provider_ref: str | None, reason: str, email: str | None, ip: str | None
) -> None:
    """Audit a refused single sign-on (in its own transaction: the attempt's was rolled back)."""
    user = await UserService(session).by_email(email) if email else None
    await audit.record(
        session,
        None,
        audit.LOGIN_FAILED,
        "user",
        user.id if user else None,
        user.organization_id if user else None,
        {"reason": reason, "method": "sso", "provider": provider_ref},
        ip,
        actor_email=email,
    )
