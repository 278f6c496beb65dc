"""Custom form pages over real HTTP: list, rendering, conditional fields, validation, uploads, public forms."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.conftest import LiveServer, make_settings
from tests.platform.conftest import World, seed
from tests.platform.pages_support import (
    admin,
    alice,
    bob,
    execution_id,
    field_error,
    field_html,
    input_value,
    options,
    text,
    wait_done,
)

MAX_FILE_BYTES = 64 * 1024

ONBOARD_SCHEMA: dict[str, Any] = {
    "fields": [
        {"name": "intro", "type": "markdown", "content": "Welcome a new starter.\n\nAll fields marked * are needed."},
        {
            "name": "name",
            "type": "text",
            "label": "Full name",
            "required": True,
            "placeholder": "Ada",
            "validation": {"min": 2, "pattern": "[A-Z][a-z]+", "message": "One word starting with a capital"},
        },
        {"name": "site", "type": "select", "label": "Site", "required": True, "data_provider": "cf_sites"},
        {"name": "laptop", "type": "checkbox", "label": "Needs a laptop"},
        {
            "name": "laptop_model",
            "type": "radio",
            "label": "Laptop model",
            "options": [{"label": "MacBook", "value": "mac"}, {"label": "ThinkPad", "value": "tp"}],
            "visible_when": {"field": "laptop"},
        },
        {"name": "seats", "type": "number", "label": "Seats", "default": 1, "validation": {"min": 1, "max": 5}},
        {"name": "contract", "type": "file", "label": "Contract", "accept": [".txt", "text/plain"]},
    ]
}


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """A seeded live server (SQLite) with a small upload limit and the login throttle raised."""
    settings = make_settings(
        tmp_path_factory.mktemp("forms-pages"), None, login_rate_limit_per_minute=10_000, max_file_bytes=MAX_FILE_BYTES
    )
    server = LiveServer(settings).start()
    data = server.call(lambda: seed(server.platform))
    w = World(server=server, **data)
    try:
        yield w
    finally:
        server.stop()


def create_form(world: World, **body: Any) -> dict[str, Any]:
    """Create a form through the JSON API as the platform admin."""
    payload = {"workflow_id": "cf_onboard", "form_schema": ONBOARD_SCHEMA, **body}
    with world.server.client(world.admin_key) as client:
        response = client.post("/api/forms", json=payload)
    assert response.status_code == 201, response.text
    return dict(response.json())


@pytest.fixture(scope="module")
def onboard(world: World) -> dict[str, Any]:
    """An ``authenticated`` form of Org A."""
    return create_form(world, name="Onboard a starter", access_level="authenticated", organization_id=world.org_a)


VALID = {"name": "Ada", "site": "lon", "seats": "2"}


def test_forms_list_shows_only_the_forms_the_user_may_use(world: World, onboard: dict[str, Any]) -> None:
    restricted = create_form(world, name="Restricted form", access_level="role_based", organization_id=world.org_a)
    with alice(world) as page:
        listing = page.get("/forms")
        assert listing.status_code == 200
        assert "Onboard a starter" in listing.text and f"/forms/{onboard['id']}" in listing.text
        assert "Restricted form" not in listing.text
        # The role-based form without a role of hers answers like an unknown id.
        assert page.get(f"/forms/{restricted['id']}").status_code == 404
        assert f'href="/forms/{onboard["id"]}"' in page.get("/").text  # also offered on the home page
    with bob(world) as page:
        assert "Onboard a starter" not in page.get("/forms").text
        assert page.get(f"/forms/{onboard['id']}").status_code == 404
    with admin(world) as page:
        listing = page.get("/forms").text
        assert "Restricted form" in listing and "Onboard a starter" in listing


def test_form_page_renders_every_field_from_the_schema(world: World, onboard: dict[str, Any]) -> None:
    with alice(world) as page:
        response = page.get(f"/forms/{onboard['id']}")
    assert response.status_code == 200
    body = response.text
    assert 'enctype="multipart/form-data"' in body
    assert "Welcome a new starter." in text(body)
    assert 'placeholder="Ada"' in field_html(body, "name")
    assert input_value(body, "seats") == "1"
    assert 'type="file"' in body and 'accept=".txt,text/plain"' in body
    # The conditional field is not shown while "laptop" is unticked: only its empty placeholder.
    assert re.search(r'<div class="field hidden-field" id="field-laptop_model" hidden', body)
    assert 'name="laptop_model"' not in body
    # The checkbox re-renders its dependents on change.
    assert "?changed=laptop" in body


def test_markdown_text_is_rendered_and_cannot_run_script(world: World) -> None:
    content = (
        "Read **this** first.\n\n<script>alert(1)</script> [click](javascript:alert(1)) [docs](https://example.com/d)"
    )
    form = create_form(
        world,
        name="Markdown form",
        access_level="authenticated",
        organization_id=None,
        form_schema={
            "fields": [{"name": "intro", "type": "markdown", "content": content}, *ONBOARD_SCHEMA["fields"][1:]]
        },
    )
    with alice(world) as page:
        body = page.get(f"/forms/{form['id']}").text
    markdown = field_html(body, "intro")
    assert "<strong>this</strong>" in markdown and '<a href="https://example.com/d">docs</a>' in markdown
    assert "<script>" not in markdown and "&lt;script&gt;" in markdown
    assert "javascript:" not in markdown.replace("[click](javascript:alert(1))", "")
    assert 'href="javascript' not in markdown


def test_conditional_field_is_decided_on_the_server(world: World, onboard: dict[str, Any]) -> None:
    url = f"/forms/{onboard['id']}/fields"
    with alice(world) as page:
        shown = page.get(url, params={"changed": "laptop", "laptop": "true", "laptop_model": "tp"})
        hidden = page.get(url, params={"changed": "laptop"})
        unknown = page.get(url, params={"changed": "nope"})
    assert shown.status_code == 200
    assert 'hx-swap-oob="outerHTML"' in shown.text
    assert 'name="laptop_model" value="tp"' in shown.text and "checked" in shown.text
    assert hidden.status_code == 200
    assert 'name="laptop_model"' not in hidden.text and 'id="field-laptop_model" hidden' in hidden.text
    assert unknown.status_code == 404


def test_provider_select_is_filled_by_its_data_provider(world: World, onboard: dict[str, Any]) -> None:
    with alice(world) as page:
        fragment = page.get(f"/forms/{onboard['id']}/fields", params={"field": "site"}).text
    assert options(fragment) == [("lon", "London"), ("par", "Paris")]


def test_validation_errors_sit_next_to_their_fields_and_keep_the_input(world: World, onboard: dict[str, Any]) -> None:
    with alice(world) as page:
        response = page.post(f"/forms/{onboard['id']}/run", {"name": "ada lovelace", "site": "", "seats": "9"})
    assert response.status_code == 200  # the page is shown again (like the automatic form)
    body = response.text
    assert field_error(body, "name") == "One word starting with a capital"
    assert field_error(body, "site") == "This field is required."
    assert field_error(body, "seats") == "Must be at most 5."
    assert input_value(body, "name") == "ada lovelace" and input_value(body, "seats") == "9"
    with world.server.client(world.alice_key) as client:
        assert client.get("/api/executions", params={"workflow_name": "cf_onboard"}).json() == []


def test_a_hidden_field_is_not_sent_and_a_shown_one_is(world: World, onboard: dict[str, Any]) -> None:
    with alice(world) as page:
        hidden = execution_id(page.post(f"/forms/{onboard['id']}/run", {**VALID, "laptop_model": "mac"}))
        shown = execution_id(
            page.post(f"/forms/{onboard['id']}/run", {**VALID, "laptop": "true", "laptop_model": "mac"})
        )
    first, second = wait_done(world, world.alice_key, hidden), wait_done(world, world.alice_key, shown)
    assert first["status"] == "Completed", first
    assert first["result"]["laptop_model"] is None and first["input_data"].get("laptop_model") is None
    assert second["result"]["laptop"] is True and second["result"]["laptop_model"] == "mac"
    assert second["result"]["seats"] == 2 and second["trigger"] == "form"


def test_workflow_validation_is_reported_on_its_field(world: World) -> None:
    # A schema that lets through what the workflow refuses: seats must be an integer.
    schema = {
        "fields": [
            {"name": "name", "type": "text"},
            {"name": "site", "type": "text"},
            {"name": "seats", "type": "text"},
        ]
    }
    form = create_form(
        world, name="Loose", access_level="authenticated", organization_id=world.org_a, form_schema=schema
    )
    with alice(world) as page:
        response = page.post(f"/forms/{form['id']}/run", {"name": "Ada", "site": "lon", "seats": "lots"})
    assert response.status_code == 200  # the page is shown again (like the automatic form)
    assert field_error(response.text, "seats")
    assert input_value(response.text, "seats") == "lots"


def test_file_upload_reaches_the_workflow(world: World, onboard: dict[str, Any]) -> None:
    content = "Signed by Ada.\n" * 100
    with alice(world) as page:
        response = page.http.post(
            f"/forms/{onboard['id']}/run",
            data={**VALID, "_csrf_token": page.csrf},
            files={"contract": ("contract.txt", content.encode(), "text/plain")},
        )
    run = wait_done(world, world.alice_key, execution_id(response))
    assert run["status"] == "Completed", run
    assert run["result"]["contract_text"] == content
    assert run["result"]["contract_name"] == "contract.txt" and run["result"]["contract_type"] == "text/plain"
    contract = run["input_data"]["contract"]
    assert contract["path"].startswith(f"uploads/{onboard['id']}/") and contract["path"].endswith("/contract.txt")
    assert contract["size"] == len(content.encode())


def test_upload_checks_type_and_size(world: World, onboard: dict[str, Any]) -> None:
    url = f"/forms/{onboard['id']}/run"
    with alice(world) as page:
        wrong_type = page.http.post(
            url,
            data={**VALID, "_csrf_token": page.csrf},
            files={"contract": ("x.exe", b"MZ", "application/x-msdownload")},
        )
        too_big = page.http.post(
            url,
            data={**VALID, "_csrf_token": page.csrf},
            files={"contract": ("big.txt", b"a" * (MAX_FILE_BYTES + 1), "text/plain")},
        )
        far_too_big = page.http.post(
            url,
            data={**VALID, "_csrf_token": page.csrf},
            files={"contract": ("huge.txt", b"a" * (3 * 1024 * 1024), "text/plain")},
        )
    assert wrong_type.status_code == 200 and "accepted are .txt, text/plain" in (
        field_error(wrong_type.text, "contract") or ""
    )
    assert too_big.status_code == 200 and "big.txt" in (field_error(too_big.text, "contract") or "")
    assert input_value(too_big.text, "name") == "Ada"
    assert far_too_big.status_code == 413 and "too large" in text(far_too_big.text)


def test_form_posts_need_the_csrf_token(world: World, onboard: dict[str, Any]) -> None:
    with alice(world) as page:
        assert page.post(f"/forms/{onboard['id']}/run", VALID, csrf=False).status_code == 403
    with httpx.Client(base_url=world.server.url) as anonymous:
        anonymous.get(f"/public/forms/{onboard['id']}")
        assert anonymous.post(f"/public/forms/{onboard['id']}/run", data=VALID).status_code == 403


def test_form_pages_need_a_login(world: World, onboard: dict[str, Any]) -> None:
    with httpx.Client(base_url=world.server.url) as anonymous:
        response = anonymous.get(f"/forms/{onboard['id']}")
    assert response.status_code == 303 and response.headers["location"].startswith("/login")


def test_public_form_runs_without_login_as_the_public_form_account(world: World) -> None:
    form = create_form(world, name="Public onboarding", access_level="public", organization_id=world.org_a)
    with httpx.Client(base_url=world.server.url, timeout=30) as visitor:
        page = visitor.get(f"/public/forms/{form['id']}")
        assert page.status_code == 200 and "Public onboarding" in page.text
        assert "Log out" not in page.text  # no account, no navigation
        response = visitor.post(
            f"/public/forms/{form['id']}/run", data={**VALID, "_csrf_token": visitor.cookies["csrftoken"]}
        )
        assert response.status_code == 303, response.text[:2000]
        run_url = response.headers["location"]
        assert run_url.startswith(f"/public/forms/{form['id']}/runs/")
        run_id = run_url.rsplit("/", 1)[1]
        run = wait_done(world, world.admin_key, run_id)
        assert run["status"] == "Completed", run
        assert run["org_id"] == world.org_a and run["trigger"] == "form"
        shown = visitor.get(run_url)
        assert shown.status_code == 200 and "Completed" in shown.text and "lon" in text(shown.text)
    assert run["executed_by_name"] == "public-form@bifrost.invalid"
    # Another browser cannot look at the run, and non-public forms have no public page.
    with httpx.Client(base_url=world.server.url) as stranger:
        assert stranger.get(run_url).status_code == 404
        internal = create_form(world, name="Internal", access_level="authenticated", organization_id=world.org_a)
        assert stranger.get(f"/public/forms/{internal['id']}").status_code == 404
