"""Shared fixtures of the SDK tests: every test starts with a clean SDK state."""

from __future__ import annotations

import json
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

# The venv's editable install was generated before bifrost/ had an __init__.py and
# maps "bifrost" to a namespace package, which wins whenever the repository root is
# not on sys.path (the `pytest` script does not add it). Put the root first so the
# real package is imported; the check below fails loudly if that did not work.
_ROOT = str(Path(__file__).resolve().parents[2])
if "bifrost" not in sys.modules and _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

import bifrost  # noqa: E402
from bifrost import _client, _context, _registry  # noqa: E402

if bifrost.__file__ is None:  # pragma: no cover - environment problem, not a test failure
    raise RuntimeError(
        "`bifrost` was imported as a namespace package (stale editable install); "
        "reinstall with `.venv/bin/pip install -e . --no-deps` or run `python -m pytest` from the repository root"
    )


@pytest.fixture(autouse=True)
def clean_sdk_state(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No platform configured, no context bound, registry restored after the test."""
    for name in ("BIFROST_URL", "BIFROST_API_KEY", "BIFROST_ORG"):
        monkeypatch.delenv(name, raising=False)
    _client.configure()
    _client._override = None
    _context._fallback = None
    saved_definitions = list(_registry._definitions)
    yield
    _client.configure()
    _client._override = None
    _context._fallback = None
    _registry._definitions[:] = saved_definitions


@dataclass
class Recorder:
    """An ``httpx.MockTransport`` handler that records requests and answers from a table."""

    routes: dict[tuple[str, str], Callable[[httpx.Request], httpx.Response]] = field(default_factory=dict)
    requests: list[httpx.Request] = field(default_factory=list)

    def add(self, method: str, raw_path: str, status: int = 200, json_body: Any = None, **kwargs: Any) -> None:
        """Answer ``method raw_path`` (path below /api/sdk/v1, percent-encoded) with a fixed response."""
        self.routes[(method, raw_path)] = lambda _request: httpx.Response(status, json=json_body, **kwargs)

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        raw = request.url.raw_path.decode().split("?", 1)[0]
        assert raw.startswith(_client.SDK_PREFIX), raw
        handler = self.routes.get((request.method, raw[len(_client.SDK_PREFIX) :]))
        if handler is None:
            return httpx.Response(599, json={"detail": f"unexpected {request.method} {raw}"})
        return handler(request)

    @property
    def last(self) -> httpx.Request:
        assert self.requests, "no request was sent"
        return self.requests[-1]


@pytest.fixture
def platform() -> Recorder:
    """A fake platform reached through ``bifrost.configure(url, key, transport=MockTransport)``."""
    recorder = Recorder()
    _client.configure("http://platform.test/", "key-123", transport=httpx.MockTransport(recorder))
    return recorder


@dataclass
class LoopbackServer:
    """A real HTTP server on 127.0.0.1 recording the requests it gets."""

    url: str
    seen: list[dict[str, Any]]


@pytest.fixture
def loopback(monkeypatch: pytest.MonkeyPatch) -> Iterator[LoopbackServer]:
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    seen: list[dict[str, Any]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            seen.append({"path": self.path, "headers": {k.lower(): v for k, v in self.headers.items()}})
            body = json.dumps({"id": "u1", "email": "a@b.c", "name": "A", "organization_id": None,
                               "is_active": True, "is_superuser": False}).encode()  # fmt: skip
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    try:
        yield LoopbackServer(f"http://127.0.0.1:{server.server_address[1]}", seen)
    finally:
        server.shutdown()
        server.server_close()
