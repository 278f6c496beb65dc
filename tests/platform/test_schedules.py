"""Cron schedules over real HTTP: workspace sync, admin API and validation, live firing, overlap, missed firings."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from app.db import transaction
from app.models.schedule import Schedule
from app.services.identity.system_users import SCHEDULER
from tests.platform.conftest import World
from tests.platform.schedule_support import (
    SCHEDULED_FLOWS,
    cancel,
    create,
    delete,
    patch,
    runs,
    schedule_of,
    schedules,
    start_server,
    wait_for,
)


@pytest.fixture(scope="module")
def sw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """One seeded live server (SQLite) with scheduled workflows in its workspace."""
    world = start_server(tmp_path_factory.mktemp("schedules"))
    try:
        yield world
    finally:
        world.server.stop()


def next_weekday_nine(after: datetime) -> datetime:
    """Computed independently of the scheduler: the first Monday-Friday 09:00 UTC after ``after``."""
    day = after.replace(hour=9, minute=0, second=0, microsecond=0)
    while day <= after or day.weekday() >= 5:
        day += timedelta(days=1)
    return day


def fire(world: World, schedule_id: str, now: datetime) -> dict[str, Any] | None:
    """Fire a schedule on the server's loop with a fake clock."""

    async def go() -> dict[str, Any] | None:
        run = await world.server.platform.scheduler.fire(schedule_id, now=now)
        if run is None:
            return None
        return {"outcome": run.outcome, "execution_id": run.execution_id, "detail": run.detail}

    return world.server.call(go)  # type: ignore[no-any-return]


def catch_up(world: World, now: datetime) -> int:
    return world.server.call(lambda: world.server.platform.scheduler.catch_up(now=now))  # type: ignore[no-any-return]


def set_next_run(world: World, schedule_id: str, when: datetime) -> None:
    async def go() -> None:
        async with transaction(world.server.platform.sessions) as session:
            row = await session.get(Schedule, schedule_id)
            assert row is not None
            row.next_run_at = when

    world.server.call(go)


# ----- declared schedules ---------------------------------------------------------------------------
def test_declared_schedules_follow_the_workspace(database_url: str, tmp_path: Path) -> None:
    world = start_server(tmp_path, database_url)
    workspace = world.server.settings.workspace
    try:
        declared = schedule_of(world, "weekday_report")
        assert declared["source"] == "workspace" and declared["scope"] == "GLOBAL"
        assert (declared["cron"], declared["timezone"], declared["enabled"]) == ("0 9 * * 1-5", "UTC", True)
        next_run = datetime.fromisoformat(declared["next_run_at"])
        assert next_run == next_weekday_nine(datetime.fromisoformat(declared["updated_at"]))
        assert declared["status"] == "waiting" and declared["last_run_at"] is None

        # An admin's edit survives syncs while the code keeps declaring the same expression...
        edited = patch(world, declared["id"], cron="0 7 * * *")
        assert datetime.fromisoformat(edited["next_run_at"]).hour == 7
        with world.server.client(world.admin_key) as admin:
            assert admin.post("/api/workspace/sync").status_code == 200
            assert schedule_of(world, "weekday_report")["cron"] == "0 7 * * *"
            # ...and the code wins when it changes its declaration.
            source = SCHEDULED_FLOWS.replace('schedule="0 9 * * 1-5"', 'schedule="30 8 * * *"')
            (workspace / "scheduled_flows.py").write_text(source)
            admin.post("/api/workspace/sync")
            changed = schedule_of(world, "weekday_report")
            assert changed["cron"] == changed["declared_cron"] == "30 8 * * *"
            assert changed["id"] == declared["id"]

            # A declaration the decorator accepts but cron does not is reported, and does not fire.
            (workspace / "scheduled_flows.py").write_text(source.replace('"30 8 * * *"', '"61 8 * * *"'))
            admin.post("/api/workspace/sync")
            invalid = schedule_of(world, "weekday_report")
            assert invalid["status"] == "invalid" and invalid["next_run_at"] is None
            assert "minute field '61'" in invalid["last_detail"]
            errors = admin.get("/api/workspace/errors").json()
            assert any("weekday_report: invalid schedule '61 8 * * *'" in e["error"] for e in errors)

            # Removing schedule= removes the schedule.
            (workspace / "scheduled_flows.py").write_text(source.replace('(schedule="30 8 * * *")', ""))
            admin.post("/api/workspace/sync")
            assert [s for s in schedules(world) if s["workflow_name"] == "weekday_report"] == []
    finally:
        world.server.stop()


