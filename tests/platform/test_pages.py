"""The HTML pages over real HTTP (no browser): access rules, CSRF, forms, providers, executions."""

from __future__ import annotations

import html
import json
import re
from collections.abc import Iterator

import httpx
import pytest

from app.web.pages import PAGE_HANDLERS
from tests.platform.conftest import World
from tests.platform.pages_support import (
    admin,
    alice,
    bob,
    execution_id,
    field_error,
    field_html,
    input_value,
    options,
    provider_runs,
    start_pages_world,
    text,
    wait_done,
)

VALID_ACCESS = {
    "department": "eng",
    "person": "ada",
    "start": "2026-02-03",
    "seats": "2",
    "level": "write",
    "extras": ["vpn", "crm"],
    "urgent": "true",
    "notes": '{"ticket": 42}',
    "steps": "1",
}


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """One seeded live server (SQLite) for this module, with the login throttle raised."""
    w = start_pages_world(tmp_path_factory.mktemp("pages"))
    try:
        yield w
    finally:
        w.server.stop()


def _page_post_paths() -> list[str]:
    """Every POST route of the HTML pages, with placeholder ids."""
    paths = []
    for handler in PAGE_HANDLERS:
        routes = [handler] if not isinstance(handler, type) else [getattr(handler, n) for n in dir(handler)]
        for route in routes:
            methods = getattr(route, "http_methods", None)
            if not methods or "POST" not in methods:
                continue
            base = getattr(handler, "path", "") if isinstance(handler, type) else ""
            for path in route.paths:
                full = ("/" + base.strip("/") + "/" + path.strip("/")).rstrip("/") or "/"
                paths.append(re.sub(r"\{[^}]+\}", "00000000-0000-0000-0000-000000000000", full.replace("//", "/")))
    return sorted(set(paths))


# ----- access -------------------------------------------------------------------------------------
def test_every_page_post_needs_the_csrf_token(world: World) -> None:
    paths = _page_post_paths()
    # the areas this test must cover (new POST routes join automatically)
    for expected in ("/login", "/logout", "/session/org", "/workflows/add/run", "/api-keys", "/admin/users"):
        assert any(re.fullmatch(p.replace("00000000-0000-0000-0000-000000000000", "[^/]+"), expected) for p in paths)
    with admin(world) as client:
        for path in paths:
            response = client.post(path, {"name": "x"}, csrf=False)
            assert response.status_code == 403, (path, response.status_code, response.text[:300])
        # and a wrong token is refused like a missing one
        response = client.http.post("/api-keys", data={"name": "x", "_csrf_token": "forged"})
        assert response.status_code == 403
        keys = client.get("/api-keys").text
        assert '<td data-label="Name">x</td>' not in keys


def test_pages_send_visitors_without_a_session_to_login(world: World) -> None:
    with httpx.Client(base_url=world.server.url) as client:
        for path in ("/", "/workflows", "/workflows/add", "/executions", "/admin/users", "/api-keys"):
            response = client.get(path)
            assert response.status_code == 303, path
            assert response.headers["location"] == f"/login?next={path}"
        response = client.get("/executions", params={"status": "Failed"})
        assert response.headers["location"] == "/login?next=/executions%3Fstatus%3DFailed"
        # htmx requests are told to load the login page instead of swapping it into a fragment
        response = client.get("/workflows/add/fields", params={"field": "a"}, headers={"HX-Request": "true"})
        assert response.status_code == 200 and response.headers["hx-redirect"].startswith("/login?next=")
        # an API key acts as its user on pages too (as on the JSON API)
        keyed = client.get("/workflows", headers={"Authorization": f"Bearer {world.alice_key}"})
        assert keyed.status_code == 200 and "ff_request_access" in keyed.text


def test_login_page_redirects_only_to_local_paths(world: World) -> None:
    with httpx.Client(base_url=world.server.url) as client:
        client.get("/login")
        response = client.post(
            "/login",
            data={
                "email": "alice@a.example",
                "password": "alice-password",
                "next": "//evil.example/x",
                "_csrf_token": client.cookies["csrftoken"],
            },
        )
        assert response.status_code == 303 and response.headers["location"] == "/"


