"""``bifrost notebook``: Jupyter Server with the /bifrost extension, pointed at a live platform."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import nbformat
import pytest

from tests.notebooks.conftest import errors_of, execute, kernel_env, text_of
from tests.platform.conftest import World

TOKEN = "test-token-for-the-bifrost-extension"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def jupyter(world: World, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[httpx.Client, Path]]:
    root = tmp_path_factory.mktemp("notebooks")
    port = _free_port()
    env = kernel_env(None, None, JUPYTER_TOKEN=TOKEN, JUPYTER_RUNTIME_DIR=str(root / ".runtime"))
    log = open(root / ".server.log", "wb")
    command = [sys.executable, "-m", "app.cli", "notebook", "--url", world.server.url, "--key", world.admin_key]
    command += ["--port", str(port), "--dir", str(root), "--no-browser"]
    process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    client = httpx.Client(base_url=f"http://127.0.0.1:{port}", headers={"Authorization": f"token {TOKEN}"}, timeout=30)
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                if client.get("/bifrost/status").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert process.poll() is None, (root / ".server.log").read_text()
            assert time.monotonic() < deadline, "Jupyter did not start"
            time.sleep(0.3)
        yield client, root
    finally:
        client.close()
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(30)
        log.close()


def test_the_extension_is_loaded_and_needs_jupyter_authentication(jupyter: tuple[httpx.Client, Path]) -> None:
    client, _ = jupyter
    status = client.get("/bifrost/status").json()
    assert status["connected"] is True and status["identity"]["email"] == "admin@test.io"
    with httpx.Client(base_url=str(client.base_url)) as anonymous:
        assert anonymous.get("/bifrost/workflows").status_code == 403
        assert anonymous.post("/bifrost/publish", json={"name": "x", "source": "y"}).status_code == 403


def test_it_lists_the_platforms_workflows_and_publishes(world: World, jupyter: tuple[httpx.Client, Path]) -> None:
    client, _ = jupyter
    assert "add" in [w["name"] for w in client.get("/bifrost/workflows").json()]
    source = "from bifrost import workflow\n\n@workflow\nasync def ext_published() -> str:\n    return 'via jupyter'\n"
    created = client.post("/bifrost/publish", json={"name": "ext_published", "source": source})
    assert created.status_code == 201, created.text
    again = client.post("/bifrost/publish", json={"name": "ext_published", "source": source})
    assert again.status_code == 409 and "force" in again.json()["message"]
    broken = client.post("/bifrost/publish", json={"name": "ext_broken", "source": "import nowhere_to_be_found\n"})
    assert broken.status_code == 422 and broken.json()["errors"][0]["field"] == "source"
    with world.server.client(world.alice_key) as alice:
        done = alice.post("/api/workflows/ext_published/execute?wait=true", json={})
    assert done.json()["result"] == "via jupyter"


def test_a_new_notebook_from_the_template_runs(
    world: World, jupyter: tuple[httpx.Client, Path], tmp_path: Path
) -> None:
    client, root = jupyter
    created = client.post("/bifrost/notebooks", json={"name": "Team report"})
    assert created.status_code == 201, created.text
    assert created.json()["path"] == "team_report.ipynb"
    second = client.get("/bifrost/new", params={"name": "Team report"}, follow_redirects=False)
    assert second.status_code == 302 and second.headers["location"].endswith("team_report-2.ipynb")
    assert client.post("/bifrost/notebooks", json={"path": "../outside.ipynb"}).status_code == 422

    nb = nbformat.read(root / "team_report.ipynb", as_version=4)
    assert nb.cells[1].source.startswith("%load_ext bifrost")
    nb.cells[-1].source = nb.cells[-1].source.removeprefix("# ")  # publish too
    executed = execute(nb, kernel_env(world.server.url, world.admin_key), tmp_path, allow_errors=True)
    assert errors_of(executed) == []
    assert "Hello Ada" in text_of(executed.cells[3])
    assert "Published workflow 'team_report'" in text_of(executed.cells[-1])