# ----- the API ----------------------------------------------------------------------------------------
def test_invalid_cron_expressions_and_time_zones_are_refused_with_the_reason(sw: World) -> None:
    schedule = create(sw, workflow="tick", cron="0 6 * * *")
    try:
        with sw.server.client(sw.admin_key) as admin:
            cases = {
                "61 * * * *": "minute field '61': the last value (61) is higher than the maximum value (59)",
                "0 9 * *": "has 4 fields; use 5 (minute hour day month weekday) or 6",
                "0 9 * * 8": "day of week field '8'",
                "0 0 30 2 *": "never fires",
                "*/0 * * * *": "Increment must be higher than 0",
            }
            for cron, reason in cases.items():
                response = admin.patch(f"/api/schedules/{schedule['id']}", json={"cron": cron})
                assert response.status_code == 422, cron
                error = response.json()["extra"]["errors"][0]
                assert error["field"] == "cron" and reason in error["message"], (cron, error)
            zone = admin.patch(f"/api/schedules/{schedule['id']}", json={"timezone": "Mars/Olympus_Mons"})
            assert zone.status_code == 422
            assert zone.json()["extra"]["errors"] == [
                {"field": "timezone", "message": "unknown time zone 'Mars/Olympus_Mons'"}
            ]
            unknown = admin.patch(f"/api/schedules/{schedule['id']}", json={"colour": "red"})
            assert unknown.status_code == 422 and unknown.json()["extra"]["errors"][0]["field"] == "colour"
            # Nothing was written by any refused change.
            after = admin.get(f"/api/schedules/{schedule['id']}").json()
            assert (after["cron"], after["timezone"]) == ("0 6 * * *", "UTC")

            paris = admin.patch(f"/api/schedules/{schedule['id']}", json={"timezone": "Europe/Paris"}).json()
            local = datetime.fromisoformat(paris["next_run_at"]).astimezone(ZoneInfo("Europe/Paris"))
            assert (local.hour, local.minute) == (6, 0)
    finally:
        delete(sw, schedule["id"])


def test_adding_schedules_checks_workflow_organization_and_parameters(sw: World) -> None:
    with sw.server.client(sw.admin_key) as admin:
        cases = [
            ({"workflow": "no_such_flow", "cron": "* * * * *"}, "workflow"),
            ({"workflow": "needs_input", "cron": "* * * * *"}, "params.count"),
            ({"workflow": "needs_input", "cron": "* * * * *", "params": {"count": "x"}}, "params.count"),
            ({"workflow": "tick", "cron": "* * * * *", "organization_id": "nope"}, "organization_id"),
            ({"workflow": "tick", "cron": "every day"}, "cron"),
            ({"workflow": "tick", "cron": "* * * * *", "enabled": "yes"}, "enabled"),
            ({"workflow": "tick", "cron": "* * * * *", "overlap_policy": "pile up"}, "overlap_policy"),
        ]
        for body, field in cases:
            response = admin.post("/api/schedules", json=body)
            assert response.status_code == 422, (body, response.text)
            assert field in [e["field"] for e in response.json()["extra"]["errors"]], (body, response.text)

    with sw.server.client(sw.alice_key) as alice:
        refused = alice.post("/api/schedules", json={"workflow": "tick", "cron": "0 9 * * *"})
        assert refused.status_code == 403
    declared = schedule_of(sw, "weekday_report")
    with sw.server.client(sw.admin_key) as admin:
        conflict = admin.delete(f"/api/schedules/{declared['id']}")
        assert conflict.status_code == 409 and "declared in its code" in conflict.json()["detail"]
        assert admin.get("/api/schedules/not-a-schedule").status_code == 404


