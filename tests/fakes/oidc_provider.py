"""A fake OpenID Connect provider on 127.0.0.1 for the single sign-on tests.

* ``GET /.well-known/openid-configuration``: discovery (issuer = the server's URL).
* ``GET /jwks``: the public half of a test RSA key (``kid`` ``test-key``).
* ``GET /authorize``: checks ``client_id``, ``redirect_uri``, ``response_type=code``, ``scope`` with
  ``openid``, ``state``, ``nonce`` and an S256 PKCE challenge. With :attr:`FakeOidcProvider.sign_in_as`
  set it redirects back at once with a code for that user; otherwise it shows a sign-in page (an email
  field and a button) as a browser would see it.
* ``POST /token``: single-use codes; client secret (HTTP Basic or form), redirect URI and PKCE verifier
  checked; answers an ID token signed with the test key.

What the ID token says can be bent per test: :attr:`audience`, :attr:`expires_in`, :attr:`issued_at_offset`,
:attr:`sign_with_wrong_key` (same ``kid``, another key: a bad signature), :attr:`extra_claims`.
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
import secrets
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlencode, urlsplit

from joserfc import jwt
from joserfc.jwk import KeySet, RSAKey

KID = "test-key"


@dataclass
class Person:
    """Someone with an account at the provider."""

    email: str
    name: str = "Test Person"
    sub: str = field(default_factory=lambda: "sub-" + secrets.token_hex(8))
    email_verified: bool = True


@dataclass
class _Grant:
    person: Person
    redirect_uri: str
    code_challenge: str
    nonce: str


@dataclass
class FakeOidcProvider:
    """The provider; use as a context manager (starts and stops its HTTP server thread)."""

    client_id: str = "bifrost-sso"
    client_secret: str = "sso-client-secret"
    sign_in_as: Person | None = None
    audience: str | None = None
    expires_in: int = 300
    issued_at_offset: int = 0
    sign_with_wrong_key: bool = False
    extra_claims: dict[str, Any] = field(default_factory=dict)
    people: dict[str, Person] = field(default_factory=dict)
    authorize_requests: list[dict[str, str]] = field(default_factory=list)
    token_requests: list[dict[str, str]] = field(default_factory=list)
    url: str = ""

    def __post_init__(self) -> None:
        self.key = RSAKey.generate_key(2048, parameters={"kid": KID, "alg": "RS256", "use": "sig"})
        self.wrong_key = RSAKey.generate_key(2048, parameters={"kid": KID, "alg": "RS256", "use": "sig"})
        self._codes: dict[str, _Grant] = {}
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    def __enter__(self) -> FakeOidcProvider:
        provider = self

        class Handler(_Handler):
            fake = provider

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        threading.Thread(target=self._server.serve_forever, name="fake-oidc", daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._server:
            self._server.shutdown()
            self._server.server_close()

    def person(self, email: str, **fields: Any) -> Person:
        """The provider's account for ``email`` (created on first use)."""
        with self._lock:
            if email not in self.people:
                self.people[email] = Person(email=email, **fields)
            return self.people[email]

    # ----- protocol ----------------------------------------------------------------------------------
    def discovery(self) -> dict[str, Any]:
        return {
            "issuer": self.url,
            "authorization_endpoint": f"{self.url}/authorize",
            "token_endpoint": f"{self.url}/token",
            "jwks_uri": f"{self.url}/jwks",
            "response_types_supported": ["code"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "code_challenge_methods_supported": ["S256"],
        }

    def jwks(self) -> dict[str, Any]:
        return KeySet([self.key]).as_dict(private=False)

    def check_authorize(self, query: dict[str, str]) -> str | None:
        """Why an authorize request is bad, or None."""
        with self._lock:
            self.authorize_requests.append(dict(query))
        if query.get("client_id") != self.client_id:
            return "unknown client_id"
        if query.get("response_type") != "code":
            return "response_type must be code"
        if "openid" not in query.get("scope", "").split():
            return "scope must include openid"
        if not query.get("state") or not query.get("nonce"):
            return "state and nonce are required"
        if query.get("code_challenge_method") != "S256" or not query.get("code_challenge"):
            return "PKCE (S256) is required"
        if not query.get("redirect_uri", "").startswith("http"):
            return "redirect_uri missing"
        return None

    def approve(self, query: dict[str, str], person: Person) -> str:
        """The redirect back to the client with a fresh code for ``person``."""
        code = "code-" + secrets.token_urlsafe(16)
        with self._lock:
            self._codes[code] = _Grant(person, query["redirect_uri"], query["code_challenge"], query["nonce"])
        return query["redirect_uri"] + "?" + urlencode({"code": code, "state": query["state"]})

    def token(self, form: dict[str, str], authorization: str | None) -> tuple[int, dict[str, Any]]:
        client_id, secret = form.get("client_id"), form.get("client_secret")
        if authorization and authorization.lower().startswith("basic "):
            client_id, _, secret = base64.b64decode(authorization[6:]).decode().partition(":")
            client_id, secret = unquote(client_id), unquote(secret)
        with self._lock:
            self.token_requests.append(dict(form))
            if client_id != self.client_id or secret != self.client_secret:
                return 401, {"error": "invalid_client"}
            if form.get("grant_type") != "authorization_code":
                return 400, {"error": "unsupported_grant_type"}
            grant = self._codes.pop(form.get("code", ""), None)
        if grant is None:
            return 400, {"error": "invalid_grant", "error_description": "unknown or used code"}
        if form.get("redirect_uri") != grant.redirect_uri:
            return 400, {"error": "invalid_grant", "error_description": "redirect_uri mismatch"}
        verifier = form.get("code_verifier", "")
        challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
        if challenge != grant.code_challenge:
            return 400, {"error": "invalid_grant", "error_description": "PKCE verification failed"}
        now = int(time.time()) + self.issued_at_offset
        claims: dict[str, Any] = {
            "iss": self.url,
            "aud": self.audience or self.client_id,
            "sub": grant.person.sub,
            "email": grant.person.email,
            "email_verified": grant.person.email_verified,
            "name": grant.person.name,
            "nonce": grant.nonce,
            "iat": now,
            "exp": now + self.expires_in,
            **self.extra_claims,
        }
        key = self.wrong_key if self.sign_with_wrong_key else self.key
        id_token = jwt.encode({"alg": "RS256", "kid": KID}, claims, key)
        return 200, {"access_token": "at-" + secrets.token_urlsafe(16), "token_type": "Bearer", "id_token": id_token}


class _Handler(BaseHTTPRequestHandler):
    fake: FakeOidcProvider

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    def _send(self, status: int, body: bytes, content_type: str, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def _json(self, status: int, body: dict[str, Any]) -> None:
        self._send(status, json.dumps(body).encode(), "application/json")

    def _redirect(self, location: str) -> None:
        self._send(302, b"", "text/plain", {"Location": location})

    def do_GET(self) -> None:
        parts = urlsplit(self.path)
        query = {k: v[0] for k, v in parse_qs(parts.query).items()}
        if parts.path == "/favicon.ico":
            self._send(204, b"", "text/plain")
        elif parts.path == "/.well-known/openid-configuration":
            self._json(200, self.fake.discovery())
        elif parts.path == "/jwks":
            self._json(200, self.fake.jwks())
        elif parts.path == "/authorize":
            problem = self.fake.check_authorize(query)
            if problem:
                self._send(400, f"<h1>Bad request</h1><p>{html.escape(problem)}</p>".encode(), "text/html")
            elif self.fake.sign_in_as is not None:
                self._redirect(self.fake.approve(query, self.fake.sign_in_as))
            else:
                hidden = "".join(
                    f'<input type="hidden" name="{html.escape(k)}" value="{html.escape(v)}">' for k, v in query.items()
                )
                page = (
                    "<!doctype html><html lang='en'><head><title>Fake identity provider</title></head><body>"
                    "<h1>Fake identity provider</h1>"
                    f'<form method="get" action="/authorize/submit">{hidden}'
                    '<label for="login">Email</label><input id="login" name="login" type="email">'
                    '<button type="submit">Sign in</button></form></body></html>'
                )
                self._send(200, page.encode(), "text/html; charset=utf-8")
        elif parts.path == "/authorize/submit":
            email = query.pop("login", "")
            self._redirect(self.fake.approve(query, self.fake.person(email)))
        else:
            self._json(404, {"error": "not_found"})

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length).decode() if length else ""
        form = {k: v[0] for k, v in parse_qs(raw).items()}
        if urlsplit(self.path).path == "/token":
            status, body = self.fake.token(form, self.headers.get("Authorization"))
            self._json(status, body)
        else:
            self._json(404, {"error": "not_found"})
