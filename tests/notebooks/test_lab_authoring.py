"""What JupyterLab authoring added on the kernel side, on real kernels against a live platform.

``%bifrost run`` of a workflow that only the platform has (live log, same result display),
``echo=False`` hiding printed output, ``%bifrost publish`` writing a file that passes the project's
``ruff check`` and ``ruff format --check`` and saying how to run it, and the notebook key of
``bifrost notebook`` (stored 0600, reused, revoked with ``--revoke``).
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

from tests.notebooks.conftest import code_notebook, errors_of, execute, html_of, kernel_env, outputs, text_of
from tests.platform.conftest import World

REPO = Path(__file__).resolve().parents[2]

LOUD = """import logging
from bifrost import workflow

log = logging.getLogger("loud")


@workflow
async def loud(times: int = 2) -> int:
    for i in range(times):
        print(f"printed {i}")
        log.info("logged %s", i)
    return times
"""

# Written the way people type in a hurry: unsorted imports on one line, single quotes, no blank lines.
MESSY = """import json, logging
from bifrost import workflow, context
import httpx
logger=logging.getLogger(__name__)
LIMIT=3
@workflow(category='Notebook')
async def messy_digest(client:str, n:int=LIMIT)->list[dict]:
    '''List a client's rows.

    Args:
        client: Whose.
    '''
    timeout=httpx.Timeout(5)
    logger.info('digest for %s in %s (%s)', client, context.org_name, timeout)
    return [{'client':client,'n':i,'raw':json.dumps({'i':i})} for i in range(min(n,LIMIT))]
"""


def _streams(cell: dict) -> str:
    return "".join(out["text"] for out in outputs(cell) if out["output_type"] == "stream")


def test_run_reaches_platform_workflows_and_echo_false_hides_printed_output(world: World, tmp_path: Path) -> None:
    nb = code_notebook(
        "%load_ext bifrost\n%bifrost connect",
        "%bifrost run add a=40 b=2",  # in the platform's workspace, not in this notebook
        "remote = await bifrost_run('chatty', echo=False)\n(remote.status, [l['message'] for l in remote.logs])",
        LOUD,
        "quiet = await bifrost_run('loud', echo=False)\n(quiet.result, [l['message'] for l in quiet.logs])",
        "%bifrost run loud times=1",
        "%bifrost run no_such_workflow",
    )
    nb = execute(nb, kernel_env(world.server.url, world.alice_key), tmp_path, allow_errors=True)
    cells = nb.cells
    assert errors_of(nb) == []  # the unknown name is a one-line UsageError, not a traceback

    # The platform's `add` ran on its workers: its log line streamed into the cell, then the result.
    remote_run = _streams(cells[1])
    assert "INFO    " in remote_run and "adding 40 and 2" in remote_run, remote_run
    assert "add</b> <span class='ok'>Completed</span>" in html_of(cells[1])
    assert "&quot;sum&quot;: 42" in html_of(cells[1])
    with world.server.client(world.alice_key) as alice:
        runs = alice.get("/api/executions", params={"workflow_name": "add"}).json()
        assert [r["trigger"] for r in runs][:1] == ["api"] and runs[0]["result"] == {"sum": 42}

    # echo=False: nothing printed in the cell, every line still in the run's logs (platform and kernel runs).
    assert _streams(cells[2]) == ""
    assert "'Completed'" in text_of(cells[2]) and "'info line'" in text_of(cells[2])
    assert "'printed line'" in text_of(cells[2])
    assert _streams(cells[4]) == ""
    assert text_of(cells[4]) == "(2, ['printed 0', 'logged 0', 'printed 1', 'logged 1'])"
    assert "printed 0" in _streams(cells[5]) and "logged 0" in _streams(cells[5])  # echo is the default

    assert (
        "No workflow named 'no_such_workflow' is defined in this notebook or on the platform at "
        f"{world.server.url}: run the cell that defines it, or see `%bifrost workflows`."
    ) in text_of(cells[6])


def test_publish_writes_a_ruff_clean_module_and_says_how_to_run_it(world: World, tmp_path: Path) -> None:
    nb = code_notebook("%load_ext bifrost\n%bifrost connect", MESSY, "%bifrost publish messy_digest")
    nb = execute(nb, kernel_env(world.server.url, world.admin_key), tmp_path)
    said = text_of(nb.cells[2])
    url = world.server.url
    assert f"Published workflow 'messy_digest' as messy_digest.py in the workspace of {url}. Run it now:" in said
    assert f"its form: {url}/workflows/messy_digest" in said
    assert "from a notebook: %bifrost run messy_digest key=value" in said
    assert f"over HTTP: POST {url}/api/workflows/messy_digest/execute" in said
    assert "ruff:" not in said  # nothing left for the author to fix
    assert f'<a href="{url}/workflows/messy_digest"' in html_of(nb.cells[2])

    module = world.server.settings.workspace / "messy_digest.py"
    source = module.read_text()
    # Sections as the project sorts them: standard library, third party, then bifrost (first party).
    assert "import json\nimport logging\n\nimport httpx\n\nfrom bifrost import context, workflow\n" in source
    for check in (["check"], ["format", "--check"]):
        ruff = subprocess.run(
            [sys.executable, "-m", "ruff", *check, "--config", str(REPO / "pyproject.toml"), str(module)],
            capture_output=True,
            text=True,
            check=False,
        )
        assert ruff.returncode == 0, ruff.stdout + ruff.stderr + source

    with world.server.client(world.admin_key) as admin:
        done = admin.post(
            "/api/workflows/messy_digest/execute", params={"wait": "true"}, json={"params": {"client": "Ada", "n": 2}}
        )
        assert done.status_code == 200, done.text
        assert [row["n"] for row in done.json()["result"]] == [0, 1]


def test_notebook_key_is_stored_reused_and_revoked(tmp_path: Path) -> None:
    from app.notebook_keys import KEY_NAME, key_path, obtain
    from tests.conftest import make_settings

    env = {k: v for k, v in os.environ.items() if not k.startswith("BIFROST_")}
    env |= {"BIFROST_HOME": str(tmp_path / "home"), "BIFROST_WORKSPACE": str(tmp_path / "workspace")}
    cli = [sys.executable, "-m", "app.cli"]
    init = subprocess.run([*cli, "init"], env=env, capture_output=True, text=True, timeout=120, check=False)
    assert init.returncode == 0, init.stderr
    settings = make_settings(tmp_path, workspace=tmp_path / "workspace")

    first = asyncio.run(obtain(settings))
    again = asyncio.run(obtain(settings))
    path = key_path(settings.home, first.email)
    assert first.created and not again.created and again.key == first.key and path == first.path
    assert path.read_text().strip() == first.key and path.stat().st_mode & 0o777 == 0o600
    assert path.parent.stat().st_mode & 0o777 == 0o700

    revoked = subprocess.run(
        [*cli, "notebook", "--revoke"], env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert revoked.returncode == 0, revoked.stderr
    assert revoked.stdout.strip() == f"Revoked 1 notebook key(s): {first.prefix}..."
    assert not path.exists()

    import sqlite3

    with sqlite3.connect(settings.home / "bifrost.db") as db:
        rows = db.execute("SELECT prefix, revoked_at IS NOT NULL FROM api_key WHERE name = ?", (KEY_NAME,)).fetchall()
    assert rows == [(first.prefix, 1)]
    fresh = asyncio.run(obtain(settings))  # the next `bifrost notebook` mints a new one
    assert fresh.created and fresh.key != first.key