def test_an_organization_schedule_fires_live_in_its_organization_and_disabled_ones_do_not(sw: World) -> None:
    live = create(sw, workflow="tick", cron="* * * * * *", organization_id=sw.org_a, params={"label": "org-a"})
    idle = create(sw, workflow="tick", cron="* * * * * *", organization_id=sw.org_a, enabled=False)
    try:
        assert idle["status"] == "disabled" and idle["next_run_at"] is None
        done = wait_for(
            lambda: [r for r in runs(sw, live["id"]) if r["execution_status"] == "Completed"][:2] or None,
            "two completed firings",
        )
        with sw.server.client(sw.admin_key) as admin:
            execution = admin.get(f"/api/executions/{done[0]['execution_id']}").json()
        assert execution["trigger"] == "schedule" and execution["org_id"] == sw.org_a
        assert execution["executed_by"] == SCHEDULER.id and execution["executed_by_name"] == "scheduler@bifrost.invalid"
        assert execution["result"] == {
            "label": "org-a",
            "org_id": sw.org_a,
            "email": "scheduler@bifrost.invalid",
            "scope": sw.org_a,
        }
        assert runs(sw, idle["id"]) == []

        # Members of the organization see its schedules and firings; others do not; only admins change them.
        assert {s["id"] for s in schedules(sw, sw.alice_key)} == {live["id"], idle["id"]}
        assert runs(sw, live["id"], sw.alice_key)[0]["outcome"] == "submitted"
        assert schedules(sw, sw.bob_key) == []
        with sw.server.client(sw.bob_key) as bob, sw.server.client(sw.alice_key) as alice:
            assert bob.get(f"/api/schedules/{live['id']}").status_code == 404
            assert bob.get(f"/api/schedules/{live['id']}/runs").status_code == 404
            assert alice.patch(f"/api/schedules/{live['id']}", json={"enabled": False}).status_code == 403

        # Disabled: no more firings. The other schedule keeps firing, and is the clock of this check.
        patch(sw, idle["id"], enabled=True)
        wait_for(lambda: len(runs(sw, idle["id"])) >= 1, "the re-enabled schedule to fire")
        patch(sw, live["id"], enabled=False)
        clock = len(runs(sw, idle["id"]))
        wait_for(lambda: len(runs(sw, idle["id"])) > clock, "a firing after the change")  # settled
        stopped_at = len(runs(sw, live["id"]))
        wait_for(lambda: len(runs(sw, idle["id"])) >= clock + 3, "the clock schedule to fire twice more")
        assert len(runs(sw, live["id"])) == stopped_at
        assert fire(sw, live["id"], datetime.now(UTC)) is None  # a direct firing of a disabled schedule too
    finally:
        delete(sw, live["id"])
        delete(sw, idle["id"])


# ----- overlap -------------------------------------------------------------------------------------------
def test_a_firing_while_the_previous_run_is_running_is_skipped_or_queued(sw: World) -> None:
    schedule = create(sw, workflow="long_tick", cron="0 0 1 1 *", params={"seconds": 30})
    now = datetime.now(UTC)
    try:
        first = fire(sw, schedule["id"], now)
        assert first is not None and first["outcome"] == "submitted"
        skipped = fire(sw, schedule["id"], now + timedelta(minutes=1))
        assert skipped == {
            "outcome": "skipped",
            "execution_id": None,
            "detail": f"the previous run (execution {first['execution_id']}) was still running",
        }
        assert [r["outcome"] for r in runs(sw, schedule["id"])] == ["skipped", "submitted"]
        assert schedule_of_id(sw, schedule["id"])["last_outcome"] == "skipped"

        patch(sw, schedule["id"], overlap_policy="queue")
        queued = fire(sw, schedule["id"], now + timedelta(minutes=2))
        assert queued is not None and queued["outcome"] == "queued"
        again = fire(sw, schedule["id"], now + timedelta(minutes=3))
        assert again is not None and again["outcome"] == "skipped" and "already queued" in again["detail"]

        cancel(sw, first["execution_id"])  # the previous run ends: the queued firing runs now
        ran = wait_for(
            lambda: next(
                (
                    r
                    for r in runs(sw, schedule["id"])
                    if r["outcome"] == "submitted" and r["execution_id"] != first["execution_id"]
                ),
                None,
            ),
            "the queued firing to run",
        )
        assert ran["detail"] == "ran when the previous run ended" and ran["execution_status"] in ("Pending", "Running")

        # A run still marked running long past its timeout (1800 s) was left by a stopped server: it blocks nothing.
        abandoned = fire(sw, schedule["id"], now + timedelta(seconds=1800 + 60))
        assert abandoned is not None and abandoned["outcome"] == "submitted"
    finally:
        for run in runs(sw, schedule["id"]):
            if run["execution_id"]:
                cancel(sw, run["execution_id"])
        delete(sw, schedule["id"])


