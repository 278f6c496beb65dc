"""Steps the browser tests share on the seeded live server (``tests.platform.conftest.world``)."""

from __future__ import annotations

from typing import Any

from tests.platform.conftest import World


def login(page: Any, world: World, email: str, password: str) -> None:
    """Sign in through the login page and wait for the home page."""
    page.goto(f"{world.server.url}/login")
    page.fill("#email", email)
    page.fill("#password", password)
    page.click("button[type=submit]")
    page.wait_for_url(f"{world.server.url}/")
