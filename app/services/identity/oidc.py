"""OpenID Connect, the relying party's side: discovery, the authorization URL, the code exchange, ID tokens.

* Discovery (``<issuer>/.well-known/openid-configuration``) and the provider's keys (``jwks_uri``) are
  fetched over HTTP and cached for :data:`CACHE_SECONDS`; an ID token signed with a key id the cache
  does not know refetches the keys once (the provider rotated them).
* The authorization URL and the code exchange use authlib's ``AsyncOAuth2Client`` (authorization code
  with an S256 PKCE challenge), like the integrations' OAuth client.
* The ID token is verified with joserfc (authlib's successor library for JOSE, already its dependency):
  the signature against the provider's JWKS with an asymmetric algorithm only (never ``none`` or an
  HMAC keyed with public data), then ``iss``, ``aud`` (and ``azp`` when there are several audiences),
  ``exp``, ``iat`` and ``nbf`` with :data:`CLOCK_SKEW_SECONDS` of tolerance, ``nonce`` and ``sub``.

Every failure is an :class:`OidcError` whose text says what was wrong, safe to show on the login page.
"""

from __future__ import annotations

import functools
import time
from dataclasses import dataclass
from types import ModuleType
from typing import TYPE_CHECKING, Any

from app.services.errors import AuthenticationError

if TYPE_CHECKING:
    from authlib.integrations.httpx_client import AsyncOAuth2Client
    from joserfc.jwk import KeySet

# httpx, authlib and joserfc (~0.2 s together) are imported by the functions that talk to a provider,
# not here: every process start imports this module through the login pages, few sign in with SSO.

CACHE_SECONDS = 3600.0
CLOCK_SKEW_SECONDS = 120
TIMEOUT_SECONDS = 15.0
# Asymmetric algorithms only: a token "signed" with none or with HS256 keyed by public data proves nothing.
ALGORITHMS = ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"]

_discovery: dict[str, tuple[float, dict[str, Any]]] = {}
_keys: dict[str, tuple[float, KeySet]] = {}


class OidcError(AuthenticationError):
    """Single sign-on failed; ``str()`` names the problem (shown on the login page, recorded in the audit log)."""


@dataclass(frozen=True)
class OidcClient:
    """This platform as a client of one provider."""

    issuer: str
    client_id: str
    client_secret: str | None
    scopes: str


def discovery_url(issuer: str) -> str:
    """The provider's discovery document URL (OpenID Connect Discovery 1.0, section 4)."""
    return issuer.rstrip("/") + "/.well-known/openid-configuration"


@functools.cache
def authlib_http_module() -> ModuleType:
    """The HTTP library under authlib's httpx integration: httpx2 when it is installed, else httpx.

    Imported on first use (authlib, joserfc and httpx are ~0.15 s that a process start does without); the
    OAuth client of integrations uses it too.
    """
    try:
        import httpx2  # type: ignore[import-not-found,unused-ignore]
    except ImportError:  # pragma: no cover - depends on the environment
        import httpx

        return httpx
    return httpx2  # type: ignore[no-any-return,unused-ignore]


async def _get_json(url: str, what: str) -> dict[str, Any]:
    import httpx

    try:
        async with httpx.AsyncClient(timeout=TIMEOUT_SECONDS, follow_redirects=False) as client:
            response = await client.get(url, headers={"Accept": "application/json"})
    except httpx.HTTPError as exc:
        raise OidcError(f"Cannot reach the identity provider's {what} at {url}: {exc.__class__.__name__}.") from None
    if response.status_code != 200:
        raise OidcError(f"The identity provider's {what} at {url} answered HTTP {response.status_code}.")
    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        raise OidcError(f"The identity provider's {what} at {url} is not a JSON object.")
    return body


async def discover(issuer: str, *, refresh: bool = False) -> dict[str, Any]:
    """The provider's metadata, checked: its ``issuer`` is ours, the endpoints we need are there.

    Raises:
        OidcError: Unreachable, not JSON, another issuer, or an endpoint missing.
    """
    issuer = issuer.rstrip("/")
    cached = _discovery.get(issuer)
    if cached and not refresh and cached[0] > time.monotonic():
        return cached[1]
    meta = await _get_json(discovery_url(issuer), "discovery document")
    if str(meta.get("issuer", "")).rstrip("/") != issuer:
        raise OidcError(f"The discovery document names issuer {meta.get('issuer')!r}, not {issuer!r}.")
    missing = [k for k in ("authorization_endpoint", "token_endpoint", "jwks_uri") if not meta.get(k)]
    if missing:
        raise OidcError(f"The provider's discovery document lacks {', '.join(missing)}.")
    _discovery[issuer] = (time.monotonic() + CACHE_SECONDS, meta)
    return meta


async def _key_set(jwks_uri: str, *, refresh: bool) -> KeySet:
    from joserfc.errors import JoseError
    from joserfc.jwk import KeySet

    cached = _keys.get(jwks_uri)
    if cached and not refresh and cached[0] > time.monotonic():
        return cached[1]
    body = await _get_json(jwks_uri, "signing keys (JWKS)")
    try:
        keys = KeySet.import_key_set(body)  # type: ignore[arg-type]
    except (JoseError, ValueError, TypeError, KeyError) as exc:
        raise OidcError(f"The provider's signing keys (JWKS) cannot be read: {exc}.") from None
    _keys[jwks_uri] = (time.monotonic() + CACHE_SECONDS, keys)
    return keys


