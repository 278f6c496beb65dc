"""The web app in a real browser: forms with data providers, live logs, history, admin, phone width.

Every test ends by asserting that the browser console stayed free of errors. The README's pictures
come from the demo (``make screenshots``), not from these fixtures.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.browser_support import login
from tests.platform.conftest import World
from tests.platform.pages_support import start_pages_world


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """A seeded live server (the login throttle raised: these tests log in many times)."""
    w = start_pages_world(tmp_path_factory.mktemp("web"))
    try:
        yield w
    finally:
        w.server.stop()


def choose(page: Any, select: str, value: str) -> None:
    """Wait for an option to exist (data providers fill it), then pick it."""
    page.wait_for_selector(f"{select} option[value='{value}']", state="attached")
    page.select_option(select, value)


def test_run_a_form_with_dependent_providers_and_watch_it_live(world: World, page: Any) -> None:
    login(page, world, "alice@a.example", "alice-password")
    page.click("a[aria-label='Run ff_request_access']")
    page.wait_for_url("**/workflows/ff_request_access")
    # the department choices come from a data provider; the person's depend on the department
    assert "Fill in Department first" in page.inner_text("#field-person")
    choose(page, "#f-department", "eng")
    page.wait_for_selector("#f-person option[value='ada']", state="attached")
    assert page.eval_on_selector_all("#f-person option", "els => els.map(e => e.textContent)") == [
        "Choose…",
        "Ada Lovelace",
        "Grace Hopper",
    ]
    choose(page, "#f-department", "sales")
    page.wait_for_selector("#f-person option[value='don']", state="attached")
    assert page.locator("#f-person option[value='ada']").count() == 0
    choose(page, "#f-person", "don")
    page.fill("#f-start", "2026-04-01")
    page.check("input[name=extras][value=vpn]")
    page.fill("#f-seats", "3")
    page.fill("#f-steps", "5")
    page.click("#run-form button[type=submit]")
    page.wait_for_url(re.compile(r".*/executions/[0-9a-f-]+$"))

    # logs arrive while it runs (each step is 0.4 s apart), then the result replaces the placeholder
    page.wait_for_selector("#logs li:not(.empty)")
    counts = []
    while page.locator("#result-table").count() == 0 and len(counts) < 200:
        counts.append(page.locator("#logs li:not(.empty)").count())
        page.wait_for_timeout(100)
    assert any(0 < c < 5 for c in counts), counts  # seen part-way: the lines were streamed
    page.wait_for_selector("#result-table")
    assert page.inner_text("#exec-status-text") == "Completed"
    assert page.locator("#cancel-button").count() == 0
    # the facts table, rendered while the run was going, gets its end time without a reload
    page.wait_for_function("() => document.querySelector('#execution-completed').textContent.trim() !== ''")
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC", page.inner_text("#execution-completed").strip())
    logs = page.inner_text("#logs")
    assert all(f"step {i} of 5 for don" in logs for i in range(1, 6))
    rows = page.eval_on_selector_all("#result-table tbody tr", "rows => rows.map(r => r.innerText.split('\\t'))")
    assert rows == [["don", "sales", "read", "3"], ["manager", "sales", "read", "0"]]
    assert page.console_errors == []


def test_validation_errors_show_next_to_fields_with_the_input_kept(world: World, page: Any) -> None:
    login(page, world, "alice@a.example", "alice-password")
    page.goto(f"{world.server.url}/workflows/ff_request_access")
    choose(page, "#f-department", "eng")
    choose(page, "#f-person", "grace")
    page.fill("#f-seats", "42")
    page.fill("#f-notes", "{oops")
    page.click("#run-form button[type=submit]")
    page.wait_for_selector("#form-errors")
    assert page.url.endswith("/workflows/ff_request_access/run")
    assert page.inner_text("#err-seats") == "Input should be less than or equal to 10"
    assert page.inner_text("#err-start") == "this parameter is required"
    assert page.inner_text("#err-notes").startswith("not valid JSON")
    assert page.get_attribute("#f-seats", "aria-invalid") == "true"
    assert page.input_value("#f-seats") == "42" and page.input_value("#f-notes") == "{oops"
    assert page.input_value("#f-department") == "eng" and page.input_value("#f-person") == "grace"
    # fixing the fields runs it
    page.fill("#f-seats", "2")
    page.fill("#f-notes", "")
    page.fill("#f-start", "2026-06-01")
    page.fill("#f-steps", "0")
    page.click("#run-form button[type=submit]")
    page.wait_for_selector("#result-table")
    assert page.console_errors == []


def test_failing_provider_shows_an_error_on_its_field(world: World, page: Any) -> None:
    login(page, world, "alice@a.example", "alice-password")
    page.goto(f"{world.server.url}/workflows/ff_broken_choices")
    page.wait_for_selector("#err-source")
    page.wait_for_selector("#err-shape")
    assert "The directory is offline" in page.inner_text("#err-source")
    assert "expected a list" in page.inner_text("#err-shape")
    page.fill("#f-label", "still works")
    page.click("#run-form button[type=submit]")
    page.wait_for_selector("#result-json")
    assert page.inner_text("#result-json") == '"still works"'
    assert page.console_errors == []


def test_history_detail_and_rerun(world: World, page: Any) -> None:
    login(page, world, "alice@a.example", "alice-password")
    page.goto(f"{world.server.url}/workflows/ff_summary")
    page.fill("#f-name", "Hedy")
    page.fill("#f-tags", "radio\nwifi")
    page.click("#run-form button[type=submit]")
    page.wait_for_selector("#result-object")
    first = page.url
    assert "Hedy" in page.inner_text("#result-object")

    page.click("nav.mainnav >> text=Executions")
    page.fill("#flt-workflow", "ff_summary")
    page.select_option("#flt-status", "Completed")
    page.click("form.filters button[type=submit]")
    page.wait_for_url(re.compile(r".*/executions\?workflow=ff_summary&status=Completed.*"))
    assert page.locator("#executions-table tbody tr").count() >= 1
    page.click(f"a[href='{first.split(world.server.url)[1]}']")
    page.wait_for_url(first)
    params = page.inner_text("#execution-params")
    assert "Hedy" in params and '["radio", "wifi"]' in params
    assert "alice@a.example" in page.inner_text("#execution-facts")

    page.click("#rerun-button")
    page.wait_for_url(lambda url: url != first and "/executions/" in url)
    page.wait_for_selector("#result-object")
    assert "Hedy" in page.inner_text("#result-object")

    page.click("text=Edit and run")
    page.wait_for_url(re.compile(r".*/workflows/ff_summary\?from="))
    assert page.input_value("#f-name") == "Hedy" and page.input_value("#f-tags") == "radio\nwifi"
    assert page.console_errors == []


def test_cancel_a_running_execution(world: World, page: Any) -> None:
    login(page, world, "alice@a.example", "alice-password")
    page.goto(f"{world.server.url}/workflows/sleeper")
    page.fill("#f-seconds", "60")
    page.click("#run-form button[type=submit]")
    page.wait_for_selector("#cancel-button")
    page.click("#cancel-button")
    page.wait_for_selector("#result-error")
    assert page.inner_text("#exec-status-text") == "Cancelled"
    assert page.inner_text("#result-error").startswith("Cancelled")
    assert page.console_errors == []


def test_admin_creates_a_user_and_an_api_key_shown_once(world: World, page: Any) -> None:
    login(page, world, "admin@test.io", "admin-password")
    page.click("#admin-menu summary")  # admin pages are in the top bar's Admin menu
    page.click("#admin-menu >> text=Users")
    page.fill("#user-email", "tess@a.example")
    page.fill("#user-name", "Tess")
    page.fill("#user-password", "tess-password-1")
    page.select_option("#user-org", label="Org A")
    page.click("#new-user-form button[type=submit]")
    page.wait_for_selector("#notice")
    assert "User tess@a.example created" in page.inner_text("#notice")
    assert "tess@a.example" in page.inner_text("#users-table")

    page.click("#account-menu summary")  # API keys sit in the account menu
    page.click("#account-menu >> text=API keys")
    page.fill("#key-name", "ci pipeline")
    page.select_option("#key-workflow", "ff_count")
    page.click("#new-key-form button[type=submit]")
    secret = page.inner_text("#new-key")
    assert secret.startswith("bfk_")
    assert "shown only this once" in page.inner_text(".secret-once")
    page.goto(f"{world.server.url}/api-keys")
    assert page.locator("#new-key").count() == 0 and secret not in page.content()
    assert "ci pipeline" in page.inner_text("#keys-table")
    with world.server.client(secret) as api:
        assert api.post("/api/workflows/ff_count/execute?wait=true", json={"params": {"n": 2}}).json()["result"] == 4

    # the new user can log in and run things in Org A
    page.click("text=Log out")
    login(page, world, "tess@a.example", "tess-password-1")
    assert "Tess (tess@a.example)" in page.inner_text("header")
    assert page.locator("nav.mainnav >> text=Users").count() == 0
    assert page.console_errors == []


def test_keyboard_only_run(world: World, page: Any) -> None:
    login(page, world, "alice@a.example", "alice-password")
    page.goto(f"{world.server.url}/workflows/ff_count")
    page.focus("#f-n")
    page.keyboard.press("Control+A")
    page.keyboard.type("8")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent.trim()") == "Run ff_count"
    page.keyboard.press("Enter")
    page.wait_for_selector("#result-json")
    assert page.inner_text("#result-json") == "16"
    # the skip link is the first thing a keyboard user reaches
    page.goto(f"{world.server.url}/")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.className") == "skip-link"
    assert page.console_errors == []


@pytest.mark.parametrize("path", ["/", "/workflows", "/workflows/ff_request_access", "/executions", "/api-keys"])
def test_phone_width_has_no_horizontal_scrolling(world: World, page: Any, path: str) -> None:
    page.set_viewport_size({"width": 375, "height": 740})
    login(page, world, "admin@test.io", "admin-password")
    page.goto(f"{world.server.url}{path}")
    page.wait_for_load_state("networkidle")
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth"), path
    assert page.locator("nav.mainnav a").first.is_visible()
    assert page.console_errors == []


def test_tour_of_every_main_page_without_console_errors(world: World, page: Any, tmp_path: Path) -> None:
    """Visit each main page as a platform admin (screenshots kept in docs/ when asked)."""
    with world.server.client(world.alice_key) as api:
        run = api.post(
            "/api/workflows/ff_request_access/execute?wait=true",
            json={"params": {"department": "eng", "person": "ada", "start": "2026-01-05", "steps": 2}},
        ).json()
        api.post("/api/workflows/ff_fails/execute?wait=true", json={"params": {}})
    login(page, world, "admin@test.io", "admin-password")
    page.select_option("#org-switch", label="Org A")
    page.click(".org-switch button")
    page.wait_for_selector("#notice")
    assert "Now acting in Org A." in page.inner_text("#notice")
    tour = {
        "home": "/",
        "workflows": "/workflows",
        "form": "/workflows/ff_request_access",
        "executions": "/executions",
        "execution": f"/executions/{run['execution_id']}",
        "organizations": "/admin/organizations",
        "users": "/admin/users",
        "roles": "/admin/roles",
        "api-keys": "/api-keys",
    }
    for name, path in tour.items():
        page.goto(f"{world.server.url}{path}")
        page.wait_for_load_state("networkidle")
        assert page.locator("main h1").count() >= 1, path
        page.screenshot(path=str(tmp_path / f"{name}.png"), full_page=name not in ("home", "workflows"))
    # the form again, with the provider choices loaded and a department picked
    page.goto(f"{world.server.url}{tour['form']}")
    choose(page, "#f-department", "eng")
    page.wait_for_selector("#f-person option[value='ada']", state="attached")
    page.screenshot(path=str(tmp_path / "form.png"), full_page=True)
    page.set_viewport_size({"width": 390, "height": 844})
    page.goto(f"{world.server.url}/executions/{run['execution_id']}")
    page.screenshot(path=str(tmp_path / "execution-phone.png"), full_page=True)
    assert page.console_errors == []
