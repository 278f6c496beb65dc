"""Query plans of the statements a service really runs, on SQLite and on Postgres."""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncSession


async def run_and_explain(session: AsyncSession, stmt: Any) -> tuple[list[Any], str]:
    """Execute ``stmt`` and return its rows and the plan of the SQL the driver received.

    The statement is captured as sent (placeholders and parameters included), so the plan is the one
    of the real query, partial-index conditions and inlined literals included. On Postgres, sequential
    scans, bitmap scans and sorts are disabled for the EXPLAIN: on a test-sized table the planner may
    rightly prefer them, but with them disabled it still uses them when no index can serve the filter
    and the order, so a plan without them proves such an index exists. The planner's own choice at a
    million rows is recorded by ``bench/growth.py``.
    """
    captured: list[tuple[str, Any]] = []
    engine = session.get_bind()

    def hook(_conn: Any, _cursor: Any, statement: str, parameters: Any, _context: Any, _many: bool) -> None:
        captured.append((statement, parameters))

    event.listen(engine, "before_cursor_execute", hook)
    try:
        rows = list((await session.execute(stmt)).all())
    finally:
        event.remove(engine, "before_cursor_execute", hook)
    statement, parameters = captured[-1]
    connection = await session.connection()
    if engine.dialect.name == "sqlite":
        plan = await connection.exec_driver_sql("EXPLAIN QUERY PLAN " + statement, parameters)
        return rows, "\n".join(str(row[-1]) for row in plan)
    for setting in ("enable_seqscan", "enable_bitmapscan", "enable_sort"):
        await connection.exec_driver_sql(f"SET LOCAL {setting} = off")
    plan = await connection.exec_driver_sql("EXPLAIN " + statement, parameters)
    return rows, "\n".join(str(row[0]) for row in plan)


def assert_indexed(plan: str, table: str, dialect: str, index: str | None = None) -> None:
    """The plan reads ``table`` through an index (``index`` when given), with no full scan and no sort."""
    if dialect == "sqlite":
        full_scans = [line for line in plan.splitlines() if re.fullmatch(rf"\s*SCAN {table}( AS \w+)?\s*", line)]
        assert not full_scans, plan
        assert "TEMP B-TREE" not in plan, plan
    else:
        assert f"Seq Scan on {table}" not in plan, plan
        assert not re.search(r"^\s*(->\s*)?Sort\b", plan, re.MULTILINE), plan
    if index is not None:
        assert index in plan, plan
