"""Schedules across server restarts and several servers on one database (SQLite file and Postgres)."""

from __future__ import annotations

import asyncio
from dataclasses import fields
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from app.db import create_engine, session_factory, transaction
from app.models.schedule import Schedule
from tests.platform.conftest import World
from tests.platform.schedule_support import (
    EVERY_SECOND_FLOW,
    create,
    patch,
    runs,
    schedule_of,
    start_server,
    wait_for,
)


def seeded_data(world: World) -> dict[str, str]:
    return {f.name: getattr(world, f.name) for f in fields(world) if f.name != "server"}


def move_next_run(database_url: str, schedule_id: str, when: datetime) -> None:
    """Pretend the server was down since ``when`` (written while no server runs)."""

    async def go() -> None:
        engine = create_engine(database_url)
        try:
            async with transaction(session_factory(engine)) as session:
                row = await session.get(Schedule, schedule_id)
                assert row is not None
                row.next_run_at = when
        finally:
            await engine.dispose()

    asyncio.run(go())


def leader_status(world: World) -> dict[str, Any]:
    with world.server.client(world.admin_key) as admin:
        response = admin.get("/api/schedules/status")
        assert response.status_code == 200, response.text
        return response.json()  # type: ignore[no-any-return]


def test_a_missed_firing_runs_once_when_the_server_starts_again(database_url: str, tmp_path: Path) -> None:
    first = start_server(tmp_path, database_url)
    schedule = create(first, workflow="tick", cron="* * * * *", params={"label": "after restart"})
    data = seeded_data(first)
    first.server.stop()

    down_since = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(minutes=3)
    move_next_run(database_url, schedule["id"], down_since)
    second = start_server(tmp_path, database_url, seeded=data)  # same home, workspace and database
    try:
        recorded = runs(second, schedule["id"])
        missed = [r for r in recorded if r["outcome"] == "missed"]
        assert len(missed) == 1 and missed[0]["scheduled_for"] == down_since.isoformat()
        # "N firing(s) from <down_since> to <last missed>": the slot after the last missed one ran late, once.
        last_missed = datetime.fromisoformat(missed[0]["detail"].split(" to ")[1].split(" ")[0])
        count = int(missed[0]["detail"].split(" ")[0])
        assert count >= 3 and last_missed == down_since + timedelta(minutes=count - 1)
        late = [r for r in recorded if r["scheduled_for"] == (last_missed + timedelta(minutes=1)).isoformat()]
        assert len(late) == 1 and late[0]["outcome"] == "submitted"
        done = wait_for(
            lambda: (
                next(r for r in runs(second, schedule["id"]) if r["id"] == late[0]["id"])["execution_status"]
                == "Completed"
            ),
            "the late run to complete",
        )
        assert done
        with second.server.client(second.admin_key) as admin:
            execution = admin.get(f"/api/executions/{late[0]['execution_id']}").json()
        assert execution["trigger"] == "schedule" and execution["result"]["label"] == "after restart"
    finally:
        second.server.stop()


def test_two_servers_on_one_database_fire_each_slot_once_and_the_other_takes_over(
    database_url: str, tmp_path: Path
) -> None:
    files = {"every_second.py": EVERY_SECOND_FLOW}
    a = start_server(tmp_path / "a", database_url, files)
    b = start_server(tmp_path / "b", database_url, files, seeded=seeded_data(a))
    servers = [a, b]
    try:
        statuses = [leader_status(world) for world in servers]
        assert sorted(s["leader"] for s in statuses) == [False, True], statuses
        leader, follower = (a, b) if statuses[0]["leader"] else (b, a)
        assert leader_status(follower)["jobs"] == 0 and leader_status(leader)["jobs"] >= 1

        schedule = schedule_of(a, "every_second")

        def submitted() -> list[dict[str, Any]]:
            return [r for r in runs(follower, schedule["id"]) if r["outcome"] == "submitted"]

        before = len(wait_for(lambda: len(submitted()) >= 4 and submitted(), "four firings"))
        leader.server.stop()
        servers.remove(leader)
        wait_for(lambda: leader_status(follower)["leader"], "the other server to take the lead")
        wait_for(lambda: len(submitted()) >= before + 3, "three firings by the new leader", timeout=40)

        patch(follower, schedule["id"], enabled=False)  # stop firing, so that the two reads below agree

        def consistent() -> tuple[list[dict[str, Any]], list[dict[str, Any]]] | None:
            with follower.server.client(follower.admin_key) as admin:
                params = {"workflow_name": "every_second", "limit": 1000}
                executions = admin.get("/api/executions", params=params).json()
            recorded = runs(follower, schedule["id"])
            fired = sorted(r["execution_id"] for r in recorded if r["execution_id"])
            return (recorded, executions) if fired == sorted(e["execution_id"] for e in executions) else None

        # Every execution of the workflow belongs to exactly one firing (a slot that ran twice never agrees).
        recorded, executions = wait_for(consistent, "each execution to match one firing", timeout=10)
        slots = [r["scheduled_for"] for r in recorded]
        assert len(slots) == len(set(slots)) and len(executions) >= before + 3
        assert {e["trigger"] for e in executions} == {"schedule"}
    finally:
        for world in servers:
            world.server.stop()
