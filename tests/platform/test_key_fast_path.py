"""The API-key fast path (issue 23): a call to the JSON API carrying a key skips the session cookie and
the sign-in rate limiter, and nothing else. Cookie-authenticated writes still need their CSRF token,
and key calls still get the body limit, the cross-site rule's JSON check and every security header."""

from __future__ import annotations

import httpx

from tests.platform.conftest import World, browser_session
from tests.platform.test_attack_web import _raw


def _has_security_headers(response: httpx.Response) -> bool:
    csp = response.headers.get("content-security-policy", "")
    return (
        "frame-ancestors 'none'" in csp
        and response.headers.get("x-content-type-options") == "nosniff"
        and response.headers.get("referrer-policy") == "same-origin"
        and response.headers.get("x-frame-options") == "DENY"
    )


def test_a_cookie_write_without_its_csrf_token_is_still_refused(world: World) -> None:
    with browser_session(world, "alice@a.example", "alice-password") as alice:
        token = alice.headers.pop("X-CSRFToken")
        refused = alice.post("/api/workflows/add/execute?wait=true", json={"params": {"a": 1}})
        assert refused.status_code == 403 and "CSRF" in refused.text
        # A page form post without the token: refused by the CSRF middleware.
        assert alice.post("/logout", data={"a": "b"}, follow_redirects=False).status_code == 403
        # Another Authorization scheme is not a key: the cookie still needs its token.
        basic = alice.post("/api/workflows/add/execute", json={}, headers={"Authorization": "Basic YTpi"})
        assert basic.status_code == 403
        wrong_key = alice.post("/api/workflows/add/execute", json={}, headers={"Authorization": "Bearer nope"})
        assert wrong_key.status_code == 401  # a key call is authenticated by its key alone, never the cookie
        ok = alice.post(
            "/api/workflows/add/execute?wait=true", json={"params": {"a": 1}}, headers={"X-CSRFToken": token}
        )
        assert ok.status_code == 200 and ok.json()["result"] == {"sum": 3}, ok.text


def test_a_key_call_gets_the_security_headers_and_sets_no_cookie(world: World) -> None:
    key = {"Authorization": f"Bearer {world.alice_key}"}
    with world.server.client() as client:
        for response in (
            client.post("/api/workflows/add/execute?wait=true", json={"params": {"a": 1}}, headers=key),
            client.post("/api/workflows/no_such_flow/execute", json={}, headers=key),
            client.get("/api/workflows", headers={"X-Bifrost-Key": world.alice_key}),
        ):
            assert response.status_code in (200, 404), response.text
            assert _has_security_headers(response), response.headers
            assert "set-cookie" not in response.headers
        assert (
            client.post("/api/tables", content="{}", headers={**key, "Content-Type": "text/plain"}).status_code == 415
        )


def test_a_key_call_keeps_the_body_limit(world: World) -> None:
    for auth in (f"Authorization: Bearer {world.alice_key}", f"X-Bifrost-Key: {world.alice_key}"):
        head = (
            "POST /api/workflows/add/execute HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            f"{auth}\r\nContent-Length: {200 * 1024**2}\r\n"
        )
        status, data = _raw(world.server.url, head)
        assert status == 413 and b"Request body too large" in data, data[:300]
        assert b"content-security-policy" in data.lower()


def test_sign_in_routes_keep_the_session_even_with_a_bearer_header(world: World) -> None:
    with httpx.Client(base_url=world.server.url, timeout=30) as client:
        signed_in = client.post(
            "/api/auth/login",
            json={"email": "alice@a.example", "password": "alice-password"},
            headers={"Authorization": "Bearer not-a-key"},
        )
        assert signed_in.status_code == 200 and "bifrost_session" in signed_in.cookies
