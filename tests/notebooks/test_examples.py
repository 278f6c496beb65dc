"""Every example notebook runs top to bottom on a real kernel against a live platform.

The notebooks assert on what they show (``assert`` cells); these tests check that no cell failed and
then look at the platform's side: what the notebook published or ran is really there.
"""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest

from tests.notebooks.conftest import EXAMPLES, errors_of, execute, html_of, kernel_env, text_of
from tests.platform.conftest import World

NOTEBOOKS = sorted(p.stem for p in EXAMPLES.glob("*.ipynb"))


def run_example(world: World, name: str, tmp_path: Path) -> nbformat.NotebookNode:
    nb = nbformat.read(EXAMPLES / f"{name}.ipynb", as_version=4)
    executed = execute(nb, kernel_env(world.server.url, world.admin_key), tmp_path, allow_errors=True)
    assert errors_of(executed) == [], f"{name}.ipynb failed: {errors_of(executed)}"
    return executed


def cell_with(nb: nbformat.NotebookNode, source_start: str) -> nbformat.NotebookNode:
    return next(c for c in nb.cells if c.cell_type == "code" and c.source.startswith(source_start))


def test_the_examples_cover_every_server_side_module() -> None:
    assert set(NOTEBOOKS) >= {
        "quickstart",
        "config",
        "tables",
        "files",
        "forms",
        "executions",
        "workflows",
        "administration",
    }


def test_quickstart_trials_renders_publishes_and_the_platform_runs_it(world: World, tmp_path: Path) -> None:
    nb = run_example(world, "quickstart", tmp_path)
    trial = cell_with(nb, "%bifrost run quickstart_greet")
    assert "Greeting Ada as admin@test.io" in text_of(trial)  # the log line, shown as it ran
    table = html_of(trial)
    assert "<table>" in table and table.count("Hello Ada!") == 3
    assert "times: Input should be a valid integer" in text_of(cell_with(nb, "from bifrost import ValidationError"))
    assert "Published workflow 'quickstart_greet'" in text_of(cell_with(nb, "%bifrost publish")) or (
        "Replaced workflow 'quickstart_greet'" in text_of(cell_with(nb, "%bifrost publish"))
    )
    # Published: a workflow of the platform like any other, run through the JSON API.
    with world.server.client(world.alice_key) as client:
        response = client.post("/api/workflows/quickstart_greet/execute?wait=true", json={"params": {"name": "Bo"}})
    assert response.status_code == 200, response.text
    assert response.json()["result"] == [
        {"n": 1, "greeting": "Hello Bo.", "org": "Org A"},
        {"n": 2, "greeting": "Hello Bo.", "org": "Org A"},
    ]
    assert (world.server.settings.workspace / "quickstart_greet.py").read_text().count(
        "async def quickstart_greet"
    ) == 1
    # The trials are in the history, as notebook runs with their logs.
    with world.server.client(world.admin_key) as client:
        runs = client.get("/api/executions", params={"workflow_name": "quickstart_greet"}).json()
        trials = [r for r in runs if r["trigger"] == "notebook"]
        assert len(trials) >= 2 and all(r["status"] == "Completed" for r in trials)
        logs = client.get(f"/api/executions/{trials[-1]['execution_id']}/logs").json()
    assert [line["message"] for line in logs] == ["Greeting Ada as admin@test.io"]


@pytest.mark.parametrize("name", ["config", "tables", "files", "forms", "executions", "workflows", "administration"])
def test_module_example_runs(world: World, tmp_path: Path, name: str) -> None:
    nb = run_example(world, name, tmp_path)
    assert "Connected to" in text_of(nb.cells[2])
    if name == "tables":
        assert "<table>" in html_of(cell_with(nb, "%bifrost run active_customers"))
    if name == "files":
        assert "Grace" in html_of(cell_with(nb, "%bifrost run csv_rows"))
    if name == "forms":
        html_form = html_of(cell_with(nb, "%bifrost form request_laptop --html"))
        assert '<form id="bifrost-form-' in html_form and 'name="employee"' in html_form and "15-inch" in html_form
        widget = next(c for c in nb.cells if c.source == "%bifrost form request_laptop")
        assert any("application/vnd.jupyter.widget-view+json" in o.get("data", {}) for o in widget.outputs)
    if name == "workflows":
        with world.server.client(world.admin_key) as client:
            detail = client.get("/api/workflows/catalogue_demo").json()
        assert detail["tags"] == ["notebook"] and detail["source_file"] == "catalogue_demo.py"
