"""Request guards that run before any handler or other middleware reads a request.

Two ASGI middlewares, outermost first in the app's middleware list, and one response hook:

* :class:`BodyLimitMiddleware` (its check: :func:`limited_receive`): every request body has a limit, chosen by route (forms, uploads,
  file content, endpoints, the rest of the API), enforced on ``Content-Length`` before a byte is
  read and on the bytes actually received (chunked bodies). Over the limit is ``413``. It runs
  before the CSRF middleware, which otherwise reads a whole form body into memory first.
* :class:`CrossSiteGuardMiddleware`: the JSON API accepts only ``application/json`` bodies (a
  ``text/plain`` POST is a "simple" cross-site request a browser sends without asking), and a
  state-changing request whose ``Origin`` names another site is refused unless it carries an API
  key. Together they close login CSRF and every other cookie-authenticated cross-site write.
* :class:`GuardMiddleware`: both checks above in one layer, in front of the browser-only layers
  (the sign-in rate limiter and the session cookie). A call to the JSON API that carries an API key
  or SDK token (``Authorization: Bearer``, ``X-Bifrost-Key``) skips those layers: it is
  authenticated by its key alone (``resolve_actor`` never reads the cookie when a key is sent), so it
  cannot ride a victim's cookie, and it never reaches a throttled sign-in path (the caller decides which
  paths may take the short way). Body limit, cross-site check, authentication and security headers
  stay on every request.
* :func:`security_headers`: a ``before_send`` hook adding Content-Security-Policy and the other
  response headers every page should carry (see ``docs/security.md``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from litestar.exceptions import HTTPException
from litestar.types import ASGIApp, Message, Receive, ReceiveMessage, Scope, Send

from app.services.errors import whole_number
from app.settings import Settings

UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
# Room for a form's other fields and multipart framing next to its largest allowed file.
FORM_OVERHEAD_BYTES = 1024 * 1024

# Routes whose body is not JSON by design: raw file bytes, streamed uploads, workflow endpoints
# (which accept forms and query strings and answer 415 themselves).
_NON_JSON_API = re.compile(r"^/api/(sdk/v1/)?(files/content|knowledge/uploads)$|^/api/endpoints/")
_FILE_CONTENT = re.compile(r"^/api/(sdk/v1/)?files/content$")
_KNOWLEDGE_UPLOAD = re.compile(r"^(/api/(sdk/v1/)?knowledge/uploads|/knowledge/upload)$")
_PUBLIC_FORM_RUN = re.compile(r"^/public/forms/[^/]+/run$")
_FORM_RUN = re.compile(r"^(/forms/[^/]+/run|/files/upload)$")  # forms with file fields, the Files page upload


class BodyTooLarge(HTTPException):
    """413: the request body is over the route's limit (the message names the limit and the setting)."""

    status_code = 413


class UnsupportedMediaType(HTTPException):
    """415: the JSON API was sent a body that is not JSON."""

    status_code = 415


class CrossSiteRequest(HTTPException):
    """403: a state-changing request from another site."""

    status_code = 403


@dataclass(frozen=True)
class BodyLimits:
    """The byte limits by kind of route, read from settings once."""

    api: int
    form: int
    public_form: int
    upload: int
    file_content: int
    knowledge_upload: int
    endpoint: int

    @classmethod
    def from_settings(cls, settings: Settings) -> BodyLimits:
        """Limits from ``BIFROST_*`` settings (see docs/security.md)."""
        return cls(
            api=settings.max_body_bytes,
            form=settings.form_max_body_bytes,
            public_form=settings.public_form_max_body_bytes,
            upload=settings.max_file_bytes,
            file_content=settings.max_file_bytes,
            knowledge_upload=settings.knowledge_max_upload_bytes,
            endpoint=settings.endpoint_max_body_bytes,
        )

    def for_request(self, path: str, content_type: str) -> tuple[int, str]:
        """The limit of one request and the setting that raises it."""
        if _FILE_CONTENT.match(path):
            return self.file_content, "BIFROST_MAX_FILE_BYTES"
        if _KNOWLEDGE_UPLOAD.match(path):
            return self.knowledge_upload, "BIFROST_KNOWLEDGE_MAX_UPLOAD_BYTES"
        if path.startswith("/api/endpoints/"):
            return self.endpoint, "BIFROST_ENDPOINT_MAX_BODY_BYTES"
        if _PUBLIC_FORM_RUN.match(path):
            return self.public_form, "BIFROST_PUBLIC_FORM_MAX_BODY_BYTES"
        if _FORM_RUN.match(path) and content_type.startswith("multipart/form-data"):
            # A signed-in user's form with file fields: uploads are spooled to disk while parsed.
            return self.upload + FORM_OVERHEAD_BYTES, "BIFROST_MAX_FILE_BYTES"
        if path.startswith("/api/") or path == "/mcp":  # /mcp: JSON-RPC messages (docs/mcp.md)
            return self.api, "BIFROST_MAX_BODY_BYTES"
        return self.form, "BIFROST_FORM_MAX_BODY_BYTES"


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key == name:
            return value.decode("latin-1")
    return None


