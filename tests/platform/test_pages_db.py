"""The main page flow on both databases: provider choices, submit, history, detail, re-run."""

from __future__ import annotations

import re
from pathlib import Path

from tests.platform.pages_support import (
    alice,
    bob,
    execution_id,
    field_html,
    options,
    provider_runs,
    start_pages_world,
    text,
    wait_done,
)


def test_form_flow_on_each_database(database_url: str, tmp_path: Path) -> None:
    world = start_pages_world(tmp_path, database_url)
    try:
        with alice(world) as client:
            fields = "/workflows/ff_request_access/fields"
            departments = client.get(fields, params={"field": "department"}).text
            assert options(departments) == [("eng", "Engineering"), ("sales", "Sales")]
            people = client.get(fields, params={"changed": "department", "department": "sales"}).text
            assert options(people) == [("don", "Don Draper")]
            page = client.get("/workflows/ff_request_access").text
            assert options(field_html(page, "department")) == [("eng", "Engineering"), ("sales", "Sales")]
            run = execution_id(
                client.post(
                    "/workflows/ff_request_access/run",
                    {"department": "sales", "person": "don", "start": "2026-05-01", "steps": "1", "extras": "mail"},
                )
            )
            done = wait_done(world, world.alice_key, run)
            assert done["status"] == "Completed"
            assert done["input_data"]["extras"] == ["mail"] and done["input_data"]["seats"] == 1
            detail = client.get(f"/executions/{run}").text
            table = re.search(r'id="result-table">.*?</table>', detail, re.S)
            assert table and "don sales read 1" in text(table.group(0))
            again = execution_id(client.post(f"/executions/{run}/rerun"))
            assert wait_done(world, world.alice_key, again)["input_data"] == done["input_data"]
            history = client.get("/executions", params={"workflow": "ff_request_access", "status": "Completed"}).text
            assert run in history and again in history
        with bob(world) as client:
            assert client.get(f"/executions/{run}").status_code == 404
            assert run not in client.get("/executions").text
        # one provider run per provider and inputs, all in Alice's organization
        assert len(provider_runs(world, "ff_departments")) == 1
        assert [r["org_id"] for r in provider_runs(world, "ff_people")] == [world.org_a]
    finally:
        world.server.stop()
