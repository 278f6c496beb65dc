"""Talking to OAuth 2 providers, through authlib's ``AsyncOAuth2Client``.

Three grants: authorization code with PKCE (S256), client credentials, and refresh token.
Every token response is checked before anything is stored: a response without
``access_token`` or ``token_type``, or with a malformed ``expires_in``, is refused with a
message naming the problem. Errors the provider answers (``{"error": ...}``), HTTP failures and
unreachable providers all become :class:`OAuthFlowError`, whose ``permanent`` flag says whether
trying again later can help (``invalid_grant`` after a revoked refresh token cannot).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from app.models.base import utcnow
from app.services.errors import DomainError
from app.services.identity.oidc import authlib_http_module

if TYPE_CHECKING:
    from authlib.integrations.httpx_client import AsyncOAuth2Client

# authlib (with joserfc and its HTTP client, ~0.15 s) is imported by the functions that call a
# provider, not here: every process start imports this module through the token store, few talk OAuth.

FLOW_NONE = "none"
FLOW_AUTHORIZATION_CODE = "authorization_code"
FLOW_CLIENT_CREDENTIALS = "client_credentials"
FLOWS = (FLOW_NONE, FLOW_AUTHORIZATION_CODE, FLOW_CLIENT_CREDENTIALS)
AUTH_METHODS = ("client_secret_basic", "client_secret_post", "none")
# Provider answers that mean "these credentials will never work again": reconnect, do not retry.
PERMANENT_ERRORS = frozenset({"invalid_grant", "invalid_client", "unauthorized_client", "unsupported_grant_type"})
MAX_PROVIDER_TEXT = 300


class OAuthFlowError(DomainError):
    """An OAuth exchange with the provider failed; ``str()`` says why in words a person can act on.

    Attributes:
        error_code: The provider's ``error`` value, when it sent one.
        permanent: True when retrying cannot help (revoked grant, wrong client credentials,
            a response without the expected fields).
    """

    def __init__(self, message: str, *, error_code: str | None = None, permanent: bool = False) -> None:
        super().__init__(message)
        self.error_code = error_code
        self.permanent = permanent


@dataclass(frozen=True)
class ProviderSettings:
    """What is needed to reach one provider for one organization.

    Attributes:
        token_url: Token endpoint with ``{entity_id}`` already filled in.
        authorization_url: Authorization endpoint (``{entity_id}`` filled), for the code flow.
        client_id: OAuth client id.
        client_secret: Plaintext client secret (None for a public client).
        auth_method: ``client_secret_basic``, ``client_secret_post`` or ``none``.
        scopes: Scopes to request.
        timeout: Seconds each call may take.
    """

    token_url: str
    authorization_url: str | None
    client_id: str
    client_secret: str | None
    auth_method: str
    scopes: list[str] = field(default_factory=list)
    timeout: float = 30.0


@dataclass(frozen=True)
class TokenSet:
    """A checked token response."""

    access_token: str
    refresh_token: str | None
    token_type: str
    expires_at: datetime | None
    scopes: list[str]


def fill_entity(url: str, entity_id: str | None, what: str) -> str:
    """``url`` with ``{entity_id}`` replaced by the (percent-encoded) entity id.

    Raises:
        OAuthFlowError: The URL needs an entity id and the mapping has none.
    """
    if "{entity_id}" not in url:
        return url
    if not entity_id:
        raise OAuthFlowError(
            f"The {what} contains {{entity_id}} but this organization's mapping has no entity id: set it first.",
            permanent=True,
        )
    return url.replace("{entity_id}", quote(entity_id, safe=""))


def new_code_verifier() -> str:
    """A PKCE code verifier: 64 url-safe characters (RFC 7636 allows 43 to 128)."""
    return secrets.token_urlsafe(48)


def new_state() -> str:
    """An unguessable ``state`` value for one authorization request."""
    return secrets.token_urlsafe(32)


def _client(settings: ProviderSettings, redirect_uri: str | None = None) -> AsyncOAuth2Client:
    from authlib.integrations.httpx_client import AsyncOAuth2Client

    return AsyncOAuth2Client(
        client_id=settings.client_id,
        client_secret=settings.client_secret,
        token_endpoint_auth_method=settings.auth_method,
        scope=" ".join(settings.scopes) or None,
        redirect_uri=redirect_uri,
        code_challenge_method="S256",
        timeout=settings.timeout,
        follow_redirects=False,
    )


def authorization_url(settings: ProviderSettings, redirect_uri: str, state: str, code_verifier: str) -> str:
    """The provider URL the browser is sent to (``response_type=code``, ``state``, S256 PKCE challenge)."""
    if not settings.authorization_url:
        raise OAuthFlowError("The integration has no authorization URL.", permanent=True)
    client = _client(settings, redirect_uri)
    url, _ = client.create_authorization_url(settings.authorization_url, state=state, code_verifier=code_verifier)
    return str(url)


async def exchange_code(settings: ProviderSettings, code: str, redirect_uri: str, code_verifier: str) -> TokenSet:
    """Trade an authorization code (and its PKCE verifier) for tokens.

    Raises:
        OAuthFlowError: The provider refused, failed or answered without the expected fields.
    """
    async with _client(settings, redirect_uri) as client:
        token = await _call(
            settings,
            client.fetch_token(
                settings.token_url,
                grant_type="authorization_code",
                code=code,
                code_verifier=code_verifier,
                redirect_uri=redirect_uri,
            ),
        )
    return check_token_response(token, settings.scopes)


async def client_credentials(settings: ProviderSettings) -> TokenSet:
    """Get a token for the client itself (no user, no refresh token).

    Raises:
        OAuthFlowError: The provider refused, failed or answered without the expected fields.
    """
    async with _client(settings) as client:
        token = await _call(settings, client.fetch_token(settings.token_url, grant_type="client_credentials"))
    return check_token_response(token, settings.scopes)


async def refresh(settings: ProviderSettings, refresh_token: str) -> TokenSet:
    """Trade a refresh token for a new access token (the old refresh token stays when none is sent back).

    Raises:
        OAuthFlowError: The provider refused (``invalid_grant`` for a revoked token: permanent),
            failed, or answered without the expected fields.
    """
    async with _client(settings) as client:
        token = await _call(settings, client.refresh_token(settings.token_url, refresh_token=refresh_token))
    checked = check_token_response(token, settings.scopes)
    if checked.refresh_token is None:
        return TokenSet(checked.access_token, refresh_token, checked.token_type, checked.expires_at, checked.scopes)
    return checked


async def _call(settings: ProviderSettings, pending: Any) -> dict[str, Any]:
    """Await an authlib token request and turn every way it can fail into :class:`OAuthFlowError`."""
    from authlib.integrations.httpx_client import OAuthError

    _http = authlib_http_module()
    try:
        token = await pending
    except OAuthError as exc:
        code = str(exc.error or "error")
        detail = _short(exc.description)
        message = f"The provider refused the request: {code}" + (f" ({detail})" if detail else "")
        raise OAuthFlowError(message + ".", error_code=code, permanent=code in PERMANENT_ERRORS) from None
    except _http.HTTPStatusError as exc:
        status = exc.response.status_code
        raise OAuthFlowError(
            f"The provider's token URL answered HTTP {status} without an OAuth error.", permanent=status < 500
        ) from None
    except _http.HTTPError as exc:
        raise OAuthFlowError(f"Cannot reach the provider's token URL {settings.token_url}: {_short(exc)}.") from None
    except ValueError as exc:  # not a JSON object, or expires_in that is not a number
        raise OAuthFlowError(f"The provider's token response is malformed: {_short(exc)}.", permanent=True) from None
    return dict(token)


def check_token_response(token: dict[str, Any], requested_scopes: list[str]) -> TokenSet:
    """Validate a token response (RFC 6749 section 5.1) and normalise it.

    Raises:
        OAuthFlowError: ``access_token`` or ``token_type`` missing or not text, or ``expires_in``
            not a positive number.
    """
    missing = [
        name for name in ("access_token", "token_type") if not isinstance(token.get(name), str) or not token[name]
    ]
    if missing:
        raise OAuthFlowError(
            f"The provider's token response lacks {' and '.join(missing)}: nothing was stored.", permanent=True
        )
    expires_at = None
    expires_in = token.get("expires_in")
    if expires_in is not None:
        try:
            seconds = float(expires_in)
        except (TypeError, ValueError):
            seconds = -1.0
        if not seconds >= 0:
            raise OAuthFlowError(
                f"The provider's token response has an invalid expires_in ({_short(expires_in)}): nothing was stored.",
                permanent=True,
            )
        expires_at = utcnow() + timedelta(seconds=seconds)
    refresh_token = token.get("refresh_token")
    if refresh_token is not None and (not isinstance(refresh_token, str) or not refresh_token):
        raise OAuthFlowError("The provider's token response has an invalid refresh_token.", permanent=True)
    scope = token.get("scope")
    # RFC 6749: an omitted scope means the scopes requested were granted.
    scopes = scope.split() if isinstance(scope, str) else list(requested_scopes)
    return TokenSet(token["access_token"], refresh_token, token["token_type"], expires_at, scopes)


def _short(value: Any) -> str:
    text = str(value or "").strip().replace("\n", " ")
    return text if len(text) <= MAX_PROVIDER_TEXT else text[:MAX_PROVIDER_TEXT] + "…"
