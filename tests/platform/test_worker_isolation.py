"""Workers run away from the server's files: in the workspace folder, optionally as another OS user."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from app.engine.pool import _process_identity, check_worker_user
from tests.platform.conftest import World


def test_workers_run_in_the_workspace_not_the_server_directory(world: World) -> None:
    with world.server.client(world.alice_key) as client:
        run = client.post("/api/workflows/where_am_i/execute?wait=true", json={}).json()
    assert run["status"] == "Completed", run
    assert Path(run["result"]["cwd"]) == world.server.settings.workspace
    assert run["result"]["home_visible"] is False
    assert oct(world.server.settings.home.stat().st_mode & 0o777) == "0o700"


def test_worker_user_is_checked_and_applied() -> None:
    with pytest.raises(ValueError, match="does not exist"):
        check_worker_user("no-such-user-here")
    assert check_worker_user(None) is None
    identity = _process_identity(Path("/srv/workspace"), None)
    assert identity == {"cwd": "/srv/workspace"}
    if os.geteuid() == 0:
        assert check_worker_user("nobody") == "nobody"
        identity = _process_identity(Path("/srv/workspace"), "nobody")
        import pwd

        assert identity["user"] == pwd.getpwnam("nobody").pw_uid
        assert identity["group"] == pwd.getpwnam("nobody").pw_gid
        assert identity["extra_groups"] == [] and identity["cwd"] == "/srv/workspace"
    else:
        with pytest.raises(ValueError, match="root"):
            check_worker_user("nobody")
