"""Issue 19 on the demo of `make run`: the workflows catalogue (search, category, compact cards, rendered
docstrings, only what the user may run) and the `bifrost workflows` listing."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest
from playwright.sync_api import expect

from tests.conftest import LiveServer
from tests.e2e.demo_support import ADMIN, CONTOSO_TECH, FABRIKAM_TECH, browser_login, running_demo

ADMIN_ONLY = ("organization_report", "team_directory")  # declared access="admins" in the demo


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    with running_demo(tmp_path_factory.mktemp("polish")) as server:
        yield server


@contextmanager
def _client(server: LiveServer, email: str, password: str) -> Iterator[httpx.Client]:
    """A client signed in through the login page's form."""
    with httpx.Client(base_url=server.url, timeout=60) as client:
        client.get("/login")
        data = {"email": email, "password": password, "next": "/", "_csrf_token": client.cookies["csrftoken"]}
        response = client.post("/login", data=data)
        assert response.status_code == 303, response.text
        yield client


def test_technician_is_not_offered_admin_only_workflows(demo: LiveServer) -> None:
    with _client(demo, *CONTOSO_TECH) as tech, _client(demo, *ADMIN) as admin:
        tech_pages = [tech.get(path).text for path in ("/workflows", "/")]
        admin_page = admin.get("/workflows").text
        direct = tech.get("/workflows/organization_report")
    for name in ADMIN_ONLY:
        assert all(f'id="wf-{name}"' not in page and f">{name}<" not in page for page in tech_pages), name
        assert f'id="wf-{name}"' in admin_page
    assert direct.status_code == 404  # not found, as the API says


def test_docstrings_are_rendered_not_shown_as_rest(demo: LiveServer) -> None:
    with _client(demo, *ADMIN) as admin:
        catalogue = admin.get("/workflows").text
        form = admin.get("/workflows/create_ticket").text
        home = admin.get("/").text
    for page in (catalogue, form, home):
        assert "``" not in page
        assert "store it in the <code>tickets</code> table" in page


def test_search_and_category_filter_the_cards(demo: LiveServer) -> None:
    with _client(demo, *ADMIN) as admin:
        tickets = admin.get("/workflows", params={"q": "ticket"}).text
        knowledge = admin.get("/workflows", params={"category": "Knowledge"}).text
        both = admin.get("/workflows", params={"q": "ask", "category": "Knowledge"}).text
        none = admin.get("/workflows", params={"q": "no such words"}).text
        too_long = admin.get("/workflows", params={"q": "x" * 500})
    shown = {name for name in ("create_ticket", "get_ticket", "close_ticket", "list_open_tickets", "hello_world")}
    assert {n for n in shown if f'id="wf-{n}"' in tickets} == shown - {"hello_world"}
    assert 'id="wf-ask_runbooks"' in knowledge and 'id="wf-add_runbook"' in knowledge
    assert 'id="wf-hello_world"' not in knowledge and "2 of 15 shown" in knowledge
    assert 'id="wf-ask_runbooks"' in both and 'id="wf-add_runbook"' not in both
    assert 'id="wf-none"' in none and "No workflow matches" in none
    assert too_long.status_code == 400  # a clear 4xx, not a 500


def test_catalogue_is_compact_and_filters_while_typing(demo: LiveServer, page: Any) -> None:
    page.set_viewport_size({"width": 1280, "height": 900})
    browser_login(page, demo, *ADMIN)
    page.goto(f"{demo.url}/workflows")
    height = page.evaluate("document.documentElement.scrollHeight")
    assert height < 2200, height  # was 6,000 px for these 15 workflows
    assert page.locator(".wf-grid article").count() == 15
    assert not page.locator("#wf-create_ticket .wf-details table").is_visible()  # details folded away
    page.fill("#wf-q", "runbook")  # htmx swaps the cards as one types (no page script)
    expect(page.locator(".wf-grid article")).to_have_count(2)
    assert "q=runbook" in page.url  # the filter is in the address, so it can be shared and reloaded
    page.select_option("#wf-category", "Service Desk")
    page.wait_for_selector("#wf-none")
    page.fill("#wf-q", "")
    expect(page.locator(".wf-grid article")).to_have_count(4)
    assert page.console_errors == []


def test_cli_workflows_lists_plain_text_summaries(demo: LiveServer) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BIFROST_")}
    env |= {"BIFROST_HOME": str(demo.settings.home), "BIFROST_WORKSPACE": str(demo.settings.workspace)}
    listed = subprocess.run(
        [sys.executable, "-m", "app.cli", "workflows"], env=env, capture_output=True, text=True, timeout=120
    )
    assert listed.returncode == 0, listed.stderr
    line = next(line for line in listed.stdout.splitlines() if line.startswith("create_ticket"))
    assert "store it in the tickets table" in line and "``" not in listed.stdout
    runbook = next(line for line in listed.stdout.splitlines() if line.startswith("add_runbook"))
    assert runbook.endswith("in your organization's runbooks namespace.")  # the summary paragraph, one line
    assert not [line for line in listed.stdout.splitlines() if line.startswith("Platform admins")]


def _incident_form(client: httpx.Client) -> str:
    return next(f["id"] for f in client.get("/api/forms").json() if f["name"] == "Report an incident")


