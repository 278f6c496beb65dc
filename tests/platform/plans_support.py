"""Query plans of the statements a service really runs, on SQLite and on Postgres."""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncSession


class Captured:
    """The statements sent to the database while the block ran (``with Captured(session) as seen``)."""

    def __init__(self, session: AsyncSession) -> None:
        self.engine = session.get_bind()
        self.statements: list[tuple[str, Any]] = []

    def _hook(self, _conn: Any, _cursor: Any, statement: str, parameters: Any, _context: Any, _many: bool) -> None:
        self.statements.append((statement, parameters))

    def __enter__(self) -> Captured:
        event.listen(self.engine, "before_cursor_execute", self._hook)
        return self

    def __exit__(self, *_exc: object) -> None:
        event.remove(self.engine, "before_cursor_execute", self._hook)

    def matching(self, fragment: str) -> list[tuple[str, Any]]:
        """The captured statements containing ``fragment``."""
        return [(sql, params) for sql, params in self.statements if fragment in sql]


async def explain(
    session: AsyncSession,
    statement: str,
    parameters: Any,
    disable: tuple[str, ...] = ("enable_seqscan", "enable_bitmapscan", "enable_sort"),
) -> str:
    """The plan of ``statement`` as the driver received it (see :func:`run_and_explain`).

    ``disable``: the Postgres plan types switched off for the EXPLAIN.
    """
    connection = await session.connection()
    if session.get_bind().dialect.name == "sqlite":
        plan = await connection.exec_driver_sql("EXPLAIN QUERY PLAN " + statement, parameters)
        return "\n".join(str(row[-1]) for row in plan)
    for setting in disable:
        await connection.exec_driver_sql(f"SET LOCAL {setting} = off")
    plan = await connection.exec_driver_sql("EXPLAIN " + statement, parameters)
    return "\n".join(str(row[0]) for row in plan)


async def run_and_explain(session: AsyncSession, stmt: Any) -> tuple[list[Any], str]:
    """Execute ``stmt`` and return its rows and the plan of the SQL the driver received.

    The statement is captured as sent (placeholders and parameters included), so the plan is the one
    of the real query, partial-index conditions and inlined literals included. On Postgres, sequential
    scans, bitmap scans and sorts are disabled for the EXPLAIN: on a test-sized table the planner may
    rightly prefer them, but with them disabled it still uses them when no index can serve the filter
    and the order, so a plan without them proves such an index exists. The planner's own choice at a
    million rows is recorded by ``bench/growth.py``.
    """
    with Captured(session) as seen:
        rows = list((await session.execute(stmt)).all())
    statement, parameters = seen.statements[-1]
    return rows, await explain(session, statement, parameters)


def assert_indexed(plan: str, table: str, dialect: str, index: str | None = None, *, sort_ok: bool = False) -> None:
    """The plan reads ``table`` through an index (``index``, a regular expression, when given), with no full
    scan and no sort.

    ``sort_ok``: the matching rows may be sorted (a filter whose index does not give the order).
    """
    if dialect == "sqlite":
        full_scans = [line for line in plan.splitlines() if re.fullmatch(rf"\s*SCAN {table}( AS \w+)?\s*", line)]
        assert not full_scans, plan
        assert sort_ok or "TEMP B-TREE" not in plan, plan
    else:
        assert f"Seq Scan on {table}" not in plan, plan
        assert sort_ok or not re.search(r"^\s*(->\s*)?Sort\b", plan, re.MULTILINE), plan
    if index is not None:
        assert re.search(index, plan), plan
