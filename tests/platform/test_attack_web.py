"""Attacks on the web edge (issue 14, holes 3-9), over real HTTP against a live server.

Each test names its attacker and counts its attempts; every attempt must be refused with a clear
4xx (or, for headers, the response must carry the protection).
"""

from __future__ import annotations

import base64
import hashlib
import json
import socket
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from app.web.api_reference import REDOC_INTEGRITY, REDOC_JS
from tests.conftest import LiveServer, make_settings
from tests.platform.conftest import World, browser_session, seed

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def guarded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """A seeded server with a low login rate limit, small body limits and an endpoint-enabled workflow."""
    tmp = tmp_path_factory.mktemp("guarded")
    workspace = tmp / "workspace"
    workspace.mkdir()
    (workspace / "ep.py").write_text(
        "from bifrost import workflow\n\n"
        "@workflow(endpoint_enabled=True)\n"
        "async def secret_report(customer_code: str):\n    return customer_code\n\n"
        "@workflow(endpoint_enabled=True, public_endpoint=True)\n"
        "async def public_ping():\n    return 'pong'\n"
    )
    settings = make_settings(
        tmp,
        workspace=workspace,
        login_rate_limit_per_minute=5,
        max_body_bytes=64 * 1024,
        form_max_body_bytes=64 * 1024,
        public_form_max_body_bytes=16 * 1024,
        knowledge_max_upload_bytes=128 * 1024,
        max_file_bytes=1024**2,
    )
    server = LiveServer(settings).start()
    data = server.call(lambda: seed(server.platform))
    world = World(server=server, **data)
    try:
        yield world
    finally:
        server.stop()


