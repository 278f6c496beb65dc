"""Stored log lines: paged reads bounded in lines and bytes, and capped appends for notebook runs.

Reads stream rows from the database and stop as soon as a page is full, so a page of a
221 MB log costs what the page holds, not what the log holds (on SQLite statements run on the
event loop: reading a whole log there held every other request). The cap itself is explained in
:mod:`app.services.executions.log_limits`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from app.models import ExecutionLog
from app.models.base import utcnow
from app.services.executions.log_limits import (
    DROPPED_LOGGER,
    LIMIT_LOGGER,
    MARKER_LEVEL,
    MARKER_LOGGERS,
    Admission,
    LogLimits,
    LogPage,
    LogTally,
    external_tallies,
    message_bytes,
    parse_dropped,
)

_COLUMNS = (
    col(ExecutionLog.seq),
    col(ExecutionLog.timestamp),
    col(ExecutionLog.level),
    col(ExecutionLog.logger),
    col(ExecutionLog.message),
)

# Rows fetched per round trip while a page is read: at most this many are read past its end.
_FETCH_ROWS = 16


async def _take(session: AsyncSession, stmt: Any, limit: int, max_bytes: int) -> tuple[list[Any], bool]:
    """Rows of ``stmt`` (selecting at least ``limit + 1``) until ``limit`` rows or ``max_bytes`` of messages.

    Returns the rows and whether more rows follow. The first row is always taken, however long.
    """
    taken: list[Any] = []
    size = 0
    more = False
    # Rows fetched a few at a time as they are iterated, so a page stops reading where it ends (a plain
    # ``session.stream`` fetched every row on SQLite: 50 ms for a page of a 30 MB log, not 5).
    result = await session.stream(stmt.execution_options(yield_per=_FETCH_ROWS))
    try:
        async for row in result:
            row_size = message_bytes(row.message)
            if len(taken) >= limit or (taken and size + row_size > max_bytes):
                more = True
                break
            taken.append(row)
            size += row_size
    finally:
        await result.close()
    return taken, more


async def read_page(session: AsyncSession, execution_id: str, after: int, limit: int, max_bytes: int) -> LogPage:
    """Stored lines of ``execution_id`` with ``seq > after``, in order, at most ``limit`` / ``max_bytes``."""
    stmt = (
        select(*_COLUMNS)
        .where(col(ExecutionLog.execution_id) == execution_id, col(ExecutionLog.seq) > after)
        .order_by(col(ExecutionLog.seq))
        .limit(limit + 1)
    )
    rows, more = await _take(session, stmt, limit, max_bytes)
    return LogPage(rows, rows[-1].seq if more and rows else None)


async def read_tail(session: AsyncSession, execution_id: str, limit: int, max_bytes: int) -> list[Any]:
    """The last stored lines of ``execution_id``, in order, at most ``limit`` / ``max_bytes``."""
    stmt = (
        select(*_COLUMNS)
        .where(col(ExecutionLog.execution_id) == execution_id)
        .order_by(col(ExecutionLog.seq).desc())
        .limit(limit + 1)
    )
    rows, _ = await _take(session, stmt, limit, max_bytes)
    rows.reverse()
    return rows


async def _tally_from_database(session: AsyncSession, execution_id: str, last: Any) -> LogTally:
    """Rebuild a run's tally from what is stored (this process did not keep one)."""
    if last is None:
        return LogTally()
    if last.logger in MARKER_LOGGERS:
        dropped = parse_dropped(last.message) if last.logger == DROPPED_LOGGER else 0
        return LogTally(capped=True, dropped=dropped)
    counted = (
        await session.execute(
            select(func.count(), func.coalesce(func.sum(func.length(col(ExecutionLog.message))), 0)).where(
                col(ExecutionLog.execution_id) == execution_id
            )
        )
    ).one()
    # length() counts characters: the same as bytes for ASCII, a little under for other text.
    return LogTally(lines=int(counted[0]), bytes=int(counted[1]))


async def append_capped(
    session: AsyncSession,
    execution_id: str,
    entries: list[tuple[datetime, str, str, str]],
    limits: LogLimits,
) -> list[dict[str, Any]]:
    """Number and store ``(timestamp, level, logger, message)`` lines of a run written through the API.

    Lines past the run's cap are dropped: the first one is replaced by the limit marker, and one
    more marker line counts them (updated in place as more are dropped).

    Returns:
        The rows inserted (marker lines included), for live viewers.
    """
    last = (
        await session.execute(
            select(col(ExecutionLog.seq), col(ExecutionLog.logger), col(ExecutionLog.message))
            .where(col(ExecutionLog.execution_id) == execution_id)
            .order_by(col(ExecutionLog.seq).desc())
            .limit(1)
        )
    ).first()
    tally = external_tallies.get(execution_id)
    if tally is None:
        tally = await _tally_from_database(session, execution_id, last)
        external_tallies.put(execution_id, tally)
    next_seq = 0 if last is None else int(last.seq) + 1
    dropped_before = tally.dropped
    rows: list[dict[str, Any]] = []

    def add(timestamp: datetime, level: str, logger: str, message: str) -> None:
        nonlocal next_seq
        rows.append(
            {
                "execution_id": execution_id,
                "seq": next_seq,
                "timestamp": timestamp,
                "level": level,
                "logger": logger,
                "message": message,
            }
        )
        next_seq += 1

    for timestamp, level, logger, message in entries:
        admission = tally.admit(message_bytes(message), limits)
        if admission is Admission.STORE:
            add(timestamp, level, logger, message)
        elif admission is Admission.LIMIT:
            add(timestamp, MARKER_LEVEL, LIMIT_LOGGER, limits.limit_message())
    if tally.dropped > dropped_before:
        text = limits.dropped_message(tally.dropped)
        if last is not None and last.logger == DROPPED_LOGGER and not rows:
            # The count line is the run's last line: it keeps counting instead of a new line per call.
            await session.execute(
                update(ExecutionLog)
                .where(col(ExecutionLog.execution_id) == execution_id, col(ExecutionLog.seq) == last.seq)
                .values(message=text)
            )
        else:
            add(utcnow(), MARKER_LEVEL, DROPPED_LOGGER, text)
    if rows:
        await session.execute(ExecutionLog.__table__.insert(), rows)  # type: ignore[attr-defined]
    return rows
