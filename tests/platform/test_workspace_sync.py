"""The workspace as the platform sees it: live edits, import errors, duplicate names."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from tests.conftest import LiveServer, make_settings
from tests.platform.conftest import seed


def wait_for(check: Callable[[], bool], timeout: float = 15.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.1)
    return False


def test_edits_errors_and_duplicates_without_restart(tmp_path: Path) -> None:
    workspace = tmp_path / "ws"
    workspace.mkdir()
    (workspace / "greet.py").write_text(
        "from bifrost import workflow\n\n@workflow\nasync def greet(name: str) -> str:\n    return 'hi ' + name\n"
    )
    server = LiveServer(make_settings(tmp_path, workspace=workspace, watch_workspace=True)).start()
    try:
        ids = server.call(lambda: seed(server.platform))
        with server.client(ids["admin_key"]) as admin:
            run = admin.post("/api/workflows/greet/execute?wait=true", json={"params": {"name": "Ann"}}).json()
            assert run["result"] == "hi Ann"
            first_id = admin.get("/api/workflows/greet").json()["id"]

            # 1. an edited file is picked up by new runs, with the same stable id
            (workspace / "greet.py").write_text(
                "from bifrost import workflow\n\n@workflow\nasync def greet(name: str, loud: bool = False) -> str:\n"
                "    text = 'hello ' + name\n    return text.upper() if loud else text\n"
            )

            def edited() -> bool:
                body = admin.post(
                    "/api/workflows/greet/execute?wait=true", json={"params": {"name": "Ann", "loud": True}}
                )
                return body.status_code == 200 and body.json()["result"] == "HELLO ANN"

            assert wait_for(edited)
            assert admin.get("/api/workflows/greet").json()["id"] == first_id

            # 2. a new file appears; a broken file is reported while the others keep working
            (workspace / "extra.py").write_text(
                "from bifrost import workflow\n\n@workflow\nasync def extra() -> int:\n    return 7\n"
            )
            (workspace / "broken.py").write_text("from bifrost import workflow\n\ndef oops(:\n")
            assert wait_for(lambda: admin.get("/api/workflows/extra").status_code == 200)
            assert wait_for(lambda: any(e["file"] == "broken.py" for e in admin.get("/api/workspace/errors").json()))
            error = next(e for e in admin.get("/api/workspace/errors").json() if e["file"] == "broken.py")
            assert "SyntaxError" in error["error"] + (error["traceback"] or "")
            ok = admin.post("/api/workflows/extra/execute?wait=true", json={}).json()
            assert ok["result"] == 7

            # 3. two workflows with one name: a clear error and neither wins
            (workspace / "clash.py").write_text(
                "from bifrost import workflow\n\n@workflow(name='extra')\nasync def another() -> int:\n    return 8\n"
            )
            assert wait_for(lambda: admin.get("/api/workflows/extra").status_code == 404)
            errors = admin.get("/api/workspace/errors").json()
            clash = [e for e in errors if "extra" in e["error"] and "clash.py" in e["error"] + e["file"]]
            assert clash, errors
            assert admin.post("/api/workflows/extra/execute", json={}).status_code == 404

            # 4. removing a file removes its workflows; fixing the error clears it
            (workspace / "clash.py").unlink()
            (workspace / "broken.py").unlink()
            assert wait_for(lambda: admin.get("/api/workflows/extra").status_code == 200)
            assert wait_for(lambda: admin.get("/api/workspace/errors").json() == [])
            (workspace / "extra.py").unlink()
            assert wait_for(lambda: admin.get("/api/workflows/extra").status_code == 404)
            # history keeps pointing at the removed workflow
            assert admin.get(f"/api/executions/{ok['execution_id']}").json()["workflow_name"] == "extra"
    finally:
        server.stop()