def test_regular_users_get_403_on_admin_pages(world: World) -> None:
    with alice(world) as client:
        for path in ("/admin/organizations", "/admin/users", "/admin/roles", f"/admin/roles/{world.org_a}"):
            response = client.get(path)
            assert response.status_code == 403, path
            assert "Not allowed" in response.text and "Only platform admins" in response.text
        for path, data in (
            ("/admin/organizations", {"name": "Sneaky"}),
            ("/admin/users", {"email": "x@a.example", "name": "X", "password": "long-enough-1"}),
            ("/admin/roles", {"name": "r"}),
            (f"/admin/users/{world.bob_id}/active", {"is_active": "false"}),
            (f"/admin/organizations/{world.org_b}/active", {"is_active": "false"}),
            ("/session/org", {"org_id": world.org_b}),
        ):
            assert client.post(path, data).status_code == 403, path
        home = client.get("/").text
        assert "/admin/users" not in home and "Acting in" not in home  # no admin navigation
    with world.server.client(world.admin_key) as api:
        bob_user = api.get(f"/api/users/{world.bob_id}").json()
        orgs = {o["id"]: o for o in api.get("/api/organizations").json()}
    assert bob_user["is_active"] is True and orgs[world.org_b]["is_active"] is True


def test_other_organizations_executions_are_404(world: World) -> None:
    with bob(world) as client:
        run = execution_id(client.post("/workflows/ff_count/run", {"n": "2"}))
    wait_done(world, world.bob_key, run)
    with alice(world) as client:
        for path in (f"/executions/{run}", f"/executions/{run}/live", f"/workflows/ff_count?from={run}"):
            response = client.get(path)
            assert response.status_code == 404, path
            assert "not found" in response.text.lower()
        assert client.post(f"/executions/{run}/rerun").status_code == 404
        assert client.post(f"/executions/{run}/cancel").status_code == 404
        history = client.get("/executions").text
        assert run not in history
    # an unknown id reads the same as someone else's
    with alice(world) as client:
        assert client.get("/executions/does-not-exist").status_code == 404


# ----- the automatic form --------------------------------------------------------------------------
def test_form_renders_one_input_per_parameter(world: World) -> None:
    with alice(world) as client:
        page = client.get("/workflows/ff_request_access").text
    assert 'type="date" id="f-start" name="start" required' in page
    seats = field_html(page, "seats")
    assert 'type="number"' in seats and 'step="1"' in seats and 'min="1"' in seats and 'max="10"' in seats
    assert input_value(page, "seats") == "1"  # the default
    assert options(field_html(page, "level")) == [("read", "read"), ("write", "write")]
    extras = field_html(page, "extras")
    assert [v for v in re.findall(r'name="extras" value="([^"]+)"', extras)] == ["vpn", "mail", "crm"]
    assert 'type="checkbox" id="f-urgent" name="urgent"' in page
    assert "<textarea" in field_html(page, "notes")
    assert "Department of the person." in field_html(page, "department")  # help text from the docstring
    # the person's choices need a department first
    assert "Fill in Department first" in field_html(page, "person")
    with alice(world) as client:
        typed = client.get("/workflows/ff_summary").text
    assert 'type="date" id="f-when"' in typed and "One per line" in field_html(typed, "tags")


def test_provider_select_loads_then_comes_from_the_cache(world: World) -> None:
    before = len(provider_runs(world, "ff_departments"))
    with alice(world) as client:
        # first visit: not cached, so the page asks htmx to load the choices after it is shown
        first = client.get("/workflows/ff_request_access").text
        department = field_html(first, "department")
        if "Loading choices" in department:
            assert 'hx-get="/workflows/ff_request_access/fields?field=department"' in first
            loaded = client.get("/workflows/ff_request_access/fields", params={"field": "department"})
            assert loaded.status_code == 200
            assert options(loaded.text) == [("eng", "Engineering"), ("sales", "Sales")]
        # now it is cached: the choices are in the page itself and no provider runs
        runs_after_load = len(provider_runs(world, "ff_departments"))
        for _ in range(3):
            page = client.get("/workflows/ff_request_access").text
            assert options(field_html(page, "department")) == [("eng", "Engineering"), ("sales", "Sales")]
    assert len(provider_runs(world, "ff_departments")) == runs_after_load <= before + 1
    # the cache is per organization: Bob's organization gets its own run (and its own context)
    with bob(world) as client:
        client.get("/workflows/ff_request_access/fields", params={"field": "department"})
    runs = provider_runs(world, "ff_departments")
    assert {r["org_id"] for r in runs} >= {world.org_a, world.org_b}
    assert all(r["status"] == "Completed" and r["trigger"] == "form" for r in runs)