def test_history_hides_lookups_and_shows_organizations_to_admins(demo: LiveServer) -> None:
    with _client(demo, *CONTOSO_TECH) as tech:
        form = _incident_form(tech)
        tech.get(f"/forms/{form}/fields", params={"field": "site", "client": "Contoso"})  # a data-provider lookup
        default = tech.get("/executions").text
        lookups = tech.get("/executions", params={"kind": "data_provider"}).text
        both = tech.get("/executions", params={"kind": "all"}).text
        bad = tech.get("/executions", params={"kind": "everything"})
    assert "get_client_sites" not in default and "get_client_sites" in lookups and "get_client_sites" in both
    assert 'id="flt-kind"' in default and "Organization</th>" not in default  # technicians see one organization
    assert bad.status_code == 200 and "kind: choose one of workflow, data_provider, all" in bad.text
    with _client(demo, *ADMIN) as admin:
        page = admin.get("/executions", params={"kind": "all"}).text
    assert '<th scope="col">Organization</th>' in page and '<td data-label="Organization">Contoso</td>' in page


def test_edit_and_run_reopens_the_custom_form_with_its_values(demo: LiveServer) -> None:
    values = {"client": "Contoso", "site": "Tacoma warehouse", "summary": "Scanner offline", "priority": "low"}
    with _client(demo, *CONTOSO_TECH) as tech:
        form = _incident_form(tech)
        submitted = tech.post(f"/forms/{form}/run", data={**values, "_csrf_token": tech.cookies["csrftoken"]})
        assert submitted.status_code == 303, submitted.text[:2000]
        run = submitted.headers["location"].rsplit("/", 1)[1]
        page = tech.get(f"/executions/{run}").text
        link = re.search(r'<a class="button" id="edit-and-run" href="([^"]+)"', page)
        assert link and link.group(1) == f"/forms/{form}?from={run}"
        reopened = tech.get(link.group(1)).text
        sites = tech.get(
            f"/forms/{form}/fields", params={"field": "site", "client": "Contoso", "site": "Tacoma warehouse"}
        )
    with _client(demo, *FABRIKAM_TECH) as other:  # another organization's run is not theirs to reopen
        foreign = other.get(f"/forms/{form}", params={"from": run})
    assert foreign.status_code == 404 and "Scanner offline" not in foreign.text
    assert 'value="Scanner offline"' in reopened
    assert re.search(r'value="low"[^>]*checked', reopened)
    # the data-provider selects keep their values: the form says which to choose, the choices load with it
    assert re.search(r'name="client"', reopened) and "Contoso" in reopened
    assert re.search(r'<option value="Tacoma warehouse"[^>]*selected', sites.text), sites.text[:1500]


def test_edit_and_run_of_an_automatic_form_run_reopens_the_automatic_form(demo: LiveServer) -> None:
    """The run records which form started it: the workflow's own form is not taken for the custom one."""
    values = {"client": "Contoso", "summary": "Badge reader down", "priority": "low"}
    with _client(demo, *CONTOSO_TECH) as tech:
        form = _incident_form(tech)
        ran = tech.post("/workflows/create_ticket/run", data={**values, "_csrf_token": tech.cookies["csrftoken"]})
        assert ran.status_code in (200, 303), ran.text[:2000]
        run = tech.get("/api/executions", params={"workflow": "create_ticket"}).json()
        rows = run["items"] if isinstance(run, dict) else run
        run_id = next(r["execution_id"] for r in rows if r["input_data"].get("summary") == "Badge reader down")
        page = tech.get(f"/executions/{run_id}").text
    link = re.search(r'<a class="button" id="edit-and-run" href="([^"]+)"', page)
    assert link and link.group(1) == f"/workflows/create_ticket?from={run_id}"
    assert f'href="/forms/{form}?from={run_id}">Edit in' in page  # the custom form stays one click away


def test_contoso_technician_files_tickets_for_contoso_only(demo: LiveServer) -> None:
    with _client(demo, *CONTOSO_TECH) as tech:
        form = _incident_form(tech)
        clients = tech.get(f"/forms/{form}/fields", params={"field": "client"}).text
        fabrikam_sites = tech.get(f"/forms/{form}/fields", params={"field": "site", "client": "Fabrikam"}).text
        values = {"client": "Fabrikam", "site": "Munich lab", "summary": "Printer jam", "priority": "low"}
        refused = tech.post(f"/forms/{form}/run", data={**values, "_csrf_token": tech.cookies["csrftoken"]})
        direct = tech.post(
            "/api/workflows/create_ticket/execute?wait=true",
            json={"params": {"client": "Fabrikam", "summary": "Printer jam"}},
            headers={"X-CSRFToken": tech.cookies["csrftoken"]},
        )
    assert re.findall(r'<option value="([^"]+)"', clients) == ["Contoso"]
    assert "Munich lab" not in fabrikam_sites and "Berlin office" not in fabrikam_sites
    assert refused.status_code == 200 and "Choose one of the listed options." in refused.text  # the form refuses
    assert direct.status_code == 200 and direct.json()["status"] == "Failed"
    assert "You do not work for Fabrikam" in direct.json()["error_message"]
    with _client(demo, *ADMIN) as admin:  # a platform admin acting globally serves every client
        every = admin.get(f"/forms/{form}/fields", params={"field": "client"}).text
    assert re.findall(r'<option value="([^"]+)"', every) == ["Contoso", "Fabrikam"]
