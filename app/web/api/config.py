"""Config values and secrets: ``/config`` under both the JSON API and the SDK API.

* ``GET /config`` → ``{key: value}`` merged (organization over global), secrets masked;
  ``?detail=true`` → one row per stored entry for a config page; ``?org_id=`` (platform admins)
  picks an organization by id or name, or ``GLOBAL``.
* ``GET /config/{key}`` → the entry (``value`` and its ``type``); a secret's plaintext only to
  execution tokens, masked (``"masked": true``) for API keys and sessions.
* ``PUT /config/{key}`` with ``{"value", "is_secret"?, "description"?}`` → the stored entry (masked).
* ``DELETE /config/{key}`` → ``{"deleted": bool}`` (the scope's own value only).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Annotated, Any
from urllib.parse import unquote

from litestar import Controller, MediaType, Request, Response, delete, get, put
from litestar.types import ControllerRouterHandler

from app.services.actor import Actor
from app.services.config.service import ConfigService, peek_cached
from app.services.config.views import ConfigEntryRow, ConfigEntryView, ConfigSetBody
from app.services.secrets import SecretBox, SecretKeyError, secret_box
from app.settings import Settings
from app.web.api.schemas import Deleted, documented_body
from app.web.deps import db

log = logging.getLogger(__name__)

KEYS_UNAVAILABLE = (
    "Secrets are unavailable: the server's encryption keys are missing, malformed, or do not match this secret. "
    "A platform admin finds the details in the server log."
)


def secret_key_error_handler(request: Request[Any, Any, Any], exc: SecretKeyError) -> Response[Any]:
    """A key problem is the server's configuration, not the caller's input: 500, details only in the log.

    ``X-Bifrost-Error: configuration`` makes the SDK raise ``bifrost.ConfigurationError``.
    """
    log.error("config %s %s: %s", request.method, request.url.path, exc)
    return Response(
        {"status_code": 500, "detail": KEYS_UNAVAILABLE},
        status_code=500,
        media_type=MediaType.JSON,
        headers={"X-Bifrost-Error": "configuration"},
    )


def exact_key(request: Request[Any, Any, Any], routed: str) -> str:
    """The key exactly as the client encoded it in the URL.

    Keys may contain ``/`` (sent as ``%2F``). The decoded path Litestar routes on folds ``a//b`` into
    ``a/b`` and drops a trailing ``/``, which would silently address another key, so the key is
    percent-decoded from the raw path instead (falling back to the routed value without one).
    """
    raw = request.scope.get("raw_path")
    if isinstance(raw, bytes) and b"/config/" in raw:
        encoded = raw.split(b"/config/", 1)[1].decode("latin-1")
        return unquote(encoded, encoding="utf-8", errors="surrogateescape")
    return routed.lstrip("/")


def _keys(request: Request[Any, Any, Any]) -> Callable[[], SecretBox]:
    settings: Settings = request.app.state.settings
    return lambda: secret_box(settings.secret_key, settings.home)


def _service(request: Request[Any, Any, Any], session: Any) -> ConfigService:
    return ConfigService(session, _keys(request))


class ConfigController(Controller):
    """Configuration of the acting organization, with global fallback."""

    path = "/config"
    tags = ["config"]
    exception_handlers = {SecretKeyError: secret_key_error_handler}

    @get("/")
    async def list_config(
        self,
        request: Request[Any, Any, Any],
        actor: Actor,
        org_id: str | None = None,
        detail: bool = False,
    ) -> dict[str, Any] | list[ConfigEntryRow]:
        """Every visible key (secrets masked); ``detail=true`` for one row per entry with its type and scope."""
        async with db(request) as session:
            service = _service(request, session)
            if detail:
                return await service.entries(actor, org_id)
            return await service.list(actor, org_id)

    @get("/{key:path}")
    async def get_config(
        self, request: Request[Any, Any, Any], actor: Actor, key: str, org_id: str | None = None
    ) -> ConfigEntryView:
        """One key: the organization's value, else the global one (404 when neither is set)."""
        key = exact_key(request, key)
        if not org_id:
            # Workflows call config.get in loops: a cached lookup needs no transaction at all.
            cached = peek_cached(actor, key, _keys(request))
            if cached is not None:
                return cached.view()
        async with db(request) as session:
            return (await _service(request, session).get(actor, key, org_id)).view()

    @put("/{key:path}")
    async def set_config(
        self,
        request: Request[Any, Any, Any],
        actor: Actor,
        key: str,
        data: Annotated[dict[str, Any], documented_body(ConfigSetBody, closed=True)],
        org_id: str | None = None,
    ) -> ConfigEntryView:
        """Create or replace a key in the acting organization (global: platform admins only)."""
        async with db(request) as session:
            service = _service(request, session)
            return (await service.set_from_body(actor, exact_key(request, key), data, org_id)).view()

    @delete("/{key:path}", status_code=200)
    async def delete_config(
        self, request: Request[Any, Any, Any], actor: Actor, key: str, org_id: str | None = None
    ) -> Deleted:
        """Delete the acting organization's own value of a key (a global value stays)."""
        async with db(request) as session:
            return {"deleted": await _service(request, session).delete(actor, exact_key(request, key), org_id)}


# Route handlers served under both /api and /api/sdk/v1 (SDK) unless the module says otherwise.
CONTROLLERS: list[ControllerRouterHandler] = [ConfigController]