def test_dependent_provider_reruns_with_the_other_fields_value(world: World) -> None:
    url = "/workflows/ff_request_access/fields"
    with alice(world) as client:
        page = client.get("/workflows/ff_request_access").text
        # the department field tells htmx to refresh its dependents when it changes
        assert f'hx-get="{url}?changed=department" hx-trigger="change"' in field_html(page, "department")
        eng = client.get(url, params={"changed": "department", "department": "eng", "person": ""}).text
        assert 'id="field-person" hx-swap-oob="outerHTML"' in eng
        assert options(eng) == [("ada", "Ada Lovelace"), ("grace", "Grace Hopper")]
        # a choice that is still offered stays selected; one that disappeared is cleared
        kept = client.get(url, params={"changed": "department", "department": "eng", "person": "grace"}).text
        assert re.search(r'<option value="grace" selected>', kept)
        sales = client.get(url, params={"changed": "department", "department": "sales", "person": "grace"}).text
        assert options(sales) == [("don", "Don Draper")]
        assert not re.search(r'<option value="don" selected>', sales) and '<option value="" selected>' in sales
        # same inputs again: served from the cache (one run per department and organization)
        client.get(url, params={"changed": "department", "department": "eng"})
    runs = [r for r in provider_runs(world, "ff_people") if r["org_id"] == world.org_a]
    assert sorted(r["input_data"]["department"] for r in runs) == ["eng", "sales"]
    with alice(world) as client:
        unknown = client.get(url, params={"changed": "nope"})
        assert unknown.status_code == 404


def test_failing_providers_show_an_error_on_their_field_only(world: World) -> None:
    url = "/workflows/ff_broken_choices/fields"
    with alice(world) as client:
        page = client.get("/workflows/ff_broken_choices")
        assert page.status_code == 200 and 'id="f-label"' in page.text
        broken = client.get(url, params={"field": "source"})
        shape = client.get(url, params={"field": "shape"})
        again = client.get(url, params={"field": "source"})
        submitted = client.post("/workflows/ff_broken_choices/run", {"label": "ok", "source": "anything"})
        without = client.post("/workflows/ff_broken_choices/run", {"label": "ok"})
    assert broken.status_code == 200
    assert (
        field_error(broken.text, "source") == "Could not load the choices: The directory is offline; try again later."
    )
    assert "returned dict, expected a list" in (field_error(shape.text, "shape") or "")
    assert field_error(again.text, "source")  # failures are never cached
    assert len(provider_runs(world, "ff_broken")) >= 2
    # a value that cannot be checked against the choices is refused; leaving the field empty works
    assert submitted.status_code == 200 and "Could not load the choices" in (
        field_error(submitted.text, "source") or ""
    )
    run = execution_id(without)
    assert wait_done(world, world.alice_key, run)["result"] == "ok"


# ----- submitting --------------------------------------------------------------------------------
def test_validation_errors_sit_next_to_their_fields_and_keep_the_input(world: World) -> None:
    with world.server.client(world.alice_key) as api:
        before = len(api.get("/api/executions", params={"workflow_name": "ff_request_access"}).json())
    bad = {
        **VALID_ACCESS,
        "person": "mallory",  # not one of the provider's choices
        "start": "",  # required
        "seats": "99",  # above the bound
        "notes": "{not json",
        "level": "write",
    }
    with alice(world) as client:
        response = client.post("/workflows/ff_request_access/run", bad)
    assert response.status_code == 200
    page = response.text
    assert "Please correct the highlighted fields." in page
    assert field_error(page, "person") == "Choose one of the listed options."
    assert field_error(page, "start") == "this parameter is required"
    assert field_error(page, "seats") == "Input should be less than or equal to 10"
    assert (field_error(page, "notes") or "").startswith("not valid JSON")
    assert field_error(page, "department") is None and field_error(page, "level") is None
    # what the user typed is still there
    assert input_value(page, "seats") == "99"
    assert "{not json</textarea>" in page
    assert re.search(r'<option value="write" selected>', field_html(page, "level"))
    assert re.search(r'value="crm"[^>]*checked', field_html(page, "extras"))
    assert re.search(r'id="f-urgent" name="urgent" value="true" checked', page)
    assert re.search(r'<option value="eng" selected>', field_html(page, "department"))
    with world.server.client(world.alice_key) as api:
        after = len(api.get("/api/executions", params={"workflow_name": "ff_request_access"}).json())
    assert after == before  # nothing was written