def _too_large(limit: int, setting: str) -> BodyTooLarge:
    return BodyTooLarge(
        detail=f"Request body too large: the limit of this route is {limit} bytes ({setting}).",
    )


class BodyLimitMiddleware:
    """413 for a body over its route's limit, before anything reads it (see module docstring)."""

    def __init__(self, app: ASGIApp, limits: BodyLimits) -> None:
        self.app = app
        self.limits = limits

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS"):  # type: ignore[typeddict-item]
            await self.app(scope, receive, send)
            return
        await self.app(scope, limited_receive(self.limits, scope, receive), send)


def limited_receive(limits: BodyLimits, scope: Scope, receive: Receive) -> Receive:
    """``receive`` counting the body against the route's limit; 413 at once on a ``Content-Length`` over it."""
    limit, setting = limits.for_request(scope["path"], _header(scope, b"content-type") or "")
    declared = _header(scope, b"content-length")
    if declared is not None:
        if whole_number(declared) is None:
            raise HTTPException(status_code=400, detail="Content-Length must be a number of bytes.")
        if int(declared) > limit:
            raise _too_large(limit, setting)
    received = 0

    async def limited() -> ReceiveMessage:
        nonlocal received
        message = await receive()
        if message["type"] == "http.request":
            received += len(message.get("body", b""))  # type: ignore[arg-type]
            if received > limit:
                raise _too_large(limit, setting)
        return message

    return limited


def _same_site_origins(settings: Settings) -> Callable[[Scope], set[str]]:
    public = urlsplit(settings.resolved_public_url)
    configured = {f"{public.scheme}://{public.netloc}".lower()}

    def origins(scope: Scope) -> set[str]:
        host = (_header(scope, b"host") or "").lower()
        # Behind a TLS-terminating proxy the scheme we see is http: accept either for our own host.
        return configured | {f"http://{host}", f"https://{host}"}

    return origins


class CrossSiteGuardMiddleware:
    """JSON-only API bodies and an ``Origin`` check on state-changing requests (see module docstring)."""

    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.origins = _same_site_origins(settings)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] in UNSAFE_METHODS:  # type: ignore[typeddict-item]
            self._check(scope)
        await self.app(scope, receive, send)

    def _check(self, scope: Scope) -> None:
        has_key = _header(scope, b"authorization") is not None or _header(scope, b"x-bifrost-key") is not None
        origin = _header(scope, b"origin")
        if origin is not None and not has_key and origin.lower() not in self.origins(scope):
            # Browsers send Origin on every cross-site POST; "null" (sandboxed frames, file:) is refused too.
            raise CrossSiteRequest(detail=f"Cross-site request refused: Origin {origin!r} is not this server.")
        path = scope["path"]
        if not path.startswith("/api/") or _NON_JSON_API.match(path):
            return
        has_body = _header(scope, b"content-length") not in (None, "0") or _header(scope, b"transfer-encoding")
        if not has_body:
            return
        media_type = (_header(scope, b"content-type") or "").split(";", 1)[0].strip().lower()
        if media_type != "application/json" and not media_type.endswith("+json"):
            raise UnsupportedMediaType(
                detail=f"The JSON API accepts only 'Content-Type: application/json' bodies (got {media_type or 'none'!r}).",
            )