def _raw(url: str, head: str, body: bytes = b"", chunks: list[bytes] | None = None) -> tuple[int, bytes]:
    """Send a hand-made HTTP/1.1 request; return the status and the response bytes read."""
    parts = urlsplit(url)
    with socket.create_connection((parts.hostname, parts.port), timeout=10) as sock:
        sock.sendall(head.encode() + b"\r\n" + body)
        try:
            for chunk in chunks or []:
                sock.sendall(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
            if chunks is not None:
                sock.sendall(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server answered and closed before we finished: that is the point
        data = b""
        while b"\r\n\r\n" not in data:
            more = sock.recv(65536)
            if not more:
                break
            data += more
        head_part, _, rest = data.partition(b"\r\n\r\n")
        length = next(
            (
                int(line.split(b":")[1])
                for line in head_part.split(b"\r\n")
                if line.lower().startswith(b"content-length:")
            ),
            0,
        )
        while len(rest) < length:
            more = sock.recv(65536)
            if not more:
                break
            rest += more
        data = head_part + b"\r\n\r\n" + rest
    status = int(data.split(b" ", 2)[1]) if data.startswith(b"HTTP/") else 0
    return status, data


# ----- hole 3: bodies have limits, enforced before anything reads them ---------------------------------
BODY_ROUTES = [
    "/public/forms/does-not-exist/run",
    "/forms/does-not-exist/run",
    "/knowledge/upload",
    "/login",
    "/api/workflows/secret_report/execute",
    "/api/auth/login",
    "/api/sdk/v1/tables/t/documents",
    "/api/knowledge/uploads",
    "PUT /api/files/content?path=x.txt",
    "/api/endpoints/public_ping",
]


def test_anonymous_attacker_announcing_a_huge_body_gets_413_before_sending_it(guarded: World) -> None:
    attempts = 0
    for route in BODY_ROUTES:
        method, _, path = route.rpartition(" ")
        head = (
            f"{method or 'POST'} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/x-www-form-urlencoded\r\n"
            f"Content-Length: {200 * 1024**2}\r\n"
        )
        status, data = _raw(guarded.server.url, head)
        attempts += 1
        assert status == 413, (path, data[:300])
        assert b"Request body too large" in data, (path, data[:300])
    print(f"{attempts} oversized announced bodies refused")


def test_anonymous_attacker_streaming_an_endless_chunked_body_gets_413(guarded: World) -> None:
    attempts = 0
    for path in ["/public/forms/does-not-exist/run", "/forms/x/run", "/api/auth/login", "/knowledge/upload"]:
        media_type = "application/json" if path.startswith("/api/") else "application/x-www-form-urlencoded"
        head = (
            f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: {media_type}\r\nTransfer-Encoding: chunked\r\n"
        )
        status, data = _raw(guarded.server.url, head, chunks=[b"a=" + b"x" * 8192] * 200)  # 1.6 MB
        attempts += 1
        assert status == 413, (path, data[:300])
    print(f"{attempts} chunked floods refused")


def test_a_body_within_the_limit_still_works(guarded: World) -> None:
    with guarded.server.client() as client:
        ok = client.post(
            "/api/workflows/secret_report/execute?wait=true",
            json={"params": {"customer_code": "c" * 1000}},
            headers={"Authorization": f"Bearer {guarded.admin_key}"},
        )
    assert ok.status_code == 200 and ok.json()["result"] == "c" * 1000


# ----- hole 4: forwarded headers count only from trusted proxies --------------------------------------
def test_attacker_rotating_x_forwarded_for_is_still_rate_limited(guarded: World) -> None:
    statuses = []
    with guarded.server.client() as client:
        for attempt in range(12):
            response = client.post(
                "/api/auth/login",
                json={"email": "nobody@test.io", "password": "guess"},
                headers={"X-Forwarded-For": f"203.0.113.{attempt}", "X-Real-IP": f"198.51.100.{attempt}"},
            )
            statuses.append(response.status_code)
    print(f"{len(statuses)} login guesses with rotating X-Forwarded-For: {statuses}")
    assert 429 in statuses, statuses
    assert statuses.index(429) <= 5


def test_trusted_proxies_setting_controls_uvicorn(tmp_path: Path) -> None:
    from app.web.server import proxy_options

    assert proxy_options(make_settings(tmp_path / "a")) == {"proxy_headers": False}
    trusted = proxy_options(make_settings(tmp_path / "b", trusted_proxies="10.0.0.5"))
    assert trusted == {"proxy_headers": True, "forwarded_allow_ips": "10.0.0.5"}


# ----- hole 5: login CSRF; the JSON API takes JSON only ------------------------------------------------
def test_cross_site_attacker_cannot_log_a_victim_in_with_a_text_plain_post(world: World) -> None:
    attempts = 0
    body = json.dumps({"email": "alice@a.example", "password": "alice-password"})
    with world.server.client() as client:
        for content_type in ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", ""]:
            headers = {"Content-Type": content_type} if content_type else {}
            response = client.post("/api/auth/login", content=body, headers=headers)
            attempts += 1
            assert response.status_code == 415, (content_type, response.text)
            assert "application/json" in response.json()["detail"]
            assert "bifrost_session" not in response.headers.get("set-cookie", "")
        for origin in ["http://evil.example", "null", "http://127.0.0.1:1"]:
            response = client.post(
                "/api/auth/login", content=body, headers={"Content-Type": "application/json", "Origin": origin}
            )
            attempts += 1
            assert response.status_code == 403, (origin, response.text)
            assert "Cross-site" in response.json()["detail"]
        same = client.post(
            "/api/auth/login", content=body, headers={"Content-Type": "application/json", "Origin": world.server.url}
        )
        assert same.status_code == 200
    print(f"{attempts} cross-site login attempts refused")


def test_cross_site_attacker_cannot_post_a_form_or_log_out_a_victim(world: World) -> None:
    with browser_session(world, "alice@a.example", "alice-password") as alice:
        attempts = 0
        for path in ["/api/auth/logout", "/logout", "/api/workflows/x/execute", "/forms/x/run"]:
            response = alice.post(path, headers={"Origin": "http://evil.example"}, data={"a": "b"})
            attempts += 1
            assert response.status_code == 403, (path, response.status_code)
        assert alice.get("/api/auth/me").status_code == 200  # still signed in
    print(f"{attempts} cross-site writes with the victim's cookie refused")


def test_api_key_callers_with_json_keep_working_and_text_bodies_get_415(world: World) -> None:
    with world.server.client() as client:
        key = {"Authorization": f"Bearer {world.alice_key}"}
        assert client.get("/api/workflows", headers=key).status_code == 200
        wrong = client.post("/api/tables", content="{}", headers={**key, "Content-Type": "text/plain"})
        assert wrong.status_code == 415


# ----- hole 6: sessions end on logout, password change, role change and deactivation ---------------
def _copied_cookie_client(world: World, source: httpx.Client) -> httpx.Client:
    copy = httpx.Client(base_url=world.server.url, timeout=30)
    copy.cookies.update(source.cookies)
    copy.headers["X-CSRFToken"] = source.headers["X-CSRFToken"]
    return copy


def test_a_copied_cookie_stops_working_after_logout(world: World) -> None:
    with browser_session(world, "bob@b.example", "bob-password") as bob:
        with _copied_cookie_client(world, bob) as thief:
            assert thief.get("/api/auth/me").status_code == 200
            assert bob.post("/api/auth/logout").status_code == 200
            assert thief.get("/api/auth/me").status_code == 401
            assert thief.get("/", follow_redirects=False).status_code in (302, 303, 401)


def test_password_change_deactivation_and_role_change_end_other_sessions(world: World) -> None:
    admin_key = {"Authorization": f"Bearer {world.admin_key}"}
    ended = 0
    with httpx.Client(base_url=world.server.url, timeout=30, headers=admin_key) as admin:
        user = admin.post(
            "/api/users",
            json={"email": "carol@a.example", "name": "Carol", "org_id": world.org_a, "password": "carol-password"},
        ).json()
        role = admin.post("/api/roles", json={"name": "helpdesk"}, headers={"X-Bifrost-Org": world.org_a})
        assert role.status_code in (200, 201), role.text
        role_id = role.json()["id"]
        changes = [
            ("password", lambda: admin.patch(f"/api/users/{user['id']}", json={"password": "carol-password-2"})),
            (
                "role",
                lambda: admin.post(
                    f"/api/roles/{role_id}/users",
                    json={"user_ids": [user["id"]]},
                    headers={"X-Bifrost-Org": world.org_a},
                ),
            ),
            ("deactivation", lambda: admin.patch(f"/api/users/{user['id']}", json={"is_active": False})),
        ]
        password = "carol-password"
        for what, change in changes:
            with browser_session(world, "carol@a.example", password) as carol:
                assert carol.get("/api/auth/me").status_code == 200
                response = change()
                assert response.status_code in (200, 201, 204), (what, response.text)
                assert carol.get("/api/auth/me").status_code == 401, what
                ended += 1
            password = "carol-password-2"
    print(f"{ended} kinds of change ended the user's sessions")


def test_cookies_are_secure_when_the_setting_or_an_https_public_url_says_so(tmp_path: Path) -> None:
    assert make_settings(tmp_path / "a").resolved_cookie_secure is False
    assert make_settings(tmp_path / "b", public_url="https://bifrost.example").resolved_cookie_secure is True
    assert (
        make_settings(tmp_path / "c", public_url="https://b.example", cookie_secure=False).resolved_cookie_secure
        is False
    )
    server = LiveServer(make_settings(tmp_path / "d", cookie_secure=True)).start()
    try:
        server.call(lambda: seed(server.platform))
        with server.client() as client:
            login = client.get("/login")
            assert "secure" in login.headers.get("set-cookie", "").lower()  # the CSRF cookie
            signed_in = client.post("/api/auth/login", json={"email": "admin@test.io", "password": "admin-password"})
            assert "secure" in signed_in.headers["set-cookie"].lower()
    finally:
        server.stop()


# ----- hole 7: security headers -----------------------------------------------------------------------
def test_every_response_carries_the_security_headers(world: World) -> None:
    checked = 0
    with browser_session(world) as admin:
        for path in ["/", "/login", "/executions", "/api/workflows", "/static/app.css", "/no-such-page", "/schema"]:
            response = admin.get(path)
            csp = response.headers.get("content-security-policy", "")
            assert "frame-ancestors 'none'" in csp and "script-src 'self'" in csp, path
            assert "'unsafe-eval'" not in csp, path
            assert response.headers.get("x-content-type-options") == "nosniff", path
            assert response.headers.get("referrer-policy") == "same-origin", path
            assert "strict-transport-security" not in response.headers  # plain http here
            checked += 1
    print(f"{checked} responses carry CSP, nosniff and Referrer-Policy")


def test_no_template_has_inline_script_or_style() -> None:
    offenders = []
    for template in (ROOT / "templates").rglob("*.html"):
        text = template.read_text()
        for needle in ("<script>", "<script type", " style=", "<style", "hx-on", " onclick=", " onchange=", "js:"):
            if needle in text:
                offenders.append(f"{template.relative_to(ROOT)}: {needle}")
    assert offenders == []


# ----- hole 8: the API reference is vendored and shows strangers no private endpoints ------------------
def test_api_reference_is_served_from_a_pinned_vendored_file(world: World) -> None:
    with world.server.client() as anonymous:
        page = anonymous.get("/schema")
        assert page.status_code == 200
        assert "cdn" not in page.text.lower() and "googleapis" not in page.text
        assert f"src='{REDOC_JS}'" in page.text and REDOC_INTEGRITY in page.text
        script = anonymous.get(REDOC_JS)
        assert script.status_code == 200
    digest = "sha384-" + base64.b64encode(hashlib.sha384(script.content).digest()).decode()
    assert digest == REDOC_INTEGRITY


def test_anonymous_callers_do_not_see_private_endpoints_in_the_openapi_document(guarded: World) -> None:
    with guarded.server.client() as anonymous:
        public = anonymous.get("/schema/openapi.json").json()
    assert "/api/endpoints/public_ping" in public["paths"]
    assert "/api/endpoints/secret_report" not in public["paths"]
    assert "customer_code" not in json.dumps(public)
    with guarded.server.client() as client:
        full = client.get("/schema/openapi.json", headers={"Authorization": f"Bearer {guarded.alice_key}"}).json()
        forged = client.get("/schema/openapi.json", headers={"Authorization": "Bearer bfk_forged"}).json()
    assert "/api/endpoints/secret_report" in full["paths"]
    assert "/api/endpoints/secret_report" not in forged["paths"]


# ----- hole 9: deeply nested JSON --------------------------------------------------------------------
def test_deeply_nested_json_answers_400_everywhere(world: World) -> None:
    deep = "[" * 10_000 + "]" * 10_000
    deep_object = '{"a":' * 10_000 + "1" + "}" * 10_000
    attempts = 0
    key = {"Authorization": f"Bearer {world.alice_key}", "Content-Type": "application/json"}
    with world.server.client() as client:
        for path, body in [
            ("/api/workflows/x/execute", '{"params": ' + deep_object + "}"),
            ("/api/tables", deep),
            ("/api/auth/login", deep_object),
            ("/api/chat/conversations", deep_object),
            ("/api/tables/t/documents", '{"data": ' + deep_object + "}"),
            ("PUT /api/config/k", '{"value": ' + deep + "}"),
        ]:
            method, _, path = path.rpartition(" ")
            response = client.request(method or "POST", path, content=body, headers=key)
            attempts += 1
            assert response.status_code == 400, (path, response.status_code, response.text[:200])
            assert "nest" in response.text.lower(), response.text[:200]
    print(f"{attempts} deeply nested bodies refused with 400")