def test_submit_runs_with_typed_parameters_and_shows_the_result_table(world: World) -> None:
    with alice(world) as client:
        client.get("/workflows/ff_request_access/fields", params={"changed": "department", "department": "eng"})
        run = execution_id(client.post("/workflows/ff_request_access/run", VALID_ACCESS))
        done = wait_done(world, world.alice_key, run)
        page = client.get(f"/executions/{run}").text
    assert done["status"] == "Completed" and done["trigger"] == "form" and done["org_id"] == world.org_a
    assert done["input_data"] == {
        "department": "eng",
        "person": "ada",
        "start": "2026-02-03",
        "seats": 2,
        "level": "write",
        "extras": ["vpn", "crm"],
        "urgent": True,
        "notes": {"ticket": 42},
        "steps": 1,
    }
    table = re.search(r'<table class="stack" id="result-table">.*?</table>', page, re.S)
    assert table
    assert text(table.group(0)).startswith("person department level seats ada eng write 2 manager eng read 0")
    assert "step 1 of 1 for ada" in page  # the stored logs
    assert "alice@a.example" in page and "Org A" in page and "Completed" in page
    assert "sse-connect" not in page  # finished: no live stream


@pytest.mark.parametrize(
    ("workflow", "data", "expect"),
    [
        (
            "ff_summary",
            {"name": "Ada", "tags": "a\nb"},
            ['id="result-object"', '<th scope="row">name</th><td>Ada</td>'],
        ),
        ("ff_count", {"n": "21"}, ['<pre class="json" id="result-json">42</pre>']),
        ("ff_fails", {"reason": "Quota <exceeded>"}, ['id="result-error"', "Failed:</strong> Quota &lt;exceeded&gt;"]),
    ],
)
def test_result_is_shown_by_its_shape(world: World, workflow: str, data: dict, expect: list[str]) -> None:
    with alice(world) as client:
        run = execution_id(client.post(f"/workflows/{workflow}/run", data))
        wait_done(world, world.alice_key, run)
        page = client.get(f"/executions/{run}").text
    for fragment in expect:
        assert fragment in page


def test_unexpected_errors_are_generic_for_users_and_detailed_for_admins(world: World) -> None:
    with alice(world) as client:
        run = execution_id(client.post("/workflows/crashes/run", {}))
        wait_done(world, world.alice_key, run)
        user_page = client.get(f"/executions/{run}").text
    assert "An administrator can see the details" in user_page and "secret internal detail" not in user_page
    with admin(world) as client:
        admin_page = client.get(f"/executions/{run}").text
    assert "secret internal detail" in admin_page and "Traceback (admins only)" in admin_page


def test_live_stream_sends_html_log_lines_then_status_result_and_done(world: World) -> None:
    with alice(world) as client:
        run = execution_id(client.post("/workflows/slow_logger/run", {"steps": "3", "delay": "0.2"}))
        page = client.get(f"/executions/{run}").text
        events: list[tuple[str, str, str]] = []
        with client.http.stream("GET", f"/executions/{run}/live") as stream:
            assert stream.headers["content-type"].startswith("text/event-stream")
            event, ident, data = "", "", []
            for line in stream.iter_lines():
                if line.startswith("event: "):
                    event = line[7:]
                elif line.startswith("id: "):
                    ident = line[4:]
                elif line.startswith("data: "):
                    data.append(line[6:])
                elif line == "" and event:
                    events.append((event, ident, "\n".join(data)))
                    if event == "done":
                        break
                    event, ident, data = "", "", []
    if "Completed" not in page:
        assert f'sse-connect="/executions/{run}/live?after=' in page and 'sse-close="done"' in page
    logs = [e for e in events if e[0] == "log"]
    assert [i for _, i, _ in logs] == ["0", "1", "2"]
    for index, (_, _, data) in enumerate(logs):
        assert data.startswith('<li><span class="lvl lvl-INFO">INFO</span>') and text(data).endswith(f"step {index}")
    assert [e[0] for e in events[-3:]] == ["status", "result", "done"]
    assert "Completed" in events[-3][2] and '<pre class="json" id="result-json">3</pre>' in events[-2][2]
    # a reconnecting browser resumes after the last line it got (Last-Event-ID)
    with alice(world) as client:
        with client.http.stream("GET", f"/executions/{run}/live", headers={"Last-Event-ID": "1"}) as stream:
            body = ""
            for line in stream.iter_lines():
                body += line + "\n"
                if line == "data: done":
                    break
    assert "step 2" in body and "step 0" not in body and "step 1" not in body