def content_security_policy(path: str) -> str:
    """The CSP of a response: strict for our pages; the API reference (Redoc) needs inline styles and workers.

    No ``form-action``: Chromium applies it to the redirect after a form post, and connecting an
    integration posts a form that redirects to the OAuth provider's consent page.
    """
    common = (
        "default-src 'self'; img-src 'self' data:; connect-src 'self'; object-src 'none'; "
        "base-uri 'self'; frame-ancestors 'none'"
    )
    if path == "/schema" or path.startswith("/schema/"):
        return f"{common}; script-src 'self'; style-src 'self' 'unsafe-inline'; worker-src 'self' blob:; font-src 'self' data:"
    return f"{common}; script-src 'self'; style-src 'self'; font-src 'self'"


def security_headers(settings: Settings) -> Callable[[Message, Scope], Any]:
    """A ``before_send`` hook adding CSP, ``X-Content-Type-Options``, ``Referrer-Policy``,
    ``X-Frame-Options`` and HSTS (when the public URL is https) to every response.

    A hook rather than a middleware: it also sees error responses built by the app's exception
    handlers and 404s of unknown paths, which route middleware never wraps.
    """
    hsts = settings.resolved_public_url.startswith("https://")
    fixed: list[tuple[bytes, bytes]] = [
        (b"x-content-type-options", b"nosniff"),
        (b"referrer-policy", b"same-origin"),
        (b"x-frame-options", b"DENY"),
    ]
    if hsts:
        fixed.append((b"strict-transport-security", b"max-age=31536000; includeSubDomains"))

    async def before_send(message: Message, scope: Scope) -> None:
        if message["type"] != "http.response.start":
            return
        headers = list(message.get("headers", []))
        present = {key.lower() for key, _ in headers}
        extra = [(b"content-security-policy", content_security_policy(scope["path"]).encode()), *fixed]
        message["headers"] = headers + [h for h in extra if h[0] not in present]

    return before_send


def carries_key(scope: Scope) -> bool:
    """Whether the request sends an API key or SDK token, by the rule of ``app.web.deps.bearer_token``."""
    for key, value in scope["headers"]:
        if key == b"authorization":
            if value[:7].lower() == b"bearer " and value[7:].strip():
                return True
            break  # the first Authorization header is the one read; not a bearer: X-Bifrost-Key decides
    return bool(_header(scope, b"x-bifrost-key"))


class GuardMiddleware:
    """Body limit and cross-site check, then the browser layers, or straight on for an API key's call.

    Args:
        app: The next ASGI app (the route).
        limits: The body limits.
        settings: For the cross-site check's own origins.
        browser_layers: Middleware factories (outermost first) only cookie-carrying browsers need:
            the sign-in rate limiter, the session cookie.
        key_fast_path: Paths on which a request carrying a key may skip ``browser_layers`` (the JSON
            API but not its sign-in routes); false for every other path.
    """

    def __init__(
        self,
        app: ASGIApp,
        limits: BodyLimits,
        settings: Settings,
        browser_layers: Sequence[Callable[[ASGIApp], ASGIApp]] = (),
        key_fast_path: Callable[[str], bool] = lambda path: False,
    ) -> None:
        self.app = app
        self.limits = limits
        self.cross_site = CrossSiteGuardMiddleware(app, settings)
        browser = app
        for layer in reversed(browser_layers):
            browser = layer(browser)
        self.browser = browser
        self.key_fast_path = key_fast_path

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.browser(scope, receive, send)
            return
        if scope["method"] in UNSAFE_METHODS:  # type: ignore[typeddict-item]
            receive = limited_receive(self.limits, scope, receive)
            self.cross_site._check(scope)
        elif scope["method"] not in ("GET", "HEAD", "OPTIONS"):  # type: ignore[typeddict-item]
            receive = limited_receive(self.limits, scope, receive)
        if self.key_fast_path(scope["path"]) and carries_key(scope):
            await self.app(scope, receive, send)
        else:
            await self.browser(scope, receive, send)


def guard_middleware(
    settings: Settings,
    browser_layers: Sequence[Callable[[ASGIApp], ASGIApp]] = (),
    key_fast_path: Callable[[str], bool] = lambda path: False,
) -> list[Any]:
    """The guards and the browser-only layers behind them, as Litestar middleware entries."""
    from litestar.middleware import DefineMiddleware

    return [
        DefineMiddleware(
            GuardMiddleware,
            limits=BodyLimits.from_settings(settings),
            settings=settings,
            browser_layers=list(browser_layers),
            key_fast_path=key_fast_path,
        )
    ]
