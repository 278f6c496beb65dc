"""Single sign-on providers as platform admins configure them (``/admin/sign-in``, ``/api/sign-in/providers``).

A provider is any OpenID Connect issuer; two presets fill the issuer in:

* ``entra``: Microsoft Entra ID, ``https://login.microsoftonline.com/<tenant>/v2.0`` for one tenant (its
  id or primary domain). Multi-tenant endpoints (``common``, ``organizations``) are refused: their ID
  tokens carry each user's own tenant as issuer, so the issuer check would have to trust every tenant.
* ``google``: ``https://accounts.google.com``.

The client secret is stored as a Fernet token and never returned (views say ``has_client_secret``).
"""

from __future__ import annotations

import builtins
import re
from collections.abc import Callable
from typing import Any, TypedDict
from urllib.parse import urlsplit

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from app.models import Organization
from app.models.base import utcnow
from app.models.sign_in import SsoProvider
from app.services.actor import Actor
from app.services.audit import events as audit
from app.services.errors import ConflictError, InvalidInputError, NotFoundError, reject_unknown_fields, require_bool
from app.services.secrets import SecretBox

KINDS = ("oidc", "entra", "google")
GOOGLE_ISSUER = "https://accounts.google.com"
ENTRA_ISSUER = "https://login.microsoftonline.com/{tenant}/v2.0"
DEFAULT_SCOPES = "openid email profile"
FIELDS = frozenset(
    {
        "slug",
        "display_name",
        "kind",
        "tenant",
        "issuer",
        "client_id",
        "client_secret",
        "scopes",
        "is_active",
        "create_users",
        "organization_id",
        "domain_map",
        "default_role",
    }
)
_SLUG = re.compile(r"^[a-z0-9][a-z0-9-]{0,59}$")
_TENANT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9.-]{0,99}$")
_DOMAIN = re.compile(r"^(?=.{1,253}$)([a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$")
_LOOPBACK = {"127.0.0.1", "localhost", "::1"}


class SsoProviderView(TypedDict):
    """A single sign-on provider (the client secret is never shown)."""

    id: str
    slug: str
    display_name: str
    kind: str
    tenant: str | None
    issuer: str
    client_id: str
    has_client_secret: bool
    scopes: str
    is_active: bool
    create_users: bool
    organization_id: str | None
    domain_map: dict[str, str]
    default_role: str | None
    callback_path: str


class SsoProviderBody(TypedDict, total=False):
    """Fields of a provider. ``kind`` ``entra`` needs ``tenant``, ``oidc`` needs ``issuer``; ``google``
    needs neither. ``client_secret``: null removes it, leaving it out keeps it. ``domain_map``: email domain
    to organization (id or name) for created users."""

    slug: str
    display_name: str
    kind: str
    tenant: str | None
    issuer: str
    client_id: str
    client_secret: str | None
    scopes: str
    is_active: bool
    create_users: bool
    organization_id: str | None
    domain_map: dict[str, str]
    default_role: str | None


class PublicProvider(TypedDict):
    """What the login page shows of a provider: its button."""

    slug: str
    display_name: str


CALLBACK_PATH = "/login/sso/callback"


def provider_view(provider: SsoProvider) -> SsoProviderView:
    """The admin view of a provider."""
    return {
        "id": provider.id,
        "slug": provider.slug,
        "display_name": provider.display_name,
        "kind": provider.kind,
        "tenant": provider.tenant,
        "issuer": provider.issuer,
        "client_id": provider.client_id,
        "has_client_secret": bool(provider.client_secret),
        "scopes": provider.scopes,
        "is_active": provider.is_active,
        "create_users": provider.create_users,
        "organization_id": provider.organization_id,
        "domain_map": dict(provider.domain_map or {}),
        "default_role": provider.default_role,
        "callback_path": CALLBACK_PATH,
    }


def _text(body: dict[str, Any], name: str, max_length: int, *, required: bool = False) -> str | None:
    value = body.get(name)
    if value is None or (isinstance(value, str) and not value.strip()):
        if required:
            raise InvalidInputError.field(name, "is required")
        return None
    if not isinstance(value, str):
        raise InvalidInputError.field(name, "must be text")
    if len(value.strip()) > max_length:
        raise InvalidInputError.field(name, f"must be at most {max_length} characters")
    return value.strip()