def schedule_of_id(world: World, schedule_id: str) -> dict[str, Any]:
    with world.server.client(world.admin_key) as admin:
        return admin.get(f"/api/schedules/{schedule_id}").json()  # type: ignore[no-any-return]


def test_a_firing_the_workflow_refuses_is_recorded_as_failed_with_the_reason(sw: World) -> None:
    schedule = create(sw, workflow="needs_input", cron="0 0 1 1 *", params={"count": 1})
    try:
        # The workflow's signature changed under the schedule: the stored parameters no longer fit.
        async def corrupt() -> None:
            async with transaction(sw.server.platform.sessions) as session:
                row = await session.get(Schedule, schedule["id"])
                assert row is not None
                row.params = {"count": "not a number"}

        sw.server.call(corrupt)
        failed = fire(sw, schedule["id"], datetime.now(UTC))
        assert failed is not None and failed["outcome"] == "failed" and "count" in failed["detail"]
        assert schedule_of_id(sw, schedule["id"])["status"] == "failed"
    finally:
        delete(sw, schedule["id"])


# ----- missed firings --------------------------------------------------------------------------------------
def test_missed_firings_run_once_within_the_grace_period_and_are_recorded_otherwise(sw: World) -> None:
    # Monthly firings on a fake clock in 2025 (the real clock is later: nothing else is overdue then).
    within = create(sw, workflow="tick", cron="0 0 1 * *", params={"label": "late"})
    too_old = create(sw, workflow="tick", cron="0 0 1 * *", params={"label": "too old"})
    start = datetime(2025, 1, 1, tzinfo=UTC)
    try:
        set_next_run(sw, within["id"], start)
        assert catch_up(sw, datetime(2025, 3, 1, 0, 1, tzinfo=UTC)) == 1  # 60 s after the March firing
        recorded = {r["outcome"]: r for r in runs(sw, within["id"])}
        assert set(recorded) == {"missed", "submitted"}
        assert recorded["submitted"]["scheduled_for"] == "2025-03-01T00:00:00+00:00"
        assert recorded["missed"]["detail"] == (
            "2 firing(s) from 2025-01-01T00:00:00+00:00 to 2025-02-01T00:00:00+00:00 were missed "
            "while no server was running"
        )
        assert schedule_of_id(sw, within["id"])["next_run_at"] == "2025-04-01T00:00:00+00:00"
        completed = wait_for(lambda: runs(sw, within["id"])[0]["execution_status"] == "Completed", "the late run")
        assert completed

        delete(sw, within["id"])
        set_next_run(sw, too_old["id"], start)
        assert catch_up(sw, datetime(2025, 3, 1, 0, 10, tzinfo=UTC)) == 0  # 600 s > the 300 s grace
        only = runs(sw, too_old["id"])
        assert [r["outcome"] for r in only] == ["missed"] and only[0]["execution_id"] is None
        assert only[0]["detail"].startswith("3 firing(s) from 2025-01-01T00:00:00+00:00 to 2025-03-01T00:00:00+00:00")
        assert "older than the 300 s grace period, so none ran" in only[0]["detail"]
        assert schedule_of_id(sw, too_old["id"])["last_outcome"] == "missed"
    finally:
        for schedule in (within, too_old):
            with sw.server.client(sw.admin_key) as admin:
                admin.delete(f"/api/schedules/{schedule['id']}")
