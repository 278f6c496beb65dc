#!/usr/bin/env python
"""Document tables benchmark: the service's query and count against hand-written SQL.

Run ``.venv/bin/python bench/tables.py [--database-url URL]`` (default: a fresh SQLite file
in a temporary directory). A Postgres URL must point at a scratch database: the migrations
are applied to it and the benchmark's organization and table are deleted at the end.
Prints ONE JSON object on stdout; progress goes to stderr. See ``docs/performance.md``.

What is measured, in one process on one database, alternating the two sides run by run:

* ``query``: ``TableService.query(where={"status": "active", "amount": {"gt": 5000}},
  order_by="amount", order_dir="desc", limit=20)`` — one page and the total, as the SDK gets
  it — against the two statements a person would write for the same answer (page + count).
* ``count``: ``TableService.count`` with the same filter against one hand-written count.
* ``lookup`` (information, no target): equality on a near-unique field
  (``{"email": ...}``), where Postgres can use the GIN index.

Both sides run through the same engine, in one transaction each; the service side also
resolves the scope and looks the table up by name, as every API call does. The target is
service p50 within 3x the hand-written SQL's p50.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sqlalchemy import insert, text  # noqa: E402

from app.db import create_engine, session_factory, transaction, upgrade_database_async  # noqa: E402
from app.models import Organization  # noqa: E402
from app.models.document_table import DocTable, Document  # noqa: E402
from app.services.actor import Actor  # noqa: E402
from app.services.tables.query import date_mirror  # noqa: E402
from app.services.tables.service import TableService  # noqa: E402

TARGET_RATIO = 3.0
TABLE = "bench_customers"
WHERE = {"status": "active", "amount": {"gt": 5000}}

# The hand-written equivalents, per database (what a person would type for the same answer).
RAW = {
    "sqlite": {
        "page": (
            "SELECT id, data, created_at, updated_at FROM document WHERE table_id = :t "
            "AND json_extract(data, '$.status') = 'active' AND json_extract(data, '$.amount') > 5000 "
            "ORDER BY json_extract(data, '$.amount') DESC LIMIT 20"
        ),
        "count": (
            "SELECT count(*) FROM document WHERE table_id = :t "
            "AND json_extract(data, '$.status') = 'active' AND json_extract(data, '$.amount') > 5000"
        ),
        "lookup": "SELECT id FROM document WHERE table_id = :t AND json_extract(data, '$.email') = :email",
    },
    "postgresql": {
        "page": (
            "SELECT id, data, created_at, updated_at FROM document WHERE table_id = :t "
            "AND data->>'status' = 'active' AND (data->>'amount')::numeric > 5000 "
            "ORDER BY (data->>'amount')::numeric DESC LIMIT 20"
        ),
        "count": (
            "SELECT count(*) FROM document WHERE table_id = :t "
            "AND data->>'status' = 'active' AND (data->>'amount')::numeric > 5000"
        ),
        "lookup": "SELECT id FROM document WHERE table_id = :t AND data->>'email' = :email",
    },
}


def log(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


def quantile(sorted_values: list[float], q: float) -> float:
    """Linear-interpolation quantile of already sorted values (q in [0, 1])."""
    pos = (len(sorted_values) - 1) * q
    lo = int(pos)
    hi = min(lo + 1, len(sorted_values) - 1)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (pos - lo)


def summarize(latencies_s: list[float]) -> dict[str, Any]:
    values = sorted(v * 1000.0 for v in latencies_s)
    return {
        "runs": len(values),
        "p50_ms": round(quantile(values, 0.50), 3),
        "p95_ms": round(quantile(values, 0.95), 3),
        "mean_ms": round(statistics.fmean(values), 3),
        "min_ms": round(values[0], 3),
    }


def _data(value: Any) -> dict[str, Any]:
    """A JSON column read through text(): JSON text on some drivers, decoded on others."""
    return json.loads(value) if isinstance(value, str) else value  # type: ignore[no-any-return]


def make_document(i: int, rng: random.Random, start: datetime) -> dict[str, Any]:
    signup = start + timedelta(minutes=rng.randrange(0, 60 * 24 * 365 * 3))
    return {
        "name": f"Customer {i}",
        "email": f"customer{i}@example.com",
        "status": rng.choice(("active", "active", "inactive", "trial")),
        "amount": rng.randrange(0, 10_000),
        "score": round(rng.random() * 100, 2),
        "region": rng.choice(("emea", "amer", "apac")),
        "signup": signup.isoformat(),
        "tags": rng.sample(["a", "b", "c", "d"], 2),
    }


async def seed(sessions: Any, documents: int) -> tuple[Actor, str, str]:
    """An organization, its table and ``documents`` documents (bulk Core inserts; dates mirrored as the service does)."""
    rng = random.Random(42)
    start = datetime(2022, 1, 1, tzinfo=UTC)
    async with transaction(sessions) as session:
        org = Organization(name=f"bench-tables-{time.time_ns()}")
        session.add(org)
        await session.flush()
        table = DocTable(organization_id=org.id, name=TABLE)
        session.add(table)
        await session.flush()
        org_id, table_id = org.id, table.id
    created = datetime.now(UTC)
    batch = 5000
    for first in range(0, documents, batch):
        rows = []
        for i in range(first, min(first + batch, documents)):
            data = make_document(i, rng, start)
            stamp = created + timedelta(microseconds=i)
            rows.append(
                {
                    "table_id": table_id,
                    "id": f"doc-{i:06d}",
                    "data": data,
                    "dates": date_mirror(data),
                    "created_at": stamp,
                    "updated_at": stamp,
                }
            )
        async with transaction(sessions) as session:
            await session.execute(insert(Document), rows)
        log(f"seeded {min(first + batch, documents)}/{documents}")
    actor = Actor(
        user_id="bench",
        email="bench@example.com",
        name="Bench",
        organization_id=org_id,
        is_superuser=False,
        acting_org_id=org_id,
    )
    return actor, org_id, table_id


async def cleanup(sessions: Any, org_id: str, table_id: str) -> None:
    """Leave a scratch database as it was."""
    async with transaction(sessions) as session:
        await session.execute(text("DELETE FROM document WHERE table_id = :t"), {"t": table_id})
        await session.execute(text("DELETE FROM doc_table WHERE id = :t"), {"t": table_id})
        await session.execute(text("DELETE FROM organization WHERE id = :o"), {"o": org_id})


async def measure(
    sessions: Any,
    service_call: Callable[[Any], Awaitable[Any]],
    raw_call: Callable[[Any], Awaitable[Any]],
    runs: int,
    warmup: int,
) -> tuple[dict[str, Any], Any, Any]:
    """Alternate service and raw runs (each in its own transaction); return stats and last results."""
    service_times: list[float] = []
    raw_times: list[float] = []
    service_result = raw_result = None
    for index in range(warmup + runs):
        for side in ("service", "raw"):
            began = time.perf_counter()
            async with transaction(sessions) as session:
                if side == "service":
                    service_result = await service_call(session)
                else:
                    raw_result = await raw_call(session)
            elapsed = time.perf_counter() - began
            if index >= warmup:
                (service_times if side == "service" else raw_times).append(elapsed)
    service, raw = summarize(service_times), summarize(raw_times)
    stats = {
        "service": service,
        "raw_sql": raw,
        "ratio_p50": round(service["p50_ms"] / raw["p50_ms"], 2),
        "ratio_p95": round(service["p95_ms"] / raw["p95_ms"], 2),
    }
    return stats, service_result, raw_result


async def main(args: argparse.Namespace) -> dict[str, Any]:
    url = args.database_url or f"sqlite+aiosqlite:///{Path(tempfile.mkdtemp(prefix='bench-tables-')) / 'bench.db'}"
    log(f"database: {url.split('@')[-1]}")
    await upgrade_database_async(url)
    engine = create_engine(url)
    sessions = session_factory(engine)
    dialect = engine.dialect.name
    raw = RAW[dialect]
    try:
        began = time.perf_counter()
        actor, org_id, table_id = await seed(sessions, args.documents)
        seed_s = time.perf_counter() - began
        async with engine.begin() as conn:  # planner statistics, as a maintained database has
            await conn.execute(text("ANALYZE"))

        async def service_query(session: Any) -> Any:
            return await TableService(session).query(
                actor, TABLE, where=WHERE, order_by="amount", order_dir="desc", limit=20
            )

        async def raw_query(session: Any) -> Any:
            rows = (await session.execute(text(raw["page"]), {"t": table_id})).all()
            total = (await session.execute(text(raw["count"]), {"t": table_id})).scalar_one()
            return rows, total

        async def service_count(session: Any) -> Any:
            return await TableService(session).count(actor, TABLE, where=WHERE)

        async def raw_count(session: Any) -> Any:
            return (await session.execute(text(raw["count"]), {"t": table_id})).scalar_one()

        email = f"customer{args.documents // 2}@example.com"

        async def service_lookup(session: Any) -> Any:
            return await TableService(session).query(actor, TABLE, where={"email": email}, limit=20)

        async def raw_lookup(session: Any) -> Any:
            return (await session.execute(text(raw["lookup"]), {"t": table_id, "email": email})).all()

        results: dict[str, Any] = {}
        log("query")
        results["query"], page, (raw_rows, raw_total) = await measure(
            sessions, service_query, raw_query, args.runs, args.warmup
        )
        # Same answer on both sides, or the comparison means nothing. (Ties on amount may order
        # differently: the service breaks them by id, the hand-written SQL does not.)
        assert page.total == raw_total, (page.total, raw_total)
        assert [d.data["amount"] for d in page.documents] == [_data(row[1])["amount"] for row in raw_rows]
        log("count")
        results["count"], counted, raw_counted = await measure(
            sessions, service_count, raw_count, args.runs, args.warmup
        )
        assert counted == raw_counted == raw_total
        log("lookup")
        results["lookup"], found, raw_found = await measure(
            sessions, service_lookup, raw_lookup, args.runs, args.warmup
        )
        assert [d.id for d in found.documents] == [r[0] for r in raw_found] and found.total == 1

        if args.keep:
            log(f"kept table {table_id} of organization {org_id}")
        else:
            await cleanup(sessions, org_id, table_id)
    finally:
        await engine.dispose()

    worst = max(results["query"]["ratio_p50"], results["count"]["ratio_p50"])
    return {
        "benchmark": "tables",
        "database": dialect,
        "documents": args.documents,
        "matching": raw_total,
        "seed_seconds": round(seed_s, 1),
        "where": WHERE,
        **results,
        "target": {"ratio_p50_max": TARGET_RATIO, "met": worst <= TARGET_RATIO},
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count()},
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", help="SQLAlchemy URL (default: a fresh SQLite file)")
    parser.add_argument("--documents", type=int, default=100_000, help="documents to seed (default 100000)")
    parser.add_argument("--runs", type=int, default=30, help="measured runs per side and scenario (default 30)")
    parser.add_argument("--keep", action="store_true", help="keep the seeded data (to inspect query plans)")
    parser.add_argument("--warmup", type=int, default=3, help="unmeasured runs first (default 3)")
    print(json.dumps(asyncio.run(main(parser.parse_args())), indent=2))
