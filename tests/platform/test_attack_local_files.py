"""Attack: a technician tries to plant workflow code through ``files.write(..., mode="local")``.

A workflow that takes a file name from its caller (``save_note``) writes it with local mode. An
Org A technician (a plain user of the organization) runs it over HTTP with names that try to land
in the workspace (where the watcher would import a ``.py`` at once), in the platform home, or on the
SQLite file: a plain ``planted.py``, ``..`` escapes, absolute paths, a symbolic link and hard links
planted beforehand in the local-files folder. Nothing may land in the workspace, no new workflow may
appear, the database file must stay the same file, and every escape must fail with a clear
``ValidationError``. The module prints how many attempts it made.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import PLATFORM_WORKSPACE, LiveServer, make_settings
from tests.platform.conftest import seed

NOTE_FLOWS = '''
"""Workflows that store caller-named notes with local mode (the attack surface of this test)."""

from bifrost import files, workflow


@workflow
async def save_note(name: str, text: str, location: str = "workspace") -> dict:
    """Save a note under a caller-chosen name."""
    await files.write(name, text, location=location, mode="local")
    return {"saved": name}


@workflow
async def read_note(name: str, location: str = "workspace") -> dict:
    """Read a note by a caller-chosen name."""
    return {"text": await files.read(name, location=location, mode="local")}
'''

PLANTED = '''
from bifrost import workflow


@workflow
async def planted() -> str:
    """Code the technician wants the platform to run."""
    return "pwned"
'''


@dataclass
class Site:
    """The live server, its folders and the keys of the actors."""

    server: LiveServer
    workspace: Path
    home: Path
    database: Path
    local_root: Path  # <home>/local-files
    admin_key: str
    tech_key: str  # Org A technician (alice)
    other_key: str  # Org B user (bob)
    org_a: str
    org_b: str


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    tmp = tmp_path_factory.mktemp("local-files-attack")
    workspace = tmp / "workspace"
    shutil.copytree(PLATFORM_WORKSPACE, workspace)
    (workspace / "note_flows.py").write_text(NOTE_FLOWS)
    server = LiveServer(make_settings(tmp, workspace=workspace)).start()
    try:
        data = server.call(lambda: seed(server.platform))
        settings = server.settings
        yield Site(
            server=server,
            workspace=settings.workspace,
            home=settings.home,
            database=settings.home / "bifrost.db",
            local_root=settings.home / "local-files",
            admin_key=data["admin_key"],
            tech_key=data["alice_key"],
            other_key=data["bob_key"],
            org_a=data["org_a"],
            org_b=data["org_b"],
        )
    finally:
        server.stop()


ATTEMPTS: list[str] = []


@pytest.fixture(scope="module", autouse=True)
def _count() -> Iterator[None]:
    """Print how many attacks this module made (per test process when xdist splits the file)."""
    yield
    print(f"\nlocal-files attack: {len(ATTEMPTS)} workflow runs as a technician, none reached the workspace")


def run(site: Site, key: str, workflow: str, params: dict[str, Any]) -> dict[str, Any]:
    """Run a workflow over HTTP as the holder of ``key`` and return the finished execution."""
    ATTEMPTS.append(f"{workflow}({params.get('name')!r})")
    with site.server.client(key) as client:
        response = client.post(f"/api/workflows/{workflow}/execute?wait=true", json={"params": params})
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


def refused(execution: dict[str, Any], *words: str) -> None:
    """The run failed with a ValidationError whose message names the problem."""
    assert execution["status"] == "Failed", execution
    message = execution.get("error_message") or ""
    # UnsafePathError is a ValidationError and a UserError: the technician sees the message itself.
    assert execution.get("error_type") == "UnsafePathError", execution
    assert any(word in message for word in words), message


def workflow_names(site: Site) -> set[str]:
    """Re-scan the workspace (what the watcher does on a change) and list the workflows."""
    with site.server.client(site.admin_key) as admin:
        assert admin.post("/api/workspace/sync").status_code == 200
        return {w["name"] for w in admin.get("/api/workflows").json()}


def workspace_files(site: Site) -> dict[str, bytes]:
    return {str(p.relative_to(site.workspace)): p.read_bytes() for p in site.workspace.rglob("*") if p.is_file()}


@pytest.fixture(scope="module")
def before(site: Site) -> dict[str, Any]:
    """The workspace, the workflows and the database file as they were before the attacks."""
    return {
        "files": workspace_files(site),
        "workflows": workflow_names(site),
        "db_inode": site.database.stat().st_ino,
    }


def org_folder(site: Site, org: str, location: str = "workspace") -> Path:
    return site.local_root / org / location


def test_a_plain_name_lands_in_the_organizations_data_folder_not_the_workspace(
    site: Site, before: dict[str, Any]
) -> None:
    for location in ("workspace", "temp"):
        execution = run(site, site.tech_key, "save_note", {"name": "planted.py", "text": PLANTED, "location": location})
        assert execution["status"] == "Completed", execution
        assert (org_folder(site, site.org_a, location) / "planted.py").read_text() == PLANTED
    assert workspace_files(site) == before["files"]
    assert "planted" not in workflow_names(site)
    with site.server.client(site.tech_key) as client:
        assert client.post("/api/workflows/planted/execute?wait=true", json={"params": {}}).status_code == 404


def test_organizations_do_not_share_local_files(site: Site) -> None:
    assert run(site, site.other_key, "save_note", {"name": "shared.txt", "text": "org B"})["status"] == "Completed"
    missing = run(site, site.tech_key, "read_note", {"name": "shared.txt"})
    assert missing["status"] == "Failed" and missing["error_type"] == "NoSuchFileError", missing
    escape = run(site, site.tech_key, "read_note", {"name": f"../../{site.org_b}/workspace/shared.txt"})
    refused(escape, "escapes")


@pytest.mark.parametrize("name", ["../x.py", "../../x.py", "../../../workspace/x.py", "a/../../x.py", ".."])
def test_dot_dot_escapes_are_refused(site: Site, before: dict[str, Any], name: str) -> None:
    refused(run(site, site.tech_key, "save_note", {"name": name, "text": PLANTED}), "escapes")
    assert workspace_files(site) == before["files"]


def test_absolute_paths_into_workspace_home_and_database_are_refused(site: Site, before: dict[str, Any]) -> None:
    targets = [
        site.workspace / "abs_planted.py",
        site.workspace / "basics.py",
        site.home / "abs.txt",
        site.home / "secret.key",
        site.database,
        site.local_root / site.org_b / "workspace" / "x.txt",
    ]
    for target in targets:
        refused(run(site, site.tech_key, "save_note", {"name": str(target), "text": PLANTED}), "absolute")
        refused(run(site, site.tech_key, "read_note", {"name": str(target)}), "absolute")
    assert workspace_files(site) == before["files"]
    assert not (site.home / "abs.txt").exists()


def test_symbolic_links_planted_earlier_are_not_followed(site: Site, before: dict[str, Any]) -> None:
    folder = org_folder(site, site.org_a)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "ws-link").symlink_to(site.workspace, target_is_directory=True)
    (folder / "home-link").symlink_to(site.home, target_is_directory=True)
    (folder / "db-link").symlink_to(site.database)
    (folder / "py-link.py").symlink_to(site.workspace / "linked_planted.py")
    for name in ("ws-link/link_planted.py", "home-link/x.txt", "db-link", "py-link.py"):
        refused(run(site, site.tech_key, "save_note", {"name": name, "text": PLANTED}), "link")
    for name in ("db-link", "home-link/bifrost.db"):
        refused(run(site, site.tech_key, "read_note", {"name": name}), "link")
    assert workspace_files(site) == before["files"]
    assert not (site.home / "x.txt").exists()
    assert not (site.workspace / "linked_planted.py").exists()


def test_hard_links_planted_earlier_are_refused(site: Site, before: dict[str, Any]) -> None:
    folder = org_folder(site, site.org_a)
    folder.mkdir(parents=True, exist_ok=True)
    os.link(site.workspace / "basics.py", folder / "basics-hl.py")
    os.link(site.database, folder / "db-hl")
    database_head = site.database.read_bytes()[:100]
    for name in ("basics-hl.py", "db-hl"):
        refused(run(site, site.tech_key, "save_note", {"name": name, "text": PLANTED}), "hard link")
    reading = run(site, site.tech_key, "read_note", {"name": "db-hl"})
    refused(reading, "hard link")
    assert "SQLite format" not in str(reading)
    assert workspace_files(site) == before["files"]
    assert site.database.read_bytes()[:100] == database_head


def test_nothing_changed(site: Site, before: dict[str, Any]) -> None:
    assert workspace_files(site) == before["files"]
    assert workflow_names(site) == before["workflows"]
    assert site.database.stat().st_ino == before["db_inode"]
    assert site.database.read_bytes()[:16] == b"SQLite format 3\x00"
    assert PLANTED.encode() not in site.database.read_bytes()
    with site.server.client(site.admin_key) as admin:
        assert admin.get("/api/workflows").status_code == 200  # the database still answers
