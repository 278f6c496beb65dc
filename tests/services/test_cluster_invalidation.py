"""Cache invalidation across servers (app/services/cluster.py): dropped here at once, sent once per commit."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text

from app.db import create_engine, session_factory, transaction
from app.services import cluster


@pytest.fixture
def sent() -> Iterator[list[str]]:
    messages: list[str] = []
    cluster.set_broadcast(messages.append)
    yield messages
    cluster.set_broadcast(None)


async def test_a_write_drops_the_cache_now_and_tells_other_servers_once_when_it_commits(
    tmp_path: Path, sent: list[str]
) -> None:
    drops: list[str] = []
    cluster.register("test-cache", lambda: drops.append("dropped"))
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'c.db'}")
    try:
        async with transaction(session_factory(engine)) as session:
            await session.execute(text("SELECT 1"))
            for _ in range(3):  # three writes in one transaction
                cluster.invalidate_after_commit(session, "test-cache")
            assert drops == ["dropped"] * 3 and sent == []  # nothing leaves before the commit
        assert sent == ["test-cache"]  # once, after the commit
        assert len(drops) == 4  # and again here after the commit
        with pytest.raises(RuntimeError):
            async with transaction(session_factory(engine)) as session:
                cluster.invalidate_after_commit(session, "test-cache")
                raise RuntimeError("rolled back")
        assert sent == ["test-cache"]  # a rolled-back write tells nobody
    finally:
        await engine.dispose()


def test_an_invalidation_from_another_server_drops_here_and_is_not_sent_on(sent: list[str]) -> None:
    drops: list[str] = []
    cluster.register("test-remote", lambda: drops.append("dropped"))
    cluster.drop_remote("test-remote")
    cluster.drop_remote("unknown-cache")  # a newer server's cache this one does not have: ignored
    assert drops == ["dropped"] and sent == []
