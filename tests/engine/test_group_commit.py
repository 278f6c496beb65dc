"""Group commit: writes waiting together share one transaction; a failing one fails alone."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from app.db import create_engine, session_factory
from app.engine.group_commit import GroupCommitter


@pytest.fixture
async def committer(tmp_path: Path):  # type: ignore[no-untyped-def]
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'g.db'}")
    async with engine.begin() as connection:
        await connection.execute(text("CREATE TABLE t (v INTEGER NOT NULL UNIQUE)"))
    yield GroupCommitter(session_factory(engine)), engine
    await engine.dispose()


def _insert(value: int):  # type: ignore[no-untyped-def]
    async def write(session: AsyncSession) -> int:
        await session.execute(text("INSERT INTO t (v) VALUES (:v)"), {"v": value})
        return value

    return write


async def _values(engine) -> list[int]:  # type: ignore[no-untyped-def]
    async with engine.connect() as connection:
        return [row[0] for row in await connection.execute(text("SELECT v FROM t ORDER BY v"))]


async def test_writes_waiting_together_share_one_commit(committer) -> None:  # type: ignore[no-untyped-def]
    writes, engine = committer
    results = await asyncio.gather(*(writes.run(_insert(v)) for v in range(10)))
    assert results == list(range(10))
    assert await _values(engine) == list(range(10))
    assert writes.transactions == 1  # all ten were queued before the writer ran


async def test_one_at_a_time_is_one_transaction_each(committer) -> None:  # type: ignore[no-untyped-def]
    writes, _engine = committer
    for v in range(3):
        assert await writes.run(_insert(v)) == v
    assert writes.transactions == 3


async def test_a_failing_write_fails_alone_and_the_others_land(committer) -> None:  # type: ignore[no-untyped-def]
    writes, engine = committer
    outcomes = await asyncio.gather(
        writes.run(_insert(1)), writes.run(_insert(1)), writes.run(_insert(2)), return_exceptions=True
    )
    assert outcomes[0] == 1 and outcomes[2] == 2
    assert isinstance(outcomes[1], Exception) and "UNIQUE" in str(outcomes[1])
    assert await _values(engine) == [1, 2]
