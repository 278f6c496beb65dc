"""Which model answers, per platform and organization, and with which credentials.

Resolution for a caller acting in organization X (first match wins, as a whole: model, base
URL and API key come from the same place):

1. X's AI settings, when they name a model;
2. the platform's AI settings (scope ``global``), when they name a model;
3. the server's environment: ``BIFROST_AI_MODEL``, ``BIFROST_AI_BASE_URL``, ``BIFROST_AI_API_KEY``.

The API key is read server-side from the config key the settings name (usually a secret,
``is_secret=True``; X's value first, then the global one), else from ``BIFROST_AI_API_KEY``,
else the provider's own environment variable (``OPENAI_API_KEY``, ...). It never leaves the server.
"""

from __future__ import annotations

import builtins
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast
from urllib.parse import urlparse

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from agents.models import ModelConfig, ModelConfigurationError, check_model_string
from app.models.ai import GLOBAL_SCOPE, AISetting
from app.models.base import utcnow
from app.models.config_entry import ConfigEntry
from app.services.actor import Actor
from app.services.chat.views import AIScopeSettings, AISettingsView
from app.services.config.service import decode_value, validate_key
from app.services.errors import DomainError, InvalidInputError, NotFoundError, reject_unknown_fields
from app.services.identity.organizations import OrganizationService
from app.services.knowledge.service import check_namespace
from app.services.secrets import SecretBox
from app.settings import Settings
from bifrost.enums import ConfigType

SETTING_FIELDS = frozenset({"model", "base_url", "api_key_config", "knowledge_namespaces"})
MAX_NAMESPACES = 50
NO_MODEL = (
    "No AI model is configured. A platform admin sets one on the AI settings page (/admin/ai) or with "
    "PUT /api/ai/settings (for the platform or one organization), or starts the server with "
    "BIFROST_AI_MODEL (e.g. openai:gpt-4o-mini, anthropic:claude-3-5-haiku-latest, ollama:llama3.2)."
)


# What a user who cannot configure anything is told (issue 19): the admin's how-to above is no use to them.
USER_NOTICE = "The assistant is not configured yet: ask your administrator to set up an AI model."


def notice_for(is_admin: bool, problem: str) -> str:
    """The model problem as ``problem`` for a platform admin (who can fix it), a short notice for anyone else."""
    return problem if is_admin else USER_NOTICE


class AIConfigurationError(DomainError):
    """No usable model: the message says what to set (SDK: ``ConfigurationError``)."""


class AIProviderError(DomainError):
    """The model provider failed or answered something unusable (HTTP 502)."""


@dataclass(frozen=True)
class ResolvedModel:
    """The model settings that apply to one call, and where they came from.

    Attributes:
        config: Model string, base URL and API key.
        source: ``organization``, ``platform`` or ``environment``.
    """

    config: ModelConfig
    source: str


def setting_view(row: AISetting | None, scope: str) -> AIScopeSettings:
    """The API shape of one scope's settings (an unset scope shows empty values)."""
    return {
        "scope": scope,
        "model": row.model if row else None,
        "base_url": row.base_url if row else None,
        "api_key_config": row.api_key_config if row else None,
        "knowledge_namespaces": list(row.knowledge_namespaces) if row else [],
        "updated_at": row.updated_at.isoformat() if row else None,
    }


def check_model_field(value: Any) -> str | None:
    """A model string (``provider:model``) or None for null/empty; 422 naming ``model`` otherwise."""
    if value is None or value == "":
        return None
    if not isinstance(value, str) or len(value) > 200:
        raise InvalidInputError.field("model", "must be a model string of at most 200 characters")
    try:
        return check_model_string(value)
    except ModelConfigurationError as exc:
        raise InvalidInputError.field("model", str(exc)) from None


def _base_url(value: Any) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str) or len(value) > 2000:
        raise InvalidInputError.field("base_url", "must be a URL of at most 2000 characters")
    parsed = urlparse(value.strip())
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise InvalidInputError.field("base_url", "must be an http:// or https:// URL")
    return value.strip().rstrip("/")


def _api_key_config(value: Any) -> str | None:
    if value is None or value == "":
        return None
    try:
        return validate_key(value)
    except InvalidInputError as exc:
        raise InvalidInputError.field("api_key_config", str(exc).partition(": ")[2]) from None


def _namespaces(value: Any) -> builtins.list[str]:
    if value is None:
        return []
    if not isinstance(value, builtins.list) or len(value) > MAX_NAMESPACES:
        raise InvalidInputError.field("knowledge_namespaces", f"must be a list of at most {MAX_NAMESPACES} names")
    names = [check_namespace(v, f"knowledge_namespaces[{i}]") for i, v in enumerate(value)]
    return builtins.list(dict.fromkeys(names))


