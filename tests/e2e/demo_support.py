"""The demo of `make run` as a browser test's world: `bifrost init --demo` on a fresh SQLite file, a live server.

The walk and navigation tests use it because it is what a new user sees: the demo organizations
(Contoso, Fabrikam), their technicians, the demo workflows, form, schedule and knowledge.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tests.conftest import LiveServer, make_settings

ADMIN = ("admin@example.com", "bifrost-admin")
CONTOSO_TECH = ("tech@contoso.example", "contoso-tech")
FABRIKAM_TECH = ("tech@fabrikam.example", "fabrikam-tech")


@contextmanager
def running_demo(root: Path) -> Iterator[LiveServer]:
    """`bifrost init --demo` under ``root`` (only this test's settings), then a live server on it."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("BIFROST_")}
    env |= {"BIFROST_HOME": str(root / "home"), "BIFROST_WORKSPACE": str(root / "workspace"), "BIFROST_WORKERS": "1"}
    init = subprocess.run(
        [sys.executable, "-m", "app.cli", "init", "--demo"], env=env, capture_output=True, text=True, timeout=180
    )
    assert init.returncode == 0, init.stderr
    settings = make_settings(root, workspace=root / "workspace", login_rate_limit_per_minute=10_000)
    server = LiveServer(settings).start()
    try:
        yield server
    finally:
        server.stop()


def browser_login(page: Any, server: LiveServer, email: str, password: str) -> None:
    """Log in through the real login page."""
    page.goto(f"{server.url}/login")
    page.fill("#email", email)
    page.fill("#password", password)
    page.click("button[type=submit]")
    page.wait_for_url(f"{server.url}/")