def forget_cache() -> None:
    """Drop cached discovery documents and keys (tests; a provider whose settings changed)."""
    _discovery.clear()
    _keys.clear()


def _oauth(client: OidcClient, redirect_uri: str) -> AsyncOAuth2Client:
    from authlib.integrations.httpx_client import AsyncOAuth2Client

    return AsyncOAuth2Client(
        client_id=client.client_id,
        client_secret=client.client_secret,
        token_endpoint_auth_method="client_secret_post" if client.client_secret else "none",
        scope=client.scopes,
        redirect_uri=redirect_uri,
        code_challenge_method="S256",
        timeout=TIMEOUT_SECONDS,
        follow_redirects=False,
    )


def authorization_url(
    meta: dict[str, Any], client: OidcClient, redirect_uri: str, state: str, nonce: str, code_verifier: str
) -> str:
    """The provider URL the browser goes to: ``response_type=code``, state, nonce, S256 PKCE challenge."""
    oauth = _oauth(client, redirect_uri)
    url, _ = oauth.create_authorization_url(
        meta["authorization_endpoint"], state=state, nonce=nonce, code_verifier=code_verifier
    )
    return str(url)


async def exchange_code(
    meta: dict[str, Any], client: OidcClient, code: str, redirect_uri: str, code_verifier: str
) -> str:
    """Trade the authorization code (and its PKCE verifier) for tokens; returns the ID token.

    Raises:
        OidcError: The provider refused or failed, or sent no ID token.
    """
    from authlib.integrations.httpx_client import OAuthError

    _http = authlib_http_module()
    try:
        async with _oauth(client, redirect_uri) as oauth:
            token = await oauth.fetch_token(
                meta["token_endpoint"],
                grant_type="authorization_code",
                code=code,
                code_verifier=code_verifier,
                redirect_uri=redirect_uri,
            )
    except OAuthError as exc:
        detail = f" ({exc.description})" if exc.description else ""
        raise OidcError(f"The identity provider refused the sign-in: {exc.error}{detail}.") from None
    except _http.HTTPStatusError as exc:
        raise OidcError(f"The identity provider's token endpoint answered HTTP {exc.response.status_code}.") from None
    except _http.HTTPError as exc:
        raise OidcError(f"Cannot reach the identity provider's token endpoint: {exc.__class__.__name__}.") from None
    except ValueError:
        raise OidcError("The identity provider's token response is not JSON.") from None
    id_token = dict(token).get("id_token")
    if not isinstance(id_token, str) or not id_token:
        raise OidcError("The identity provider sent no ID token (is the 'openid' scope requested?).")
    return id_token


async def verify_id_token(meta: dict[str, Any], client: OidcClient, id_token: str, nonce: str) -> dict[str, Any]:
    """Verify the ID token's signature and claims (see the module docstring); returns its claims.

    Raises:
        OidcError: Bad signature, unknown key, wrong issuer or audience, expired, issued in the future,
            a nonce that is not this sign-in's, no subject.
    """
    from joserfc import jwt
    from joserfc.errors import (
        BadSignatureError,
        ExpiredTokenError,
        InvalidClaimError,
        InvalidKeyIdError,
        JoseError,
        MissingClaimError,
    )

    try:
        token = jwt.decode(id_token, await _key_set(meta["jwks_uri"], refresh=False), algorithms=ALGORITHMS)
    except InvalidKeyIdError:
        # Keys rotate: fetch them again once before refusing a key id we have not seen.
        try:
            token = jwt.decode(id_token, await _key_set(meta["jwks_uri"], refresh=True), algorithms=ALGORITHMS)
        except JoseError as exc:
            raise OidcError(f"The ID token is signed with a key the provider does not publish ({exc.error}).") from None
    except BadSignatureError:
        raise OidcError("The ID token's signature is not valid for the provider's keys.") from None
    except (JoseError, ValueError) as exc:
        raise OidcError(f"The ID token cannot be read: {getattr(exc, 'error', exc)}.") from None
    claims = dict(token.claims)
    registry = jwt.JWTClaimsRegistry(
        leeway=CLOCK_SKEW_SECONDS,
        iss={"essential": True, "value": meta["issuer"]},
        aud={"essential": True, "value": client.client_id},
        exp={"essential": True},
        iat={"essential": True},
        sub={"essential": True},
        nonce={"essential": True, "value": nonce},
    )
    try:
        registry.validate(claims)
    except ExpiredTokenError:
        raise OidcError("The ID token has expired (check the server's clock if this repeats).") from None
    except MissingClaimError as exc:
        raise OidcError(f"The ID token lacks a required claim: {exc.description}.") from None
    except InvalidClaimError as exc:
        raise OidcError(f"The ID token was not issued for this sign-in: {exc.description}.") from None
    except JoseError as exc:
        raise OidcError(f"The ID token was refused: {exc.description or exc.error}.") from None
    audience = claims.get("aud")
    if isinstance(audience, list) and len(audience) > 1 and claims.get("azp") != client.client_id:
        raise OidcError("The ID token names several audiences and its authorized party is not this client.")
    if not isinstance(claims.get("sub"), str) or not claims["sub"]:
        raise OidcError("The ID token has no subject.")
    return claims
