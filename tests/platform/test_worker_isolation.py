"""Workers run away from the server's files: in a scratch folder of the pool, optionally as another OS user."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from app.engine.spawn import check_worker_user
from app.engine.spawn import process_identity as _process_identity
from tests.platform.conftest import World


def test_workers_run_in_a_scratch_folder_not_the_workspace_or_the_server_directory(world: World) -> None:
    with world.server.client(world.alice_key) as client:
        run = client.post("/api/workflows/where_am_i/execute?wait=true", json={}).json()
    assert run["status"] == "Completed", run
    cwd = Path(run["result"]["cwd"])
    settings = world.server.settings
    # Not the workspace: a relative write there would plant code the watcher imports.
    assert cwd == world.server.platform.pool.scratch
    for folder in (settings.workspace, settings.home):
        assert cwd != folder and folder not in cwd.parents and cwd not in folder.parents
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
