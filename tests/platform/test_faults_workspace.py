"""Fault injection, workspace: a file that ends, interrupts or hangs the import is named in the workspace
errors, skipped, and the other workflows keep running on a full pool.

Against a real ``bifrost serve`` process (SQLite: the database plays no part). The import timeout is
lowered so the hanging file costs the test seconds, not the default 30 s.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.platform.faults_support import Serve, database, wait_until

BAD_FILES = {
    "exits.py": ("import os\nos._exit(3)\n", "exited with code 3"),
    "interrupts.py": ("raise KeyboardInterrupt\n", "KeyboardInterrupt"),
    "system_exit.py": ("raise SystemExit(2)\n", "SystemExit"),
    "spins.py": ("while True:\n    pass\n", "took longer than 2 seconds"),
}


@pytest.fixture(scope="module")
def serve(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Serve]:
    root = tmp_path_factory.mktemp("faults-workspace")
    with database("sqlite", root) as url:
        server = Serve(root, url, import_timeout_seconds="2").init()
        for name, (source, _) in BAD_FILES.items():
            (server.workspace / name).write_text(source)
        server.start()
        try:
            yield server
        finally:
            server.stop()


def _errors(serve: Serve) -> dict[str, Any]:
    with serve.client() as client:
        response = client.get("/api/workspace/errors")
        assert response.status_code == 200, response.text
        return {e["file"]: e for e in response.json()}


def _status(serve: Serve) -> dict[str, Any]:
    with serve.client() as client:
        return dict(client.get("/api/workspace/status").json())


def test_each_bad_file_is_named_with_its_reason_and_the_others_run_on_a_full_pool(serve: Serve) -> None:
    errors = _errors(serve)
    for name, (_, reason) in BAD_FILES.items():
        assert name in errors, f"{name} is not reported"
        assert reason in errors[name]["error"], errors[name]
    assert _status(serve)["workers"]["workers"] == 2
    with serve.client() as client:
        ids = [serve.submit(client, "noop", n=i) for i in range(20)]
        assert all(serve.wait_ended(client, i)["status"] == "Completed" for i in ids)
    status = _status(serve)["workers"]
    assert status["workers"] == 2 and status["starting"] == 0  # no worker died or waits on a bad file


def test_a_bad_file_added_while_serving_is_reported_and_the_rest_keeps_running(serve: Serve) -> None:
    (serve.workspace / "late_exit.py").write_text("import os\nos._exit(9)\n")
    wait_until(lambda: "late_exit.py" in _errors(serve), 60, "the new bad file to be reported")
    assert "exited with code 9" in _errors(serve)["late_exit.py"]["error"]
    with serve.client() as client:
        ids = [serve.submit(client, "noop", n=i) for i in range(10)]
        assert all(serve.wait_ended(client, i)["status"] == "Completed" for i in ids)
    wait_until(lambda: _status(serve)["workers"]["workers"] == 2, 30, "a full pool")
    # Fixed, it is imported again.
    (serve.workspace / "late_exit.py").write_text(
        "from bifrost import workflow\n\n@workflow\nasync def late() -> int:\n    return 9\n"
    )
    wait_until(lambda: "late_exit.py" not in _errors(serve), 60, "the fixed file to load")
    with serve.client() as client:
        assert serve.wait_ended(client, serve.submit(client, "late"))["result"] == 9
