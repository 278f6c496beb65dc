"""A server's wait for a queued run (QueueDispatcher.wait) on a real Postgres database.

A run this server just wrote ``Pending`` is waited for on its end NOTIFY alone (no read of its row
first); any other run is read first, so one that ended without a NOTIFY (cancelled while queued,
ended long ago) answers at once instead of after ``poll_seconds``.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import text, update

from app.db import create_engine, session_factory, upgrade_database_async
from app.engine.events import EventHub
from app.engine.queue_dispatcher import QueueDispatcher
from app.engine.queue_schema import DONE_CHANNEL, conninfo, done_payload, ensure_queue_schema
from app.models import Execution
from app.services.executions.dispatch import DispatchRequest
from tests.conftest import POSTGRES_URL

pytestmark = pytest.mark.skipif(not POSTGRES_URL, reason="the queue's waits need BIFROST_TEST_POSTGRES_URL")

# Longer than any wait below: a wait that needed the poll to see an end would time out (False) first.
_NEVER = 600.0


@pytest.fixture
async def queue(database: str) -> AsyncIterator[tuple[QueueDispatcher, Any]]:
    await upgrade_database_async(database)
    await ensure_queue_schema(database)
    engine = create_engine(database)
    sessions = session_factory(engine)
    dispatcher = QueueDispatcher(sessions, EventHub(), conninfo(database), poll_seconds=_NEVER)
    await dispatcher.start()
    try:
        yield dispatcher, sessions
    finally:
        await dispatcher.stop()
        await engine.dispose()


async def _run(sessions: Any, status: str = "Pending") -> str:
    async with sessions() as session:
        execution = Execution(workflow_id="w", workflow_name="noop", executed_by="u", status=status)
        session.add(execution)
        await session.commit()
        return execution.id


async def _end(sessions: Any, execution_id: str, *, notify: bool) -> dict[str, Any]:
    outcome = {"status": "Completed", "result": {"ok": True}, "duration_ms": 1}
    async with sessions() as session:
        await session.execute(update(Execution).where(Execution.id == execution_id).values(status="Completed"))  # type: ignore[arg-type]
        if notify:
            await session.execute(
                text("SELECT pg_notify(:c, :p)"), {"c": DONE_CHANNEL, "p": done_payload(execution_id, outcome)}
            )
        await session.commit()
    return outcome


def _request(execution_id: str) -> DispatchRequest:
    return DispatchRequest(
        execution_id=execution_id, kind="workflow", name="noop", params={}, timeout_seconds=5, context={}
    )


async def test_a_fresh_run_is_answered_by_its_end_notify(queue: tuple[QueueDispatcher, Any]) -> None:
    dispatcher, sessions = queue
    execution_id = await _run(sessions)
    await dispatcher.dispatch(_request(execution_id))
    waiting = asyncio.create_task(dispatcher.wait(execution_id, 30))
    await asyncio.sleep(0.2)
    assert not waiting.done()  # Pending: nothing ended it yet
    outcome = await _end(sessions, execution_id, notify=True)
    assert await waiting is True
    assert dispatcher.outcome(execution_id) == outcome


async def test_an_end_notified_before_the_wait_began_is_not_missed(queue: tuple[QueueDispatcher, Any]) -> None:
    dispatcher, sessions = queue
    execution_id = await _run(sessions)
    await dispatcher.dispatch(_request(execution_id))
    await _end(sessions, execution_id, notify=True)
    for _ in range(100):  # the NOTIFY reaches the listener
        if execution_id in dispatcher._recent_ends:
            break
        await asyncio.sleep(0.05)
    assert await dispatcher.wait(execution_id, 5) is True


async def test_a_run_ended_without_a_notify_is_read_first(queue: tuple[QueueDispatcher, Any]) -> None:
    dispatcher, sessions = queue
    # Cancelled while queued by a server (no node, no NOTIFY), or ended long ago: the row says so.
    cancelled = await _run(sessions, status="Cancelled")
    assert await dispatcher.wait(cancelled, 5) is True
    assert await dispatcher.wait("no-such-run", 5) is True


async def test_a_fresh_run_whose_notify_was_lost_is_found_by_the_poll(database: str, queue: Any) -> None:
    _, sessions = queue
    engine = create_engine(database)
    dispatcher = QueueDispatcher(session_factory(engine), EventHub(), conninfo(database), poll_seconds=0.2)
    await dispatcher.start()
    try:
        execution_id = await _run(sessions)
        await dispatcher.dispatch(_request(execution_id))
        await _end(sessions, execution_id, notify=False)
        assert await dispatcher.wait(execution_id, 30) is True
        assert dispatcher.outcome(execution_id) is None  # read from the row by the caller
    finally:
        await dispatcher.stop()
        await engine.dispose()
