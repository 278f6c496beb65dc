"""Custom forms in a real browser: provider select, conditional field, file upload, validation, roles, builder.

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
from tests.e2e.test_web_app import choose
from tests.platform.conftest import World
from tests.platform.pages_support import start_pages_world
from tests.platform.test_pages_forms import ONBOARD_SCHEMA


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """A seeded live server (the login throttle raised: these tests log in many times)."""
    w = start_pages_world(tmp_path_factory.mktemp("web-forms"))
    try:
        yield w
    finally:
        w.server.stop()


def create_form(world: World, **body: Any) -> dict[str, Any]:
    payload = {"workflow_id": "cf_onboard", "form_schema": ONBOARD_SCHEMA, "organization_id": world.org_a, **body}
    with world.server.client(world.admin_key) as client:
        response = client.post("/api/forms", json=payload)
    assert response.status_code == 201, response.text
    return dict(response.json())


def keep_screenshot(source: Path) -> None:
    """The picture stays in the test's folder: docs/screenshots/ is made from the demo (make screenshots)."""
    assert source.stat().st_size > 0


def test_custom_form_with_provider_conditional_field_and_file(world: World, page: Any, tmp_path: Path) -> None:
    form = create_form(world, name="Onboard a starter", access_level="authenticated")
    login(page, world, "alice@a.example", "alice-password")
    page.click(f"#home-forms a[href='/forms/{form['id']}']")
    page.wait_for_url(f"**/forms/{form['id']}")
    assert "Welcome a new starter." in page.inner_text("#field-intro")
    page.fill("#f-name", "Ada")
    choose(page, "#f-site", "par")  # the choices come from the cf_sites data provider
    # The laptop model only appears once "Needs a laptop" is ticked (decided by the server).
    assert page.locator("input[name=laptop_model]").count() == 0
    page.check("#f-laptop")
    page.wait_for_selector("input[name=laptop_model][value=tp]")
    page.check("input[name=laptop_model][value=tp]")
    page.fill("#f-seats", "3")
    page.set_input_files(
        "#f-contract", files=[{"name": "contract.txt", "mimeType": "text/plain", "buffer": b"Signed by Ada."}]
    )
    page.screenshot(path=str(tmp_path / "custom-form.png"), full_page=True)
    keep_screenshot(tmp_path / "custom-form.png")
    page.click("#run-form button[type=submit]")
    page.wait_for_url(re.compile(r".*/executions/[0-9a-f-]+$"))
    page.wait_for_selector("#logs li:not(.empty)")
    page.wait_for_selector("#result-object")
    assert page.inner_text("#exec-status-text") == "Completed"
    assert "onboarding Ada at par" in page.inner_text("#logs")
    result = page.inner_text("#result-object")
    assert "Signed by Ada." in result and "contract.txt" in result and "tp" in result
    assert page.console_errors == []


def test_custom_form_validation_error_keeps_the_input(world: World, page: Any) -> None:
    form = create_form(world, name="Validated", access_level="authenticated")
    login(page, world, "alice@a.example", "alice-password")
    page.goto(f"{world.server.url}/forms/{form['id']}")
    page.fill("#f-name", "ada lovelace")
    choose(page, "#f-site", "lon")
    page.click("#run-form button[type=submit]")
    page.wait_for_selector("#err-name")
    assert page.inner_text("#err-name") == "One word starting with a capital"
    assert page.input_value("#f-name") == "ada lovelace"
    assert page.get_attribute("#f-name", "aria-invalid") == "true"
    assert page.console_errors == []


def test_a_role_is_refused_a_form_it_was_not_given(world: World, page: Any) -> None:
    form = create_form(world, name="Managers only", access_level="role_based")
    login(page, world, "alice@a.example", "alice-password")
    page.goto(f"{world.server.url}/forms")
    assert "Managers only" not in page.inner_text("main")
    response = page.goto(f"{world.server.url}/forms/{form['id']}")
    assert response.status == 404
    assert "not found" in page.inner_text("main").lower()
    assert [e for e in page.console_errors if "404" not in e] == []


def test_form_builder_creates_a_form(world: World, page: Any, tmp_path: Path) -> None:
    login(page, world, "admin@test.io", "admin-password")
    page.goto(f"{world.server.url}/admin/forms/new")
    page.select_option("#start-workflow", "cf_onboard")
    page.click("#pick-workflow button")
    page.wait_for_selector("#f0_name")
    page.fill("#form-name", "Built in the browser")
    page.select_option("#form-org", label="Org A")
    page.check("input[name=access_level][value=authenticated]")
    page.click("#add-field")
    page.wait_for_selector("#f6_name")
    page.fill("#f6_name", "note")
    page.select_option("#f6_type", "textarea")
    page.fill("#f6_label", "Anything else?")
    page.evaluate("window.scrollTo(0, 0)")  # the form's settings and first fields
    page.screenshot(path=str(tmp_path / "form-builder.png"), full_page=False)
    keep_screenshot(tmp_path / "form-builder.png")
    page.click("#save-form")
    page.wait_for_selector("#notice")
    assert "Saved the form 'Built in the browser'" in page.inner_text("#notice")
    form_id = page.url.rsplit("/", 1)[1]
    with world.server.client(world.admin_key) as client:
        stored = client.get(f"/api/forms/{form_id}").json()
    assert stored["access_level"] == "authenticated" and stored["organization_id"] == world.org_a
    assert [f["name"] for f in stored["form_schema"]["fields"]][-1] == "note"
    assert page.console_errors == []
