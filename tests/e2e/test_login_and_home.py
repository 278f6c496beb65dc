"""Log in through the real page in a real browser and see what the home page offers."""

from __future__ import annotations

from typing import Any

from tests.platform.conftest import World


def test_login_shows_the_workflows_and_history(world: World, page: Any) -> None:
    with world.server.client(world.alice_key) as client:
        client.post("/api/workflows/add/execute?wait=true", json={"params": {"a": 1}})

    page.goto(f"{world.server.url}/")
    assert page.url.endswith("/login?next=/")
    page.fill("#email", "alice@a.example")
    page.fill("#password", "wrong-password")
    page.click("button[type=submit]")
    assert "Invalid email or password" in page.inner_text("[role=alert]")
    assert page.input_value("#email") == "alice@a.example"  # the user's input is kept

    page.fill("#password", "alice-password")
    page.click("button[type=submit]")
    page.wait_for_url(f"{world.server.url}/")
    assert "Alice (alice@a.example)" in page.inner_text("header")
    offered = page.inner_text("main")
    assert "add" in offered and "Math" in offered and "Add two numbers." in offered
    assert "Completed" in page.inner_text("#recent-executions")
    assert page.console_errors == []

    page.set_viewport_size({"width": 390, "height": 800})  # phone width: no horizontal scrolling
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")

    page.click("text=Log out")
    page.wait_for_url(f"{world.server.url}/login")
    page.goto(f"{world.server.url}/")
    assert "/login" in page.url


def test_keyboard_only_login(world: World, page: Any) -> None:
    page.goto(f"{world.server.url}/login")
    # the email field takes focus on load (autofocus), so typing goes straight into it
    page.wait_for_function("document.activeElement && document.activeElement.id === 'email'")
    page.keyboard.type("admin@test.io")
    page.keyboard.press("Tab")
    page.keyboard.type("admin-password")
    assert page.input_value("#email") == "admin@test.io" and page.input_value("#password") == "admin-password"
    page.keyboard.press("Enter")
    page.wait_for_url(f"{world.server.url}/")
    assert "platform admin" in page.inner_text("header")
    assert page.console_errors == []