class AISettingsService:
    """Reads and writes AI settings (platform admins) and resolves the model of a call (everyone).

    Args:
        session: The transaction.
        settings: Server settings (the environment fallback).
        secret_box: Decrypts the API key secret (called only when one is read).
    """

    def __init__(self, session: AsyncSession, settings: Settings, secret_box: Callable[[], SecretBox]) -> None:
        self.session = session
        self.settings = settings
        self._secret_box = secret_box

    async def _scope(self, actor: Actor, org: str | None) -> str:
        """``global`` or an organization id; admins only (others: 403)."""
        actor.require_admin("manage AI settings")
        if not org or org.upper() == "GLOBAL":
            return GLOBAL_SCOPE
        found = None if len(org) > 200 or "\x00" in org else await OrganizationService(self.session).find(org)
        if found is None:
            raise NotFoundError(f"Organization {org!r} not found.")
        return found.id

    async def get(self, actor: Actor, org: str | None = None) -> AISettingsView:
        """The settings of the platform (``org`` None / ``GLOBAL``) or of one organization, plus what applies."""
        scope = await self._scope(actor, org)
        row = await self.session.get(AISetting, scope)
        view = cast(AISettingsView, setting_view(row, scope))
        effective = await self._effective(None if scope == GLOBAL_SCOPE else scope)
        view["effective"] = (
            {"model": effective[0].model, "base_url": effective[0].base_url, "source": effective[1]}
            if effective
            else None
        )
        return view

    async def update(self, actor: Actor, org: str | None, body: Any) -> AISettingsView:
        """Change some of ``model``, ``base_url``, ``api_key_config``, ``knowledge_namespaces`` of one scope.

        Empty strings and null clear a value. Nothing is written when a field is invalid.
        """
        scope = await self._scope(actor, org)
        if not isinstance(body, dict):
            raise InvalidInputError.field("body", "must be a JSON object")
        reject_unknown_fields(body, SETTING_FIELDS)
        changes: dict[str, Any] = {}
        if "model" in body:
            changes["model"] = check_model_field(body["model"])
        if "base_url" in body:
            changes["base_url"] = _base_url(body["base_url"])
        if "api_key_config" in body:
            changes["api_key_config"] = _api_key_config(body["api_key_config"])
        if "knowledge_namespaces" in body:
            changes["knowledge_namespaces"] = _namespaces(body["knowledge_namespaces"])
        row = await self.session.get(AISetting, scope)
        if row is None:
            row = AISetting(scope=scope)
            self.session.add(row)
        for key, value in changes.items():
            setattr(row, key, value)
        row.updated_by, row.updated_at = actor.user_id, utcnow()
        await self.session.flush()
        return await self.get(actor, None if scope == GLOBAL_SCOPE else scope)

    async def _rows(self, org_id: str | None) -> dict[str, AISetting]:
        scopes = [GLOBAL_SCOPE] if org_id is None else [org_id, GLOBAL_SCOPE]
        stmt = select(AISetting).where(col(AISetting.scope).in_(scopes))
        return {row.scope: row for row in (await self.session.execute(stmt)).scalars()}

    async def _effective(self, org_id: str | None) -> tuple[ModelConfig, str, str | None] | None:
        """(config without key, source, config key of the API key) for an organization, or None."""
        rows = await self._rows(org_id)
        for scope, source in ((org_id, "organization"), (GLOBAL_SCOPE, "platform")):
            row = rows.get(scope) if scope else None
            if row is not None and row.model:
                return ModelConfig(row.model, row.base_url), source, row.api_key_config
        if self.settings.ai_model:
            return ModelConfig(self.settings.ai_model, self.settings.ai_base_url), "environment", None
        return None

    async def resolve(self, actor: Actor, requested_model: str | None = None) -> ResolvedModel:
        """The model for a call by ``actor`` (in its acting organization).

        Args:
            actor: The caller.
            requested_model: A model string the call asks for (``ai.complete(model=...)``, an
                agent's model). With the configured provider, its base URL and key are kept;
                another provider uses that provider's environment credentials.

        Raises:
            AIConfigurationError: No model anywhere, or the API key's config key is not set.
            InvalidInputError: ``requested_model`` is not a model string.
        """
        org_id = actor.acting_org_id
        effective = await self._effective(org_id)
        if requested_model is not None:
            requested = check_model_field(requested_model)
        else:
            requested = None
        if effective is None and requested is None:
            raise AIConfigurationError(NO_MODEL)
        if effective is None:
            return ResolvedModel(ModelConfig(str(requested)), "request")
        config, source, key_name = effective
        if requested and requested.partition(":")[0] != config.model.partition(":")[0]:
            return ResolvedModel(ModelConfig(requested), "request")
        api_key = await self._api_key(key_name, org_id) if key_name else None
        if api_key is None and source == "environment":
            api_key = self.settings.ai_api_key
        return ResolvedModel(ModelConfig(requested or config.model, config.base_url, api_key), source)

    async def _api_key(self, key: str, org_id: str | None) -> str:
        owner = col(ConfigEntry.organization_id)
        where = owner.is_(None) if org_id is None else or_(owner == org_id, owner.is_(None))
        stmt = select(ConfigEntry).where(col(ConfigEntry.key) == key, where)
        rows = builtins.list((await self.session.execute(stmt)).scalars())
        if not rows:
            raise AIConfigurationError(
                f"The AI settings take the API key from the config key {key!r}, which is not set in this "
                f"organization or globally. Set it with config.set({key!r}, '<key>', is_secret=True) or on the "
                "config page."
            )
        entry = next((r for r in rows if r.organization_id is not None), rows[0])
        if entry.config_type == ConfigType.SECRET:
            return self._secret_box().decrypt(entry.value, f"secret {entry.key!r}")
        return str(decode_value(entry.config_type, entry.value))

    async def chat_namespaces(self, actor: Actor) -> builtins.list[str]:
        """Knowledge namespaces enabled for the chat in the actor's organization (else the platform's)."""
        rows = await self._rows(actor.acting_org_id)
        for scope in (actor.acting_org_id, GLOBAL_SCOPE):
            row = rows.get(scope) if scope else None
            if row is not None and row.knowledge_namespaces:
                return builtins.list(row.knowledge_namespaces)
        return []