def test_cancel_button_stops_a_running_execution(world: World) -> None:
    with alice(world) as client:
        run = execution_id(client.post("/workflows/sleeper/run", {"seconds": "30"}))
        page = client.get(f"/executions/{run}").text
        assert 'id="cancel-button"' in page
        response = client.post(f"/executions/{run}/cancel")
        assert response.status_code == 303 and response.headers["location"] == f"/executions/{run}"
        after = client.get(f"/executions/{run}").text
        # cancelling again (already ended) just shows it
        assert client.post(f"/executions/{run}/cancel").status_code == 303
    assert wait_done(world, world.alice_key, run)["status"] == "Cancelled"
    assert "Cancelled" in after and 'id="cancel-button"' not in after


def test_rerun_repeats_the_parameters_and_edit_prefills_the_form(world: World) -> None:
    with alice(world) as client:
        first = execution_id(client.post("/workflows/ff_summary/run", {"name": "Grace", "when": "2026-03-04"}))
        wait_done(world, world.alice_key, first)
        second = execution_id(client.post(f"/executions/{first}/rerun"))
        again = wait_done(world, world.alice_key, second)
        prefilled = client.get(f"/workflows/ff_summary?from={first}").text
        other = client.get(f"/workflows/ff_count?from={first}").text  # another workflow's run: defaults
    assert second != first
    assert again["input_data"] == {"name": "Grace", "when": "2026-03-04", "tags": None}
    assert again["result"]["name"] == "Grace" and again["trigger"] == "form"
    assert input_value(prefilled, "name") == "Grace" and input_value(prefilled, "when") == "2026-03-04"
    assert input_value(other, "n") == "3"


def test_history_filters_by_workflow_status_user_and_date(world: World) -> None:
    with alice(world) as client:
        ok = execution_id(client.post("/workflows/ff_count/run", {"n": "1"}))
        failed = execution_id(client.post("/workflows/ff_fails/run", {}))
    with bob(world) as client:
        bobs = execution_id(client.post("/workflows/ff_count/run", {"n": "5"}))
    for run, key in ((ok, world.alice_key), (failed, world.alice_key), (bobs, world.bob_key)):
        wait_done(world, key, run)
    with alice(world) as client:
        mine = client.get("/executions").text
        only_failed = client.get("/executions", params={"status": "Failed"}).text
        only_count = client.get("/executions", params={"workflow": "ff_count"}).text
        future = client.get("/executions", params={"start_date": "2999-01-01"}).text
        bad_date = client.get("/executions", params={"start_date": "yesterday"})
    assert ok in mine and failed in mine and bobs not in mine  # users see their own runs only
    assert failed in only_failed and ok not in only_failed
    assert ok in only_count and failed not in only_count
    assert ok not in future and "No executions match." in future
    assert bad_date.status_code == 200 and "start_date: not an ISO date" in bad_date.text
    with admin(world) as client:
        everyone = client.get("/executions", params={"workflow": "ff_count"}).text
        bob_only = client.get("/executions", params={"workflow": "ff_count", "user": world.bob_id}).text
    assert ok in everyone and bobs in everyone
    assert bobs in bob_only and ok not in bob_only


