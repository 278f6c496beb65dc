"""Helpers for the HTML page tests: a logged-in browser-like client and small HTML readers."""

from __future__ import annotations

import html
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from tests.conftest import LiveServer, make_settings
from tests.platform.conftest import World, seed


def start_pages_world(tmp: Path, database_url: str | None = None) -> World:
    """A seeded live server for page tests: they log in through the page often, so the login throttle is raised."""
    server = LiveServer(make_settings(tmp, database_url, login_rate_limit_per_minute=10_000)).start()
    data = server.call(lambda: seed(server.platform))
    return World(server=server, **data)


class PageClient:
    """An HTTP client logged in through the login page, which posts forms with the CSRF token."""

    def __init__(self, client: httpx.Client) -> None:
        self.http = client

    @property
    def csrf(self) -> str:
        return self.http.cookies["csrftoken"]

    def get(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.http.get(path, **kwargs)

    def live(self, path: str, **kwargs: Any) -> httpx.Response:
        """GET a live page (server-sent events) up to its ``done`` event, then close, as the browser does.

        A plain ``get`` of a finished run's stream would also wait out the server's close grace (10 s), which
        is there so that the browser, not the server, closes the stream.
        """
        with self.http.stream("GET", path, **kwargs) as response:
            lines: list[str] = []
            for line in response.iter_lines():
                lines.append(line)
                if lines[-2:-1] == ["event: done"]:  # the done event and its data line
                    break
            return httpx.Response(response.status_code, text="\n".join(lines))

    def post(self, path: str, data: dict[str, Any] | None = None, *, csrf: bool = True) -> httpx.Response:
        body = dict(data or {})
        if csrf:
            body["_csrf_token"] = self.csrf
        return self.http.post(path, data=body)


@contextmanager
def logged_in(world: World, email: str, password: str) -> Iterator[PageClient]:
    """A client with a session from ``POST /login`` (the real page form, with its CSRF token)."""
    with httpx.Client(base_url=world.server.url, timeout=60) as client:
        client.get("/login")
        response = client.post(
            "/login",
            data={"email": email, "password": password, "next": "/", "_csrf_token": client.cookies["csrftoken"]},
        )
        assert response.status_code == 303, response.text
        yield PageClient(client)


def admin(world: World) -> Any:
    return logged_in(world, "admin@test.io", "admin-password")


def alice(world: World) -> Any:
    return logged_in(world, "alice@a.example", "alice-password")


def bob(world: World) -> Any:
    return logged_in(world, "bob@b.example", "bob-password")


def text(fragment: str) -> str:
    """Visible text of an HTML fragment (tags dropped, entities decoded, spaces collapsed)."""
    return re.sub(r"\s+", " ", html.unescape(re.sub(r"<[^>]+>", " ", fragment))).strip()


def field_html(page: str, name: str) -> str:
    """The ``<div id="field-NAME">`` block of a rendered form."""
    match = re.search(rf'<div class="field[^"]*" id="field-{name}".*?</div>', page, re.S)
    assert match, f"no field {name!r} in the page"
    return match.group(0)


def field_error(page: str, name: str) -> str | None:
    """The error message shown under a field, or None."""
    match = re.search(rf'id="err-{name}">(.*?)</p>', page, re.S)
    return html.unescape(match.group(1)).strip() if match else None


def options(fragment: str) -> list[tuple[str, str]]:
    """``(value, label)`` of every ``<option>`` with a value."""
    return [
        (html.unescape(v), text(label))
        for v, label in re.findall(r'<option value="([^"]+)"[^>]*>(.*?)</option>', fragment, re.S)
    ]


def input_value(page: str, name: str) -> str | None:
    """The ``value`` of the input named ``name`` (text-like inputs)."""
    match = re.search(rf'<input [^>]*name="{name}"[^>]*value="([^"]*)"', page, re.S)
    return html.unescape(match.group(1)) if match else None


def execution_id(response: httpx.Response) -> str:
    """The execution a form submit redirected to."""
    assert response.status_code == 303, response.text[:2000]
    location = response.headers["location"]
    assert location.startswith("/executions/")
    return location.rsplit("/", 1)[1]


def wait_done(world: World, key: str, execution: str, timeout: float = 30) -> dict[str, Any]:
    """Poll the JSON API until the execution ends; returns it."""
    deadline = time.monotonic() + timeout
    with world.server.client(key) as client:
        while True:
            body = client.get(f"/api/executions/{execution}").json()
            if body["status"] in ("Completed", "Failed", "Cancelled") or time.monotonic() > deadline:
                return body
            time.sleep(0.05)


def provider_runs(world: World, name: str) -> list[dict[str, Any]]:
    """Every execution of the data provider ``name`` (as the admin sees them: all organizations)."""
    with world.server.client(world.admin_key) as client:
        response = client.get("/api/executions", params={"workflow_name": name, "limit": 1000})
    assert response.status_code == 200
    return response.json()
