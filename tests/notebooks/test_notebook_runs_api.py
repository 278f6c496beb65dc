"""``/api/notebook-runs``: executions whose code runs in a kernel, on SQLite and Postgres."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from bifrost._schema import infer_parameters
from tests.conftest import POSTGRES_URL, create_postgres_database, drop_postgres_database
from tests.platform.authoring_support import make_author
from tests.platform.conftest import World, browser_session, start_world


async def _sample(name: str, times: int = 1) -> None:
    """Sample.

    Args:
        name: Who.
        times: How often.
    """


SCHEMA: dict[str, Any] = infer_parameters(_sample, kind="workflow")[2]


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def live(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """One seeded live server per database for the module (each test uses its own workflow names)."""
    tmp = tmp_path_factory.mktemp("runs")
    if request.param == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp / 'test.db'}"
    elif not POSTGRES_URL:
        pytest.skip("Postgres tests need BIFROST_TEST_POSTGRES_URL (set by .ci/run)")
    else:
        url = create_postgres_database()
    w = start_world(tmp, url)
    try:
        # Notebook runs are for authors (tests/platform/test_attack_notebook_runs.py checks who else is refused).
        make_author(w, w.alice_id, w.org_a)
        make_author(w, w.bob_id, w.org_b)
        yield w
    finally:
        w.server.stop()
        if request.param == "postgres":
            drop_postgres_database(url)


def start(client: httpx.Client, **body: Any) -> httpx.Response:
    payload = {"name": "trial", "params": {"name": "Ada"}, "params_schema": SCHEMA, **body}
    return client.post("/api/notebook-runs", json=payload)


def test_a_run_is_recorded_with_logs_and_its_token_acts_as_the_user(live: World) -> None:
    with live.server.client(live.alice_key) as alice:
        started = start(alice, name="recorded", params={"name": "Ada", "times": "3"})
        assert started.status_code == 201, started.text
        run = started.json()
        assert run["status"] == "Running" and run["trigger"] == "notebook"
        assert run["input_data"] == {"name": "Ada", "times": 3}  # validated and coerced like the submit path
        assert run["context"]["org_id"] == live.org_a and run["context"]["email"] == "alice@a.example"
        assert run["context"]["execution_id"] == run["execution_id"]
        token = run["sdk_token"]
        execution_id = run["execution_id"]

        # The token is an SDK token of this run: Alice in Org A, on the SDK API only.
        with live.server.client(token) as sdk:
            me = sdk.get("/api/sdk/v1/context").json()
            assert (me["user_id"], me["acting_org_id"], me["execution_id"]) == (live.alice_id, live.org_a, execution_id)
            assert sdk.get("/api/executions").status_code == 401  # not the JSON API
            assert sdk.get("/api/sdk/v1/organizations").status_code == 403  # her permissions, not more

        lines = [
            {"level": "INFO", "logger": "__main__", "message": "first", "timestamp": "2030-01-01T10:00:00+00:00"},
            {"level": "warning", "message": "second"},
        ]
        assert alice.post(f"/api/notebook-runs/{execution_id}/logs", json={"lines": lines}).json() == {
            "stored": 2,
            "last_seq": 1,
        }
        assert (
            alice.post(f"/api/notebook-runs/{execution_id}/logs", json={"lines": [{"message": "third"}]}).json()[
                "last_seq"
            ]
            == 2
        )
        finished = alice.post(
            f"/api/notebook-runs/{execution_id}/finish", json={"status": "Completed", "result": [{"a": 1}]}
        )
        assert finished.status_code == 200, finished.text
        assert finished.json()["status"] == "Completed" and finished.json()["result"] == [{"a": 1}]
        assert finished.json()["duration_ms"] >= 0

        # In the history, with its logs, like any other execution.
        listed = alice.get("/api/executions", params={"workflow_name": "recorded"}).json()
        assert [e["execution_id"] for e in listed] == [execution_id]
        logs = alice.get(f"/api/executions/{execution_id}/logs").json()
        assert [(line["level"], line["message"]) for line in logs] == [
            ("INFO", "first"),
            ("WARNING", "second"),
            ("INFO", "third"),
        ]
        # Ended: the token is dead, and the run cannot be reported again.
        with live.server.client(token) as sdk:
            assert sdk.get("/api/sdk/v1/context").status_code == 401
        again = alice.post(f"/api/notebook-runs/{execution_id}/finish", json={"status": "Failed", "error_message": "x"})
        assert again.status_code == 409
        assert alice.post(f"/api/notebook-runs/{execution_id}/logs", json={"lines": []}).status_code == 409


def test_bad_input_is_refused_naming_the_field_and_nothing_is_written(live: World) -> None:
    with live.server.client(live.alice_key) as alice:
        bad_params = start(alice, name="refused", params={"times": "many"})
        assert bad_params.status_code == 422
        fields = {e["field"] for e in bad_params.json()["extra"]["errors"]}
        assert fields == {"name", "times"}
        for body, field in [
            ({"name": " "}, "name"),
            ({"kind": "job"}, "kind"),
            ({"timeout_seconds": 0}, "timeout_seconds"),
            ({"params_schema": {"type": "array"}}, "params_schema"),
        ]:
            response = start(alice, **{"name": "refused", **body})
            assert response.status_code == 422, (body, response.text)
            assert response.json()["extra"]["errors"][0]["field"] == field
        assert alice.get("/api/executions", params={"workflow_name": "refused"}).json() == []

        run = start(alice, name="half-reported").json()
        url = f"/api/notebook-runs/{run['execution_id']}"
        bad_lines = alice.post(f"{url}/logs", json={"lines": [{"level": "LOUD", "message": "x"}]})
        assert bad_lines.status_code == 422 and bad_lines.json()["extra"]["errors"][0]["field"] == "lines.0.level"
        naive = alice.post(f"{url}/logs", json={"lines": [{"message": "x", "timestamp": "2030-01-01T10:00:00"}]})
        assert naive.status_code == 422
        assert alice.post(f"{url}/finish", json={"status": "Done"}).status_code == 422
        no_message = alice.post(f"{url}/finish", json={"status": "Failed"})
        assert no_message.status_code == 422 and "error_message" in no_message.text
        assert alice.get(f"/api/executions/{run['execution_id']}/logs").json() == []
        assert alice.get(f"/api/executions/{run['execution_id']}").json()["status"] == "Running"


def test_only_the_runner_reports_and_other_organizations_cannot_see_it(live: World) -> None:
    with live.server.client(live.alice_key) as alice:
        run = start(alice).json()
    url = f"/api/notebook-runs/{run['execution_id']}"
    with live.server.client(live.bob_key) as bob:
        assert bob.post(f"{url}/finish", json={"status": "Completed"}).status_code == 404
        assert bob.get(f"/api/executions/{run['execution_id']}").status_code == 404
    with live.server.client(live.admin_key) as admin:
        # An admin sees it but cannot write another user's outcome.
        assert admin.get(f"/api/executions/{run['execution_id']}").status_code == 200
        assert admin.post(f"{url}/finish", json={"status": "Completed"}).status_code == 403
        # Another org, named by a regular user: refused without saying whether it exists.
    with live.server.client(live.alice_key) as alice:
        assert start(alice, org="Org B").status_code == 403
        # A pool execution cannot be finished through this door.
        assert alice.post("/api/notebook-runs/not-a-run/finish", json={"status": "Completed"}).status_code == 404
    with live.server.client(run["sdk_token"]) as sdk:  # an execution token cannot start runs
        assert sdk.post("/api/notebook-runs", json={"name": "x", "params_schema": SCHEMA}).status_code == 401


def test_a_workflow_limited_key_cannot_start_notebook_runs(live: World) -> None:
    with browser_session(live) as session:  # keys are minted by logged-in users only
        limited = session.post("/api/api-keys", json={"name": "one", "workflow_id": "add"})
    assert limited.status_code == 201, limited.text
    with live.server.client(limited.json()["key"]) as client:
        refused = start(client)
    assert refused.status_code == 403 and "limited to one workflow" in refused.json()["detail"]


def test_a_run_whose_kernel_never_reports_is_failed_and_its_token_expires(
    live: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    from app.engine import external_runs

    monkeypatch.setattr(external_runs, "GRACE_SECONDS", 0.0)
    with live.server.client(live.alice_key) as alice:
        run = start(alice, timeout_seconds=1).json()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            state = alice.get(f"/api/executions/{run['execution_id']}").json()
            if state["status"] != "Running":
                break
            time.sleep(0.2)
        assert state["status"] == "Failed" and state["error_type"] == "TimeoutError"
        assert "did not report its end" in state["error_message"]
    with live.server.client(run["sdk_token"]) as sdk:
        assert sdk.get("/api/sdk/v1/context").status_code == 401