def test_catalogue_lists_metadata_last_runs_and_workspace_errors(world: World) -> None:
    with alice(world) as client:
        run = execution_id(client.post("/workflows/ff_count/run", {"n": "4"}))
        wait_done(world, world.alice_key, run)
        page = client.get("/workflows").text
    card = re.search(r'<article class="card inner" id="wf-ff_request_access">.*?</article>', page, re.S)
    assert card
    content = text(card.group(0))
    assert "Forms" in content and "#forms" in content and "Grant a person access" in content
    assert "seats integer, default 1 — Licences to assign." in content
    assert "Schedule none" in content and "HTTP endpoint off" in content
    count_card = re.search(r'id="wf-ff_count">.*?</article>', page, re.S)
    assert count_card and f"/executions/{run}" in count_card.group(0)
    assert "Workspace import errors" not in page  # users never see them
    workspace = world.server.platform.settings.workspace
    (workspace / "zz_broken.py").write_text("import does_not_exist_anywhere\n")
    try:
        world.server.call(world.server.platform.sync_workspace)
        with admin(world) as client:
            admin_page = client.get("/workflows").text
        assert "Workspace import errors" in admin_page and "zz_broken.py" in admin_page
        assert "does_not_exist_anywhere" in admin_page
    finally:
        (workspace / "zz_broken.py").unlink()
        world.server.call(world.server.platform.sync_workspace)


# ----- administration ----------------------------------------------------------------------------
def test_admin_creates_an_organization_and_a_user_who_can_log_in(world: World) -> None:
    with admin(world) as client:
        duplicate = client.post("/admin/organizations", {"name": "org a", "domain": "x.example"})
        assert duplicate.status_code == 200 and "already exists" in duplicate.text
        assert input_value(duplicate.text, "domain") == "x.example"  # input kept
        created = client.post("/admin/organizations", {"name": "Northwind", "domain": "northwind.example"})
        assert created.status_code == 303
        orgs_page = client.get("/admin/organizations").text
        assert "Organization &#39;Northwind&#39; created." in orgs_page and "northwind.example" in orgs_page
        with world.server.client(world.admin_key) as api:
            org_id = next(o["id"] for o in api.get("/api/organizations").json() if o["name"] == "Northwind")
        short = client.post(
            "/admin/users", {"email": "nina@northwind.example", "name": "Nina", "password": "short", "org_id": org_id}
        )
        assert short.status_code == 200 and "at least" in short.text
        assert (
            input_value(short.text, "email") == "nina@northwind.example"
            and 'name="password" required value' not in short.text
        )
        made = client.post(
            "/admin/users",
            {"email": "nina@northwind.example", "name": "Nina", "password": "nina-password-1", "org_id": org_id},
        )
        assert made.status_code == 303
        assert "nina@northwind.example" in client.get("/admin/users").text
    with httpx.Client(base_url=world.server.url) as fresh:
        fresh.get("/login")
        login = fresh.post(
            "/login",
            data={
                "email": "nina@northwind.example",
                "password": "nina-password-1",
                "_csrf_token": fresh.cookies["csrftoken"],
            },
        )
        assert login.status_code == 303
        assert "Nina (nina@northwind.example)" in fresh.get("/").text


def test_org_switcher_sets_the_acting_organization(world: World) -> None:
    with admin(world) as client:
        roles = client.get("/admin/roles").text
        assert "Roles belong to an organization" in roles
        switched = client.post("/session/org", {"org_id": world.org_a, "next": "/admin/roles"})
        assert switched.status_code == 303 and switched.headers["location"] == "/admin/roles"
        page = client.get("/admin/roles").text
        assert "Now acting in Org A." in page and f'<option value="{world.org_a}" selected>' in page
        # a role in Org A, with Alice assigned
        created = client.post("/admin/roles", {"name": "Helpdesk", "description": "First line"})
        assert created.status_code == 303
        role_url = created.headers["location"]
        role_page = client.get(role_url).text
        assert "alice@a.example" in role_page and "bob@b.example" not in role_page  # only Org A's users
        assert client.post(f"{role_url}/users", {"user_ids": world.alice_id}).status_code == 303
        members = re.search(r'<ul id="role-members">.*?</ul>', client.get(role_url).text, re.S)
        assert members and "alice@a.example" in members.group(0)
        # forms run in the acting organization
        run = execution_id(client.post("/workflows/whoami/run", {}))
        assert wait_done(world, world.admin_key, run)["org_id"] == world.org_a
        # a foreign user cannot be assigned (the service refuses it)
        assert client.post(f"{role_url}/users", {"user_ids": world.bob_id}).status_code == 422
        unknown = client.post("/session/org", {"org_id": "no-such-org"})
        assert unknown.status_code == 404
        back = client.post("/session/org", {"org_id": "", "next": "//evil.example"})
        assert back.headers["location"] == "/"
        assert "Roles belong to an organization" in client.get("/admin/roles").text


