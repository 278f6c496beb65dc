"""The pieces of queue mode that need no Postgres: node concurrency, messages, settings checks."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from app.engine.node import MAX_NODE_WORKERS, default_node_workers, node_workers
from app.engine.queue_schema import conninfo, done_payload, parse_done
from app.settings import Settings


def test_a_node_runs_eight_per_core_capped_by_free_memory() -> None:
    assert default_node_workers(cpus=2, memory_mb=20_000) == 16
    assert default_node_workers(cpus=4, memory_mb=20_000) == 32
    assert default_node_workers(cpus=16, memory_mb=100_000) == MAX_NODE_WORKERS
    assert default_node_workers(cpus=2, memory_mb=1_000) == 6  # 150 MiB each
    assert default_node_workers(cpus=2, memory_mb=100) == 2  # never fewer than two


def test_bifrost_workers_set_wins_over_the_node_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("BIFROST_WORKERS", raising=False)
    assert node_workers(Settings(workers=3)) == 3
    assert node_workers(Settings()) == default_node_workers()


def test_an_ended_runs_message_carries_its_outcome_when_small() -> None:
    now = datetime(2026, 12, 6, 18, 0, tzinfo=UTC)
    outcome = {
        "status": "Completed",
        "result": {"ok": True, "name": "Zoë"},
        "error_message": None,
        "error_type": None,
        "error_traceback": None,
        "user_error": False,
        "started_at": now,
        "completed_at": now,
        "duration_ms": 3,
    }
    assert parse_done(done_payload("run-1", outcome)) == ("run-1", outcome)
    big = {**outcome, "result": "x" * 10_000}
    assert done_payload("run-2", big) == "run-2"  # over the NOTIFY limit: the waiter reads the row
    assert parse_done("run-2") == ("run-2", None)
    assert parse_done(done_payload("run-3", None)) == ("run-3", None)


def test_the_queue_refuses_a_sqlite_database_naming_the_setting() -> None:
    with pytest.raises(ValueError, match="BIFROST_QUEUE=postgres needs a Postgres BIFROST_DATABASE_URL"):
        conninfo("sqlite+aiosqlite:///x.db")
    assert conninfo("postgresql+asyncpg://u:p@db:5432/b") == "postgresql://u:p@db:5432/b"
