"""The demo of `make run`: `bifrost init --demo` (twice) on a real SQLite file, then a real server using it.

Checks that every demo workflow imports, is listed and works out of the box with no external
service and no AI model: the endpoint over HTTP with an API key, the form with its cascading
data provider, the schedule, the knowledge answer and the config/secret reading health check.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import LiveServer, make_settings

BIFROST = [sys.executable, "-m", "app.cli"]
DEMO_WORKFLOWS = {
    "hello_world",
    "onboard_employee",
    "recent_failures",
    "create_ticket",
    "list_open_tickets",
    "get_ticket",
    "close_ticket",
    "service_health_check",
    "ask_runbooks",
    "add_runbook",
    "psa_connection_status",
}
DEMO_PROVIDERS = {"get_departments", "get_clients", "get_client_sites"}


@dataclass
class Demo:
    root: Path
    env: dict[str, str]
    first_init: str
    second_init: str
    counts_before: dict[str, int]
    counts_after: dict[str, int]


def _bifrost(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*BIFROST, *args], env=env, capture_output=True, text=True, timeout=120)


def _row_counts(database: Path) -> dict[str, int]:
    """Rows of every table of the SQLite file."""
    with sqlite3.connect(database) as conn:
        names = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        return {name: conn.execute(f'SELECT COUNT(*) FROM "{name}"').fetchone()[0] for name in names}


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Demo:
    root = tmp_path_factory.mktemp("demo")
    # Only this test's settings: no database URL, AI model or server address from the environment.
    env = {k: v for k, v in os.environ.items() if not k.startswith("BIFROST_")}
    env |= {"BIFROST_HOME": str(root / "home"), "BIFROST_WORKSPACE": str(root / "workspace"), "BIFROST_WORKERS": "1"}
    first = _bifrost(env, "init", "--demo")
    assert first.returncode == 0, first.stderr
    before = _row_counts(root / "home" / "bifrost.db")
    second = _bifrost(env, "init", "--demo")
    assert second.returncode == 0, second.stderr
    after = _row_counts(root / "home" / "bifrost.db")
    return Demo(root, env, first.stdout, second.stdout, before, after)


@pytest.fixture(scope="module")
def server(demo: Demo) -> Iterator[LiveServer]:
    settings = make_settings(demo.root, workspace=demo.root / "workspace", login_rate_limit_per_minute=10_000)
    live = LiveServer(settings).start()
    try:
        yield live
    finally:
        live.stop()


@pytest.fixture(scope="module")
def admin_key(demo: Demo, server: LiveServer) -> str:
    # The way the README says to get one.
    created = _bifrost(demo.env, "api-key", "demo test")
    assert created.returncode == 0, created.stderr
    return created.stdout.strip()


def run(server: LiveServer, key: str, workflow: str, /, **params: Any) -> dict[str, Any]:
    """Execute a workflow and wait for it; returns the execution."""
    with server.client(key) as client:
        response = client.post(f"/api/workflows/{workflow}/execute", params={"wait": "true"}, json={"params": params})
    assert response.status_code == 200, response.text
    return response.json()


def wait_done(server: LiveServer, key: str, execution_id: str) -> dict[str, Any]:
    """Poll an execution until it ends (30 s at most)."""
    deadline = time.monotonic() + 30
    with server.client(key) as client:
        while (done := client.get(f"/api/executions/{execution_id}").json())["status"] not in ("Completed", "Failed"):
            assert time.monotonic() < deadline, done
            time.sleep(0.1)
    return done  # type: ignore[no-any-return]


def test_init_demo_twice_changes_nothing(demo: Demo) -> None:
    first = demo.first_init
    assert "Demo config psa_api_token set (secret)" in first
    assert "Demo form added: Report an incident" in first
    assert "Demo runbooks stored in knowledge namespace 'runbooks'" in first
    assert "demo-not-a-real-token" not in first
    assert "Demo " not in demo.second_init  # nothing added, set or stored the second time
    assert demo.counts_after == demo.counts_before
    assert demo.counts_before["form"] == 1 and demo.counts_before["knowledge_document"] == 3


def test_workspace_syncs_without_errors_and_lists_everything(server: LiveServer, admin_key: str) -> None:
    with server.client(admin_key) as client:
        assert client.get("/api/workspace/errors").json() == []
        workflows = {w["name"]: w for w in client.get("/api/workflows").json()}
        providers = {p["name"] for p in client.get("/api/data-providers").json()}
        schedules = client.get("/api/schedules").json()
        chat_settings = client.get("/api/ai/settings").json()
    assert chat_settings["knowledge_namespaces"] == ["runbooks"]  # the assistant answers from the runbooks
    assert DEMO_WORKFLOWS <= set(workflows)
    assert DEMO_PROVIDERS <= providers
    assert [(s["workflow_name"], s["cron"]) for s in schedules] == [("service_health_check", "0 * * * *")]
    assert {name for name, w in workflows.items() if w["is_tool"]} >= {"create_ticket", "get_ticket", "ask_runbooks"}


def test_ticket_endpoint_then_query_lookup_and_close(server: LiveServer, admin_key: str) -> None:
    body = {"client": "Contoso", "site": "Seattle HQ", "summary": "Core switch down", "priority": "high"}
    with server.client() as anonymous:
        assert anonymous.post("/api/endpoints/create_ticket", json=body).status_code == 401
    with server.client(admin_key) as client:
        created = client.post("/api/endpoints/create_ticket", json={**body, "source": "webhook"})
        wrong_site = client.post("/api/endpoints/create_ticket", json={**body, "site": "Berlin office"})
    assert created.status_code == 200, created.text
    ticket = created.json()
    assert ticket["status"] == "open" and ticket["source"] == "webhook" and ticket["opened_by"] == "admin@example.com"
    assert wrong_site.status_code >= 400 and "has no site 'Berlin office'" in wrong_site.text

    listed = run(server, admin_key, "list_open_tickets", client="Contoso", priority="high")
    assert listed["status"] == "Completed", listed
    assert ticket["ticket_id"] in [t["ticket_id"] for t in listed["result"]]
    found = run(server, admin_key, "get_ticket", ticket_id=ticket["ticket_id"])
    assert found["result"]["summary"] == "Core switch down"
    closed = run(server, admin_key, "close_ticket", ticket_id=ticket["ticket_id"], resolution="Replaced PSU")
    assert closed["result"]["status"] == "closed"
    after = run(server, admin_key, "list_open_tickets", client="Contoso")
    assert ticket["ticket_id"] not in [t["ticket_id"] for t in after["result"]]
    missing = run(server, admin_key, "get_ticket", ticket_id="nope")
    assert missing["status"] == "Failed" and "No ticket 'nope'" in missing["error_message"]


def test_technician_uses_the_form_with_cascading_sites(server: LiveServer, admin_key: str) -> None:
    with httpx.Client(base_url=server.url, timeout=60) as page:
        page.get("/login")
        login = {"email": "tech@contoso.example", "password": "contoso-tech", "next": "/"}
        assert page.post("/login", data={**login, "_csrf_token": page.cookies["csrftoken"]}).status_code == 303
        forms = page.get("/api/forms").json()
        form = next(f for f in forms if f["name"] == "Report an incident")
        sites = page.get(f"/forms/{form['id']}/fields", params={"field": "site", "client": "Contoso"}).text
        assert "Tacoma warehouse" in sites and "Munich lab" not in sites  # Fabrikam's are not offered (issue 19)
        values = {"client": "Contoso", "site": "Tacoma warehouse", "summary": "Scanner offline", "priority": "low"}
        submitted = page.post(f"/forms/{form['id']}/run", data={**values, "_csrf_token": page.cookies["csrftoken"]})
    assert submitted.status_code == 303, submitted.text[:2000]
    done = wait_done(server, admin_key, submitted.headers["location"].rsplit("/", 1)[1])
    assert done["status"] == "Completed", done
    assert done["result"]["site"] == "Tacoma warehouse" and done["result"]["opened_by"] == "tech@contoso.example"


def test_runbook_answer_without_a_model(server: LiveServer, admin_key: str) -> None:
    answer = run(server, admin_key, "ask_runbooks", question="A user lost the phone with their authenticator app")
    assert answer["status"] == "Completed", answer
    assert answer["result"]["model"] is None
    assert answer["result"]["sources"][0]["runbook"] == "mfa-reset"
    assert "Require re-register MFA" in answer["result"]["answer"]
    stored = run(server, admin_key, "add_runbook", key="backup-restore", content="Runbook: restore a file from backup.")
    assert stored["status"] == "Completed", stored


def test_scheduled_health_check_reads_config_and_writes_a_report(server: LiveServer, admin_key: str) -> None:
    result = run(server, admin_key, "service_health_check", timeout=0.5)
    assert result["status"] == "Completed", result
    assert result["result"]["checked"] == 1 and result["result"]["report"].startswith("reports/health-")
    with server.client(admin_key) as client:
        logs = client.get(f"/api/executions/{result['execution_id']}/logs").text
        report = client.get("/api/files/content", params={"path": result["result"]["report"]})
    assert "PSA token configured" in logs and "demo-not-a-real-token" not in logs
    assert report.status_code == 200 and report.text.startswith("target,status,ms")

    # A real firing of a schedule declared in code acts as the Platform scheduler account (global scope,
    # platform powers: docs/triggers.md): it must work too.
    with server.client(admin_key) as client:
        schedule = client.get("/api/schedules").json()[0]
    fired = server.call(lambda: server.platform.scheduler.fire(schedule["id"]))
    assert fired is not None and fired.outcome == "submitted", fired
    execution = wait_done(server, admin_key, fired.execution_id)
    assert execution["status"] == "Completed", execution
    assert execution["trigger"] == "schedule" and execution["result"]["run_by"] == "platform-scheduler@bifrost.invalid"


def test_simple_demo_workflows_complete_and_the_psa_one_explains_its_setup(server: LiveServer, admin_key: str) -> None:
    cases: list[tuple[str, dict[str, Any]]] = [
        ("hello_world", {"name": "Ada"}),
        ("recent_failures", {}),
        ("organization_report", {}),
        ("team_directory", {}),
        ("workflow_catalogue", {}),
        ("long_running_task", {"seconds": 1}),
    ]
    for workflow, params in cases:
        execution = run(server, admin_key, workflow, **params)
        assert execution["status"] == "Completed", (workflow, execution)
    psa = run(server, admin_key, "psa_connection_status")
    assert psa["status"] == "Failed" and psa["user_error"]
    assert "HaloPSA integration is not set up" in psa["error_message"]
