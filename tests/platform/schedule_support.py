"""Helpers of the schedule tests: servers with scheduled workflows, and reading schedules over HTTP."""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.conftest import PLATFORM_WORKSPACE, LiveServer, make_settings
from tests.platform.conftest import World, seed

# Written into a test server's own workspace copy: a schedule in the shared workspace would fire in
# every test server.
SCHEDULED_FLOWS = '''
import asyncio

from bifrost import context, workflow


@workflow(schedule="0 9 * * 1-5")
async def weekday_report() -> str:
    """Declared schedule: weekdays at nine."""
    return "report"


@workflow
async def tick(label: str = "tick") -> dict:
    """Report what a scheduled run sees."""
    return {"label": label, "org_id": context.org_id, "email": context.email, "scope": context.scope}


@workflow
async def long_tick(seconds: float = 30) -> str:
    """Run long enough to overlap the next firing."""
    await asyncio.sleep(seconds)
    return "done"


@workflow
async def needs_input(count: int) -> int:
    """A required parameter."""
    return count
'''

EVERY_SECOND_FLOW = '''
from bifrost import workflow


@workflow(schedule="* * * * * *", timeout_seconds=2)
async def every_second() -> str:
    """Declared six-field schedule: every second (a run a stopped server leaves behind blocks it 12 s at most)."""
    return "tick"
'''


def workspace_with(tmp: Path, files: dict[str, str]) -> Path:
    """A copy of the platform test workspace plus ``files`` (name -> source)."""
    workspace = tmp / "workspace"
    if not workspace.exists():
        shutil.copytree(PLATFORM_WORKSPACE, workspace)
    for name, source in files.items():
        (workspace / name).write_text(source)
    return workspace


def start_server(
    tmp: Path,
    database_url: str | None = None,
    files: dict[str, str] | None = None,
    *,
    seeded: dict[str, str] | None = None,
    **settings: Any,
) -> World:
    """A live server on ``tmp`` (its own home) with the scheduled flows; seeds unless ``seeded`` is given."""
    workspace = workspace_with(tmp, {"scheduled_flows.py": SCHEDULED_FLOWS, **(files or {})})
    settings.setdefault("scheduler_poll_seconds", 0.5)
    server = LiveServer(make_settings(tmp, database_url, workspace=workspace, **settings)).start()
    data = seeded if seeded is not None else server.call(lambda: seed(server.platform))
    return World(server=server, **data)


def schedules(world: World, key: str | None = None) -> list[dict[str, Any]]:
    with world.server.client(key or world.admin_key) as client:
        response = client.get("/api/schedules")
        assert response.status_code == 200, response.text
        return response.json()  # type: ignore[no-any-return]


def schedule_of(world: World, workflow: str) -> dict[str, Any]:
    found = [s for s in schedules(world) if s["workflow_name"] == workflow]
    assert len(found) == 1, found
    return found[0]


def runs(world: World, schedule_id: str, key: str | None = None) -> list[dict[str, Any]]:
    with world.server.client(key or world.admin_key) as client:
        response = client.get(f"/api/schedules/{schedule_id}/runs", params={"limit": 500})
        assert response.status_code == 200, response.text
        return response.json()  # type: ignore[no-any-return]


def wait_for(condition: Callable[[], Any], what: str, timeout: float = 20.0) -> Any:
    """Poll ``condition`` until it returns something truthy (no fixed sleeps in the tests)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def create(world: World, **body: Any) -> dict[str, Any]:
    with world.server.client(world.admin_key) as admin:
        response = admin.post("/api/schedules", json=body)
        assert response.status_code == 201, response.text
        return response.json()  # type: ignore[no-any-return]


def patch(world: World, schedule_id: str, **changes: Any) -> dict[str, Any]:
    with world.server.client(world.admin_key) as admin:
        response = admin.patch(f"/api/schedules/{schedule_id}", json=changes)
        assert response.status_code == 200, response.text
        return response.json()  # type: ignore[no-any-return]


def delete(world: World, schedule_id: str) -> None:
    with world.server.client(world.admin_key) as admin:
        assert admin.delete(f"/api/schedules/{schedule_id}").status_code == 200


def cancel(world: World, execution_id: str) -> None:
    with world.server.client(world.admin_key) as admin:
        admin.post(f"/api/executions/{execution_id}/cancel")