def check_issuer(issuer: str) -> str:
    """An issuer URL: https (plain http only on this machine, for tests and local providers), no query."""
    parts = urlsplit(issuer)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise InvalidInputError.field("issuer", "must be an https:// URL (the provider's issuer)")
    if parts.scheme == "http" and parts.hostname not in _LOOPBACK:
        raise InvalidInputError.field("issuer", "must use https:// (plain http only for a provider on this machine)")
    if parts.query or parts.fragment:
        raise InvalidInputError.field("issuer", "must not have a query or fragment")
    return issuer.rstrip("/")


class SsoProviderService:
    """Create, list, change and delete providers (platform admins); read the active ones (login page)."""

    def __init__(self, session: AsyncSession, box: Callable[[], SecretBox]) -> None:
        self.session = session
        self.box = box

    async def active(self) -> builtins.list[SsoProvider]:
        """Providers shown on the login page, by display name."""
        stmt = select(SsoProvider).where(col(SsoProvider.is_active)).order_by(col(SsoProvider.display_name))
        return list((await self.session.execute(stmt)).scalars())

    async def list(self, actor: Actor) -> builtins.list[SsoProvider]:
        """Every provider (platform admins)."""
        actor.require_admin("manage single sign-on")
        return list((await self.session.execute(select(SsoProvider).order_by(col(SsoProvider.slug)))).scalars())

    async def find(self, ref: str) -> SsoProvider | None:
        """A provider by id or slug."""
        stmt = select(SsoProvider).where(or_(col(SsoProvider.id) == ref, col(SsoProvider.slug) == ref))
        return (await self.session.execute(stmt)).scalars().first()

    async def get(self, actor: Actor, ref: str) -> SsoProvider:
        """A provider by id or slug (platform admins)."""
        actor.require_admin("manage single sign-on")
        provider = await self.find(ref)
        if provider is None:
            raise NotFoundError(f"Single sign-on provider {ref!r} not found.")
        return provider

    def client_secret(self, provider: SsoProvider) -> str | None:
        """The plaintext client secret (for the token request only)."""
        return self.box().decrypt(provider.client_secret, "an SSO client secret") if provider.client_secret else None

    async def create(self, actor: Actor, body: Any) -> SsoProvider:
        """Add a provider; every field is checked and named in a 422."""
        actor.require_admin("manage single sign-on")
        if not isinstance(body, dict):
            raise InvalidInputError("The body must be a JSON object.")
        reject_unknown_fields(body, FIELDS)
        provider = SsoProvider(slug="", display_name="", issuer="", client_id="")
        await self._apply(provider, {"kind": "oidc", **body}, creating=True)
        self.session.add(provider)
        await self.session.flush()
        details = {"slug": provider.slug, "kind": provider.kind, "issuer": provider.issuer}
        await audit.record(self.session, actor, audit.SSO_PROVIDER_CREATED, "sso_provider", provider.id, None, details)
        return provider

    async def update(self, actor: Actor, ref: str, body: Any) -> SsoProvider:
        """Change some fields of a provider."""
        provider = await self.get(actor, ref)
        if not isinstance(body, dict):
            raise InvalidInputError("The body must be a JSON object.")
        reject_unknown_fields(body, FIELDS)
        await self._apply(provider, body, creating=False)
        provider.updated_at = utcnow()
        await self.session.flush()
        details = {"slug": provider.slug, "fields": sorted(body)}
        await audit.record(self.session, actor, audit.SSO_PROVIDER_UPDATED, "sso_provider", provider.id, None, details)
        return provider

    async def delete(self, actor: Actor, ref: str) -> bool:
        """Delete a provider (its linked identities go with it; users stay)."""
        actor.require_admin("manage single sign-on")
        provider = await self.find(ref)
        if provider is None:
            return False
        details = {"slug": provider.slug}
        await self.session.delete(provider)
        await self.session.flush()
        await audit.record(self.session, actor, audit.SSO_PROVIDER_DELETED, "sso_provider", provider.id, None, details)
        return True

    async def _apply(self, provider: SsoProvider, body: dict[str, Any], *, creating: bool) -> None:
        merged = {**provider_view(provider), **body} if not creating else body
        kind = merged.get("kind")
        if kind not in KINDS:
            raise InvalidInputError.field("kind", f"must be one of {', '.join(KINDS)}")
        slug = _text(merged, "slug", 60, required=True)
        if not slug or not _SLUG.match(slug):
            raise InvalidInputError.field("slug", "must be lower-case letters, digits and '-' (e.g. 'entra')")
        clash = await self.find(slug)
        if clash is not None and clash.id != provider.id:
            raise ConflictError(f"A single sign-on provider named {slug!r} already exists.")
        tenant = None
        if kind == "entra":
            tenant = _text(merged, "tenant", 100, required=True)
            if not tenant or not _TENANT.match(tenant):
                raise InvalidInputError.field("tenant", "must be the Entra tenant id (a GUID) or its primary domain")
            if tenant.lower() in ("common", "organizations", "consumers"):
                raise InvalidInputError.field(
                    "tenant", "must be one tenant (its id or domain), not a multi-tenant endpoint"
                )
            issuer = ENTRA_ISSUER.format(tenant=tenant)
        elif kind == "google":
            issuer = GOOGLE_ISSUER
        else:
            issuer = check_issuer(_text(merged, "issuer", 500, required=True) or "")
        provider.kind, provider.slug, provider.tenant, provider.issuer = kind, slug, tenant, issuer
        defaults = {"entra": "Microsoft", "google": "Google", "oidc": slug}
        provider.display_name = _text(merged, "display_name", 100) or defaults[kind]
        provider.client_id = _text(merged, "client_id", 500, required=True) or ""
        provider.scopes = _text(merged, "scopes", 1000) or DEFAULT_SCOPES
        if "openid" not in provider.scopes.split():
            raise InvalidInputError.field("scopes", "must include 'openid'")
        if "client_secret" in body:
            secret = body["client_secret"]
            if secret is not None and (not isinstance(secret, str) or len(secret) > 2000):
                raise InvalidInputError.field("client_secret", "must be text (at most 2000 characters) or null")
            provider.client_secret = self.box().encrypt(secret) if secret else None
        for flag in ("is_active", "create_users"):
            if flag in body:
                setattr(provider, flag, require_bool(body[flag], flag))
        if "organization_id" in body or creating:
            provider.organization_id = await self._org(body.get("organization_id"), "organization_id")
        if "domain_map" in body or creating:
            provider.domain_map = await self._domain_map(body.get("domain_map") or {})
        if "default_role" in body or creating:
            provider.default_role = _text(body, "default_role", 200)

    async def _org(self, ref: Any, field: str) -> str | None:
        if ref is None or ref == "":
            return None
        if not isinstance(ref, str):
            raise InvalidInputError.field(field, "must be an organization id or name")
        stmt = select(Organization).where(or_(col(Organization.id) == ref, col(Organization.name) == ref))
        org = (await self.session.execute(stmt)).scalars().first()
        if org is None:
            raise InvalidInputError.field(field, f"organization {ref!r} does not exist")
        return org.id

    async def _domain_map(self, value: Any) -> dict[str, str]:
        if not isinstance(value, dict):
            raise InvalidInputError.field("domain_map", "must be an object of email domain to organization")
        result: dict[str, str] = {}
        for domain, org in value.items():
            clean = str(domain).strip().lower().lstrip("@")
            if not _DOMAIN.match(clean):
                raise InvalidInputError.field(f"domain_map.{domain}", "is not a domain name (e.g. contoso.com)")
            org_id = await self._org(org, f"domain_map.{domain}")
            if org_id is None:
                raise InvalidInputError.field(f"domain_map.{domain}", "must name an organization")
            result[clean] = org_id
        return result


async def set_organization_sso_only(session: AsyncSession, actor: Actor, org_id: str, sso_only: bool) -> Organization:
    """Set ``sso_only`` of an organization (platform admins; audited as an organization update)."""
    actor.require_admin("change how organizations sign in")
    org = await session.get(Organization, org_id)
    if org is None:
        raise NotFoundError(f"Organization {org_id!r} not found.")
    org.sso_only = sso_only
    await session.flush()
    details = {"fields": ["sso_only"], "name": org.name, "sso_only": sso_only}
    await audit.record(session, actor, audit.ORGANIZATION_UPDATED, "organization", org.id, org.id, details)
    return org