def test_api_key_is_shown_once_and_works(world: World) -> None:
    with alice(world) as client:
        response = client.post("/api-keys", {"name": "laptop", "workflow_id": "ff_count"})
        assert response.status_code == 200 and response.headers["cache-control"] == "no-store"
        secret = re.search(r'<code id="new-key">([^<]+)</code>', response.text)
        assert secret and secret.group(1).startswith("bfk_")
        later = client.get("/api-keys").text
        assert secret.group(1) not in later and "laptop" in later
        blank = client.post("/api-keys", {"name": " "})
        assert blank.status_code == 200 and "must be a non-empty string" in blank.text
    with world.server.client(secret.group(1)) as api:
        ran = api.post("/api/workflows/ff_count/execute?wait=true", json={"params": {"n": 1}})
        refused = api.post("/api/workflows/add/execute?wait=true", json={"params": {"a": 1}})
    assert ran.status_code == 200 and ran.json()["result"] == 2
    assert refused.status_code == 403  # limited to one workflow
    with alice(world) as client:
        key_id = re.search(r'action="/api-keys/([^/]+)/revoke"', client.get("/api-keys").text)
        assert key_id
        assert client.post(f"/api-keys/{key_id.group(1)}/revoke").status_code == 303
    with world.server.client(secret.group(1)) as api:
        assert api.get("/api/workflows").status_code == 401
    with bob(world) as client:
        # Bob neither sees nor revokes Alice's keys
        table = re.search(r'<table class="stack" id="keys-table">.*?</table>', client.get("/api-keys").text, re.S)
        assert table and "laptop" not in table.group(0) and "bob key" in table.group(0)
        assert client.post(f"/api-keys/{key_id.group(1)}/revoke").status_code == 404


def test_params_json_round_trip_in_the_detail_page(world: World) -> None:
    with alice(world) as client:
        run = execution_id(
            client.post("/workflows/typed/run", {"day": "2026-01-02", "point": json.dumps({"x": 1, "y": 2})})
        )
        done = wait_done(world, world.alice_key, run)
        page = client.get(f"/executions/{run}").text
    assert done["status"] == "Completed" and done["input_data"]["point"] == {"x": 1, "y": 2}
    params = re.search(r'<table class="kv" id="execution-params">.*?</table>', page, re.S)
    assert params and text(params.group(0)) == 'day 2026-01-02 point {"x": 1, "y": 2} tags null'
    # the result (an object) is shown as key/value pairs, nested values as JSON
    nested = re.search(r'<th scope="row">point</th><td><pre class="json">(.*?)</pre>', page, re.S)
    assert nested and json.loads(html.unescape(nested.group(1))) == {"x": 1, "y": 2}


def test_multi_select_from_a_provider_with_explicit_inputs(world: World) -> None:
    url = "/workflows/ff_notify/fields"
    with alice(world) as client:
        page = client.get("/workflows/ff_notify").text
        assert "Fill in Team first" in field_html(page, "recipients")
        assert f'hx-get="{url}?changed=team"' in field_html(page, "team")
        refreshed = client.get(url, params={"changed": "team", "team": "eng"}).text
        assert re.findall(r'name="recipients" value="([^"]+)"', refreshed) == ["ada", "grace"]
        wrong = client.post("/workflows/ff_notify/run", {"team": "eng", "recipients": ["ada", "don"]})
        assert field_error(wrong.text, "recipients") == "Choose one of the listed options."
        assert re.search(r'value="ada"[^>]*checked', field_html(wrong.text, "recipients"))
        run = execution_id(client.post("/workflows/ff_notify/run", {"team": "eng", "recipients": ["ada", "grace"]}))
    assert wait_done(world, world.alice_key, run)["result"] == {"team": "eng", "recipients": ["ada", "grace"]}
