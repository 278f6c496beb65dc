"""A fake OAuth 2 provider on 127.0.0.1 for the integration tests.

Endpoints (each also under ``/<tenant>/...``, so ``{entity_id}`` in URLs can be checked):

* ``GET /authorize``: validates ``client_id``, ``redirect_uri``, ``response_type=code`` and an S256
  PKCE challenge, then redirects back with ``code`` and ``state`` (``auto_approve``) or shows a
  consent page with Allow / Deny buttons. ``authorize_error`` makes it redirect with ``error``.
* ``POST /token``: grants ``authorization_code`` (single-use code, redirect URI and PKCE verifier
  checked), ``refresh_token`` (revocable, rotated by default) and ``client_credentials``; client
  authentication by HTTP Basic or form fields. ``expires_in``, ``token_delay``, ``omit_fields``
  and ``fail_next`` (one canned error answer) configure what it answers.
* ``GET /api/me``: a protected resource that checks the bearer token (valid and not expired).

Every token request is recorded in :attr:`FakeOAuthProvider.token_requests`.
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
import secrets
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlencode, urlsplit


@dataclass
class TokenRequest:
    """One call of the token endpoint."""

    grant_type: str
    tenant: str | None
    form: dict[str, str]
    client_id: str | None
    status: int = 200
    response: dict[str, Any] = field(default_factory=dict)


@dataclass
class _Grant:
    client_id: str
    scope: str
    tenant: str | None
    redirect_uri: str = ""
    code_challenge: str = ""


@dataclass
class FakeOAuthProvider:
    """The provider; use as a context manager (starts and stops its HTTP server thread)."""

    client_id: str = "bifrost-client"
    client_secret: str = "provider-client-secret"
    expires_in: int | None = 3600
    rotate_refresh_tokens: bool = True
    issue_refresh_token: bool = True
    token_delay: float = 0.0
    auto_approve: bool = True
    authorize_error: str | None = None
    omit_fields: set[str] = field(default_factory=set)
    fail_next: list[tuple[int, dict[str, Any]]] = field(default_factory=list)
    token_requests: list[TokenRequest] = field(default_factory=list)
    authorize_requests: list[dict[str, str]] = field(default_factory=list)
    url: str = ""

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._codes: dict[str, _Grant] = {}
        self._refresh: dict[str, _Grant] = {}
        self._access: dict[str, tuple[float, _Grant]] = {}
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # ----- lifecycle ---------------------------------------------------------------------------------
    def __enter__(self) -> FakeOAuthProvider:
        provider = self

        class Handler(_Handler):
            fake = provider

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, name="fake-oauth", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._server:
            self._server.shutdown()
            self._server.server_close()

    # ----- test controls -----------------------------------------------------------------------------
    def count(self, grant_type: str, *, ok_only: bool = True) -> int:
        """How many token requests of ``grant_type`` were answered (successfully, by default)."""
        with self._lock:
            return sum(
                1 for r in self.token_requests if r.grant_type == grant_type and (r.status == 200 or not ok_only)
            )

    def counts(self) -> Counter[str]:
        """Successful token requests per grant type."""
        with self._lock:
            return Counter(r.grant_type for r in self.token_requests if r.status == 200)

    def last_access_token(self) -> str:
        """The access token of the latest successful token response."""
        with self._lock:
            return next(r.response["access_token"] for r in reversed(self.token_requests) if r.status == 200)

    def revoke_refresh_tokens(self) -> int:
        """Revoke every refresh token issued so far (the user withdrew consent); returns how many."""
        with self._lock:
            count = len(self._refresh)
            self._refresh.clear()
            return count

    def fail_once(self, status: int, body: dict[str, Any]) -> None:
        """Answer the next token request with ``status`` and ``body`` instead of a token."""
        with self._lock:
            self.fail_next.append((status, body))

    def access_token_valid(self, token: str) -> bool:
        """True when ``token`` was issued and has not expired."""
        with self._lock:
            entry = self._access.get(token)
            return entry is not None and entry[0] > time.time()

    # ----- protocol ----------------------------------------------------------------------------------
    def _issue(self, grant: _Grant, with_refresh: bool) -> dict[str, Any]:
        access = "at-" + secrets.token_urlsafe(24)
        expires = time.time() + (self.expires_in if self.expires_in is not None else 10 * 365 * 86400)
        self._access[access] = (expires, grant)
        body: dict[str, Any] = {"access_token": access, "token_type": "Bearer", "scope": grant.scope}
        if self.expires_in is not None:
            body["expires_in"] = self.expires_in
        if with_refresh and self.issue_refresh_token:
            refresh = "rt-" + secrets.token_urlsafe(24)
            self._refresh[refresh] = grant
            body["refresh_token"] = refresh
        for name in self.omit_fields:
            body.pop(name, None)
        return body

    def token(self, tenant: str | None, form: dict[str, str], authorization: str | None) -> tuple[int, dict[str, Any]]:
        """Answer one token request (called by the HTTP handler)."""
        if self.token_delay:
            time.sleep(self.token_delay)  # lets concurrent refreshes overlap, if the client sends several
        grant_type = form.get("grant_type", "")
        client_id, secret = form.get("client_id"), form.get("client_secret")
        if authorization and authorization.lower().startswith("basic "):
            decoded = base64.b64decode(authorization[6:]).decode()
            client_id, _, secret = decoded.partition(":")
            client_id, secret = unquote(client_id), unquote(secret)
        with self._lock:
            record = TokenRequest(grant_type, tenant, dict(form), client_id)
            self.token_requests.append(record)
            status, body = self._answer(grant_type, tenant, form, client_id, secret)
            record.status, record.response = status, body
            return status, body

    def _answer(
        self, grant_type: str, tenant: str | None, form: dict[str, str], client_id: str | None, secret: str | None
    ) -> tuple[int, dict[str, Any]]:
        if self.fail_next:
            return self.fail_next.pop(0)
        if client_id != self.client_id or (secret is not None and secret != self.client_secret):
            return 401, {"error": "invalid_client", "error_description": "unknown client or wrong secret"}
        if grant_type == "authorization_code":
            grant = self._codes.pop(form.get("code", ""), None)
            if grant is None:
                return 400, {"error": "invalid_grant", "error_description": "unknown or used code"}
            if form.get("redirect_uri") != grant.redirect_uri:
                return 400, {"error": "invalid_grant", "error_description": "redirect_uri mismatch"}
            verifier = form.get("code_verifier", "")
            challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
            if challenge != grant.code_challenge:
                return 400, {"error": "invalid_grant", "error_description": "PKCE verification failed"}
            if grant.tenant != tenant:
                return 400, {"error": "invalid_grant", "error_description": "code issued for another tenant"}
            return 200, self._issue(grant, with_refresh=True)
        if grant_type == "refresh_token":
            token = form.get("refresh_token", "")
            grant = self._refresh.get(token)
            if grant is None:
                return 400, {"error": "invalid_grant", "error_description": "refresh token revoked or unknown"}
            if self.rotate_refresh_tokens:
                del self._refresh[token]
            body = self._issue(grant, with_refresh=self.rotate_refresh_tokens)
            return 200, body
        if grant_type == "client_credentials":
            if secret is None:
                return 401, {"error": "invalid_client", "error_description": "client credentials need a secret"}
            return 200, self._issue(_Grant(client_id, form.get("scope", ""), tenant), with_refresh=False)
        return 400, {"error": "unsupported_grant_type"}

    def authorize(self, tenant: str | None, query: dict[str, str]) -> tuple[str | None, str | None]:
        """Check an authorize request: ``(error, None)`` or ``(None, redirect URL with code)``."""
        with self._lock:
            self.authorize_requests.append(dict(query))
        if query.get("client_id") != self.client_id:
            return "unknown client_id", None
        if query.get("response_type") != "code":
            return "response_type must be code", None
        if query.get("code_challenge_method") != "S256" or not query.get("code_challenge"):
            return "PKCE (S256) is required", None
        redirect_uri = query.get("redirect_uri", "")
        if not redirect_uri.startswith("http"):
            return "redirect_uri missing", None
        return None, redirect_uri

    def approve(self, tenant: str | None, query: dict[str, str]) -> str:
        """The redirect back to the client after consent (with a fresh code), or with the configured error."""
        redirect_uri = query["redirect_uri"]
        separator = "&" if "?" in redirect_uri else "?"
        if self.authorize_error:
            params = {
                "error": self.authorize_error,
                "error_description": "the user said no",
                "state": query.get("state", ""),
            }
            return redirect_uri + separator + urlencode(params)
        code = "code-" + secrets.token_urlsafe(16)
        with self._lock:
            self._codes[code] = _Grant(
                client_id=query["client_id"],
                scope=query.get("scope", ""),
                tenant=tenant,
                redirect_uri=redirect_uri,
                code_challenge=query.get("code_challenge", ""),
            )
        return redirect_uri + separator + urlencode({"code": code, "state": query.get("state", "")})

    def deny(self, query: dict[str, str]) -> str:
        """The redirect back after the user pressed Deny."""
        redirect_uri = query["redirect_uri"]
        separator = "&" if "?" in redirect_uri else "?"
        params = {
            "error": "access_denied",
            "error_description": "the user denied access",
            "state": query.get("state", ""),
        }
        return redirect_uri + separator + urlencode(params)


class _Handler(BaseHTTPRequestHandler):
    fake: FakeOAuthProvider

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    def _split(self) -> tuple[str | None, str, dict[str, str]]:
        parts = urlsplit(self.path)
        segments = [s for s in parts.path.split("/") if s]
        query = {k: v[0] for k, v in parse_qs(parts.query).items()}
        known = {"authorize", "token", "decision", "api", "me"}
        tenant = unquote(segments[0]) if segments and segments[0] not in known else None
        rest = "/" + "/".join(segments[1:] if tenant is not None else segments)
        return tenant, rest, query

    def _json(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(data)

    def _redirect(self, location: str) -> None:
        self.send_response(302)
        self.send_header("Location", location)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def _html(self, status: int, body: str) -> None:
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        tenant, path, query = self._split()
        if self.path == "/favicon.ico":  # browsers ask; a 404 would show up as a console error
            self.send_response(204)
            self.end_headers()
        elif path == "/authorize":
            error, _ = self.fake.authorize(tenant, query)
            if error:
                self._html(400, f"<h1>Bad authorization request</h1><p>{html.escape(error)}</p>")
            elif self.fake.auto_approve:
                self._redirect(self.fake.approve(tenant, query))
            else:
                hidden = "".join(
                    f'<input type="hidden" name="{html.escape(k)}" value="{html.escape(v)}">' for k, v in query.items()
                )
                action = f"/{tenant}/decision" if tenant else "/decision"
                self._html(
                    200,
                    "<!doctype html><title>Fake provider</title><h1>Fake provider</h1>"
                    f"<p>Allow Bifrost to access {html.escape(query.get('scope', ''))}?</p>"
                    f'<form method="get" action="{action}">{hidden}'
                    '<button name="decision" value="allow">Allow</button>'
                    '<button name="decision" value="deny">Deny</button></form>',
                )
        elif path == "/decision":
            decision = query.pop("decision", "")
            self._redirect(self.fake.approve(tenant, query) if decision == "allow" else self.fake.deny(query))
        elif path == "/api/me":
            header = self.headers.get("Authorization", "")
            token = header[7:] if header.lower().startswith("bearer ") else ""
            if self.fake.access_token_valid(token):
                self._json(200, {"ok": True, "tenant": tenant})
            else:
                self._json(401, {"error": "invalid_token"})
        else:
            self._json(404, {"error": "not_found"})

    def do_POST(self) -> None:
        tenant, path, _ = self._split()
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length).decode() if length else ""
        form = {k: v[0] for k, v in parse_qs(raw).items()}
        if path == "/token":
            status, body = self.fake.token(tenant, form, self.headers.get("Authorization"))
            self._json(status, body)
        else:
            self._json(404, {"error": "not_found"})
