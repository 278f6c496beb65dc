#!/usr/bin/env python
"""Growth benchmark: history lists, pages and table filters at 10k, 100k and 1M rows (issue 17).

Run ``.venv/bin/python bench/growth.py`` (both databases, 10k/100k/1M executions, 10k and 1M documents;
Postgres from ``--postgres-url`` or ``BIFROST_TEST_POSTGRES_URL``, skipped when neither is set).
``--quick`` runs 2k/20k executions and 2k/20k documents for a check in a minute. Prints ONE JSON
object on stdout; progress goes to stderr. See ``docs/performance.md``.

What runs, per database: the real ``app.web.server.running_server`` (migrations, 2 warm workers
importing ``tests/platform/workspace``, uvicorn on 127.0.0.1) on a fresh SQLite file or a fresh
Postgres database (dropped at the end). The history is written straight into the database with bulk
inserts (``executemany`` in 50k-row transactions on SQLite, ``COPY`` on Postgres), growing to each
scale in turn: 30 organizations, 100 workflow names (the catalogue's among them), statuses 94%
Completed / 3% Failed / 3% others, one data-provider run in ten, created over the last 60 days.

Measured at each scale (p50 of ``--calls`` calls, median of ``--rounds`` rounds; in-process through
``httpx.ASGITransport``, so the whole Litestar stack but no socket):

* ``api_list_50`` / ``api_list_100``: ``GET /api/executions?limit=50|100`` as a platform admin
  acting across organizations; ``api_status_failed`` / ``api_workflow_name``: the filters;
  ``api_cursor_page``: the page after a cursor taken 1,000 rows deep; ``api_org_list``: the admin
  acting in one organization; ``api_user_list``: a technician's own runs; ``sdk_list``:
  ``bifrost.executions.list(limit=50)`` over loopback HTTP;
* ``executions_page``, ``home_page``, ``workflows_page`` (the admin's session), ``schedule_runs``
  (``GET /api/schedules/{id}/runs``, one firing per 100 executions);
* at the largest scale, ``run_p50_idle`` and ``run_p50_while_listing``: ``POST
  /api/workflows/noop/execute?wait=true`` over loopback HTTP, alone and while another client lists
  ``/api/executions?limit=100`` in a loop (SQLite once stalled every run behind such a list).

Tables (one table, seeded to 10k then 1M documents): ``tables_eq`` (``{"email": ...}``, one match)
and ``tables_range`` (``{"amount": {"gte": k, "lt": k + 50}}``, 50 matches) through
``POST /api/tables/{name}/query``, with the fields declared indexed (``table_schema["indexes"]``);
at the largest size also once without the declaration (``*_undeclared``, a few calls) and the time
to build the declared indexes.

The machine is shared: the load average is printed with the figures.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import platform as host
import random
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
WORKSPACE_SOURCE = ROOT / "tests" / "platform" / "workspace"
ORGS = 30
WORKFLOW_NAMES = 100
BATCH = 50_000
TARGET_RATIO = {"history": 2.0, "tables": 3.0}
_COLUMNS = (
    "id", "workflow_id", "workflow_name", "kind", "organization_id", "executed_by", "executed_by_name", "trigger",
    "is_function_key", "status", "input_data", "result", "user_error", "timeout_seconds", "duration_ms",
    "created_at", "started_at", "completed_at",
)  # fmt: skip


logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per request otherwise


def log(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


def load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


# ----- seeding ---------------------------------------------------------------------------------------
class History:
    """Generates execution rows deterministically, oldest first, spread over the last 60 days."""

    def __init__(self, org_ids: list[str], user_ids: list[str], names: list[str], total: int) -> None:
        self.rng = random.Random(17)
        self.org_ids, self.user_ids, self.names = org_ids, user_ids, names
        self.start = datetime.now(UTC) - timedelta(days=60)
        self.step = timedelta(days=60) / max(total, 1)
        self.written = 0

    def rows(self, count: int) -> list[tuple[Any, ...]]:
        out = []
        rng = self.rng
        for _ in range(count):
            i = self.written
            self.written += 1
            created = self.start + self.step * i
            roll = rng.random()
            status = "Completed" if roll < 0.94 else "Failed" if roll < 0.97 else rng.choice(["Cancelled", "Running"])
            # Zipf-ish: a few workflows run most.
            name = self.names[min(int(rng.paretovariate(1.2)) - 1, len(self.names) - 1)]
            org = self.org_ids[i % len(self.org_ids)]
            out.append(
                (
                    str(uuid.UUID(int=rng.getrandbits(128), version=4)),
                    "w-" + name,
                    name,
                    "data_provider" if i % 10 == 7 else "workflow",
                    org,
                    self.user_ids[i % len(self.user_ids)],
                    "Bench",
                    "schedule",
                    False,
                    status,
                    f'{{"n": {i}}}',
                    '{"ok": true}' if status == "Completed" else None,
                    status == "Failed",
                    1800,
                    12,
                    created,
                    created,
                    created + timedelta(milliseconds=12),
                )
            )
        return out


def _sqlite_value(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.astimezone(UTC).replace(tzinfo=None).isoformat(sep=" ", timespec="microseconds")
    return value


def sqlite_insert(path: str, table: str, columns: tuple[str, ...], rows: list[tuple[Any, ...]]) -> None:
    connection = sqlite3.connect(path, timeout=60)
    try:
        marks = ", ".join("?" for _ in columns)
        # A bulk load: a large page cache keeps the random-key indexes (ids are UUIDs) in memory.
        connection.execute("PRAGMA cache_size=-262144")
        connection.execute("PRAGMA synchronous=OFF")
        connection.execute("BEGIN IMMEDIATE")
        connection.executemany(
            f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})",
            ([_sqlite_value(v) for v in row] for row in rows),
        )
        connection.execute("COMMIT")
    finally:
        connection.close()


async def postgres_insert(dsn: str, table: str, columns: tuple[str, ...], rows: list[tuple[Any, ...]]) -> None:
    import asyncpg

    connection = await asyncpg.connect(dsn)
    try:
        await connection.copy_records_to_table(table, records=rows, columns=list(columns))
    finally:
        await connection.close()


class Seeder:
    """Bulk inserts next to the running server (which is idle while they run)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.sqlite = url.startswith("sqlite")
        self.path = url.split("///", 1)[1] if self.sqlite else ""
        self.dsn = url.replace("postgresql+asyncpg://", "postgresql://")

    async def insert(self, table: str, columns: tuple[str, ...], rows: list[tuple[Any, ...]]) -> None:
        if self.sqlite:
            await asyncio.to_thread(sqlite_insert, self.path, table, columns, rows)
        else:
            await postgres_insert(self.dsn, table, columns, rows)

    async def settle(self) -> None:
        """What a running server's database looks like after such growth, not right after a bulk load.

        Postgres: fresh statistics, as autovacuum would have. SQLite: the WAL checkpointed (SQLite does
        it every 1,000 pages written; a bulk load leaves hundreds of MB in the WAL, which every read
        then searches). No ANALYZE on SQLite: the platform never runs it.
        """
        if self.sqlite:
            await asyncio.to_thread(_checkpoint, self.path)
            return
        import asyncpg

        connection = await asyncpg.connect(self.dsn)
        try:
            await connection.execute("ANALYZE")
        finally:
            await connection.close()

    async def database_ms(self, sql: str, times: int = 7) -> float:
        """Median time of ``sql`` on its own connection (ms): the database's part of a line, which the
        machine's load inflates far less than the HTTP stack around it."""
        samples = []
        if self.sqlite:

            def run() -> float:
                connection = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True)
                try:
                    connection.execute(sql).fetchall()  # warm the page cache, as a server's connection is
                    out = []
                    for _ in range(times):
                        start = time.perf_counter()
                        connection.execute(sql).fetchall()
                        out.append(time.perf_counter() - start)
                    return statistics.median(out) * 1000
                finally:
                    connection.close()

            return round(await asyncio.to_thread(run), 3)
        import asyncpg

        connection = await asyncpg.connect(self.dsn)
        try:
            await connection.fetch(sql)
            for _ in range(times):
                start = time.perf_counter()
                await connection.fetch(sql)
                samples.append(time.perf_counter() - start)
        finally:
            await connection.close()
        return round(statistics.median(samples) * 1000, 3)


def _checkpoint(path: str) -> None:
    connection = sqlite3.connect(path, timeout=60)
    try:
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        connection.close()


# ----- measuring -------------------------------------------------------------------------------------
async def p50(call: Callable[[], Awaitable[None]], calls: int, rounds: int) -> dict[str, Any]:
    """Median over rounds of each round's p50 (ms), after 3 warm-up calls."""
    for _ in range(3):
        await call()
    medians = []
    cpu0 = time.process_time()
    for _ in range(rounds):
        samples = []
        for _ in range(calls):
            start = time.perf_counter()
            await call()
            samples.append(time.perf_counter() - start)
        medians.append(statistics.median(samples) * 1000)
    cpu = (time.process_time() - cpu0) * 1000 / (calls * rounds)
    return {"p50_ms": round(statistics.median(medians), 2), "rounds_p50_ms": [round(m, 2) for m in medians],
            "cpu_ms_per_call": round(cpu, 2)}  # fmt: skip


def checked(response: Any, status: int = 200) -> Any:
    assert response.status_code == status, (response.status_code, response.text[:300])
    return response


async def run_database(args: argparse.Namespace, database: str, url: str, tmp: Path) -> dict[str, Any]:
    import httpx

    import bifrost
    from app.db import transaction
    from app.services.executions.schedules import ScheduleService
    from app.services.identity.auth import ApiKeyService, AuthService
    from app.services.identity.organizations import OrganizationService
    from app.services.identity.users import UserService
    from app.services.workflows.catalogue import WorkflowService
    from app.settings import Settings
    from app.web.app import create_app
    from app.web.server import running_server

    settings = Settings(
        home=tmp / "home", workspace=tmp / "workspace", workers=2, watch_workspace=False, database_url=url,
        scheduler_enabled=False,
    )  # fmt: skip
    scales = [int(s) for s in args.scales.split(",")]
    doc_scales = [int(s) for s in args.documents.split(",")]
    result: dict[str, Any] = {"database": database, "scales": {}, "tables": {}}
    async with running_server(settings) as (platform, base_url):
        seeder = Seeder(settings.resolved_database_url)
        async with transaction(platform.sessions) as session:
            users = UserService(session)
            admin = await users.create(None, "admin@bench.io", "Admin", is_superuser=True, password="bench-admin-1")
            admin_actor = await AuthService(session).actor_for_user(admin.id)
            orgs = [await OrganizationService(session).create(admin_actor, f"Client {i:02d}") for i in range(ORGS)]
            tech = await users.create(admin_actor, "tech@bench.io", "Tech", org_id=orgs[0].id, password="bench-tech-1")
            _, admin_key = await ApiKeyService(session).create(admin_actor, "bench admin")
            tech_actor = await AuthService(session).actor_for_user(tech.id)
            _, tech_key = await ApiKeyService(session).create(tech_actor, "bench tech")
            catalogue = [w.name for w in await WorkflowService(session).list(admin_actor)]
            schedule = await ScheduleService(session).create(admin_actor, "noop", "0 3 * * *", enabled=False)
        names = (catalogue + [f"client_job_{i:03d}" for i in range(WORKFLOW_NAMES)])[:WORKFLOW_NAMES]
        user_ids = [tech.id] + [str(uuid.UUID(int=i + 1)) for i in range(ORGS * 3)]
        history = History([o.id for o in orgs], user_ids, names, scales[-1])
        app = create_app(settings, platform, start_platform=False)
        transport = httpx.ASGITransport(app=app)
        async with (
            httpx.AsyncClient(transport=transport, base_url="http://bench") as page_client,
            httpx.AsyncClient(
                transport=transport, base_url="http://bench", headers={"Authorization": f"Bearer {admin_key}"}
            ) as api,
            httpx.AsyncClient(
                transport=transport,
                base_url="http://bench",
                headers={"Authorization": f"Bearer {admin_key}", "X-Bifrost-Org": orgs[3].id},
            ) as api_org,
            httpx.AsyncClient(
                transport=transport, base_url="http://bench", headers={"Authorization": f"Bearer {tech_key}"}
            ) as api_tech,
            httpx.AsyncClient(base_url=base_url, headers={"Authorization": f"Bearer {admin_key}"}, timeout=120) as http,
        ):
            await page_client.get("/login")
            checked(
                await page_client.post(
                    "/login",
                    data={"email": "admin@bench.io", "password": "bench-admin-1",
                          "_csrf_token": page_client.cookies["csrftoken"]},
                ),
                303,
            )  # fmt: skip
            bifrost.configure(base_url, admin_key)
            busy = names[0]

            async def get(client: Any, path: str, **params: Any) -> Any:
                return checked(await client.get(path, params=params))

            for scale in scales:
                began = time.perf_counter()
                while history.written < scale:
                    await seeder.insert("execution", _COLUMNS, history.rows(min(BATCH, scale - history.written)))
                await seeder.insert(
                    "schedule_run",
                    ("id", "schedule_id", "scheduled_for", "fired_at", "outcome", "execution_id", "detail"),
                    [(str(uuid.uuid4()), schedule.id, history.start + timedelta(minutes=scale + i), history.start,
                      "submitted", None, None) for i in range(scale // 100)],
                )  # fmt: skip
                await seeder.settle()
                seeded = round(time.perf_counter() - began, 1)
                log(f"{database}: {scale} executions (seeded in {seeded} s); load {load()}")
                deep = (await get(api, "/api/executions", limit=1000)).headers["x-next-cursor"]
                lines = {
                    "api_list_50": lambda: get(api, "/api/executions", limit=50),
                    "api_list_100": lambda: get(api, "/api/executions", limit=100),
                    "api_status_failed": lambda: get(api, "/api/executions", status="Failed", limit=50),
                    "api_workflow_name": lambda: get(api, "/api/executions", workflow_name=busy, limit=50),
                    "api_cursor_page": lambda deep=deep: get(api, "/api/executions", limit=50, cursor=deep),
                    "api_org_list": lambda: get(api_org, "/api/executions", limit=50),
                    "api_user_list": lambda: get(api_tech, "/api/executions", limit=50),
                    "sdk_list": lambda: bifrost.executions.list(limit=50),
                    "executions_page": lambda: get(page_client, "/executions"),
                    "home_page": lambda: get(page_client, "/"),
                    "workflows_page": lambda: get(page_client, "/workflows"),
                    "schedule_runs": lambda: get(api, f"/api/schedules/{schedule.id}/runs", limit=50),
                }
                measured: dict[str, Any] = {"seed_seconds": seeded, "load_avg": load()}
                # The database's own time for the queries behind the main lines (as the service writes them).
                newest = "ORDER BY created_at DESC, id DESC LIMIT 51"
                measured["database_ms"] = {
                    "list_50": await seeder.database_ms(f"SELECT * FROM execution {newest}"),
                    "status_failed": await seeder.database_ms(
                        f"SELECT * FROM execution WHERE status = 'Failed' {newest}"
                    ),
                    "workflow_name": await seeder.database_ms(
                        f"SELECT * FROM execution WHERE workflow_name = '{busy}' {newest}"
                    ),
                    "org_list": await seeder.database_ms(
                        f"SELECT * FROM execution WHERE organization_id = '{orgs[3].id}' {newest}"
                    ),
                }
                for line, call in lines.items():
                    measured[line] = await p50(call, args.calls, args.rounds)  # type: ignore[arg-type]
                    log(f"  {line}: {measured[line]['p50_ms']} ms")
                result["scales"][str(scale)] = measured

            # A run's latency, alone and while an admin's history list loops (loopback HTTP both).
            async def run_noop() -> None:
                body = checked(await http.post("/api/workflows/noop/execute?wait=true", json={"params": {}})).json()
                assert body["status"] == "Completed", body

            idle = await p50(run_noop, max(args.calls, 20), args.rounds)
            stop = asyncio.Event()
            listed = 0

            async def lister() -> None:
                nonlocal listed
                async with httpx.AsyncClient(
                    base_url=base_url, headers={"Authorization": f"Bearer {admin_key}"}, timeout=120
                ) as other:
                    while not stop.is_set():
                        checked(await other.get("/api/executions", params={"limit": 100}))
                        listed += 1

            looping = asyncio.create_task(lister())
            await asyncio.sleep(0.5)
            busy_runs = await p50(run_noop, max(args.calls, 20), args.rounds)
            stop.set()
            await looping
            result["runs"] = {"run_p50_idle": idle, "run_p50_while_listing": busy_runs, "lists_meanwhile": listed}
            log(f"run p50 idle {idle['p50_ms']} ms, while listing {busy_runs['p50_ms']} ms ({listed} lists)")

            result["tables"] = await run_tables(args, api, seeder, doc_scales, admin_actor, platform)
            bifrost.configure(None)
    return result


async def run_tables(
    args: argparse.Namespace, api: Any, seeder: Seeder, scales: list[int], admin_actor: Any, platform: Any
) -> dict[str, Any]:
    from app.db import transaction
    from app.services.tables.service import TableService

    checked(await api.post("/api/tables", json={"name": "invoices", "table_schema": {"indexes": ["email", "amount"]}}),
            201)  # fmt: skip
    async with transaction(platform.sessions) as session:
        table = (await TableService(session).list(admin_actor))[0]
    written = 0
    out: dict[str, Any] = {}
    now = datetime.now(UTC)
    rng = random.Random(3)

    def documents(first: int, count: int) -> list[tuple[Any, ...]]:
        rows = []
        for i in range(first, first + count):
            data = {"email": f"user{i}@client{i % ORGS}.example", "amount": i, "status": rng.choice(["open", "paid"])}
            encoded = json.dumps(data)
            rows.append((table.id, f"inv-{i:08d}", encoded, None, now, now))
        return rows

    async def query(where: dict[str, Any], table_name: str = "invoices") -> None:
        body = checked(await api.post(f"/api/tables/{table_name}/query", json={"where": where, "limit": 20})).json()
        assert body["documents"], where

    for scale in scales:
        began = time.perf_counter()
        while written < scale:
            count = min(BATCH, scale - written)
            await seeder.insert(
                "document", ("table_id", "id", "data", "dates", "created_at", "updated_at"), documents(written, count)
            )
            written += count
        await seeder.settle()
        seeded = round(time.perf_counter() - began, 1)
        log(f"tables: {scale} documents (seeded in {seeded} s); load {load()}")
        probe = rng.randrange(scale - 100)
        measured: dict[str, Any] = {"seed_seconds": seeded, "load_avg": load()}
        email = {"email": f"user{probe}@client{probe % ORGS}.example"}
        window = {"amount": {"gte": probe, "lt": probe + 50}}
        measured["tables_eq"] = await p50(lambda email=email: query(email), args.calls, args.rounds)  # type: ignore[misc]
        measured["tables_range"] = await p50(lambda window=window: query(window), args.calls, args.rounds)  # type: ignore[misc]
        log(f"  tables_eq {measured['tables_eq']['p50_ms']} ms, tables_range {measured['tables_range']['p50_ms']} ms")
        out[str(scale)] = measured
    # The same queries before the declaration (a few calls: each reads the whole table), and its cost.
    async with transaction(platform.sessions) as session:
        await TableService(session).set_indexed_fields(admin_actor, "invoices", [])
    probe = rng.randrange(written - 100)
    largest = out[str(scales[-1])]
    largest["tables_eq_undeclared"] = await p50(
        lambda: query({"email": f"user{probe}@client{probe % ORGS}.example"}), 2, 1
    )
    largest["tables_range_undeclared"] = await p50(lambda: query({"amount": {"gte": probe, "lt": probe + 50}}), 2, 1)
    began = time.perf_counter()
    async with transaction(platform.sessions) as session:
        await TableService(session).set_indexed_fields(admin_actor, "invoices", ["email", "amount"])
    largest["index_build_seconds"] = round(time.perf_counter() - began, 2)
    log(f"  undeclared: eq {largest['tables_eq_undeclared']['p50_ms']} ms, range "
        f"{largest['tables_range_undeclared']['p50_ms']} ms; building both indexes {largest['index_build_seconds']} s")  # fmt: skip
    return out


def verdicts(results: list[dict[str, Any]]) -> dict[str, Any]:
    """Each line's largest-scale p50 over its smallest-scale p50, against the issue's ratio."""
    out: dict[str, Any] = {}
    for db in results:
        scales = db["scales"]
        first, last = scales[min(scales, key=int)], scales[max(scales, key=int)]
        for line, figures in last.items():
            if isinstance(figures, dict) and "p50_ms" in figures:
                ratio = figures["p50_ms"] / max(first[line]["p50_ms"], 0.01)
                out[f"{db['database']}:{line}"] = {"ratio": round(ratio, 2), "max": TARGET_RATIO["history"],
                                                   "pass": ratio <= TARGET_RATIO["history"]}  # fmt: skip
        for query, ms in last.get("database_ms", {}).items():
            ratio = ms / max(first["database_ms"][query], 0.001)
            out[f"{db['database']}:database_ms:{query}"] = {"ratio": round(ratio, 2), "max": TARGET_RATIO["history"],
                                                            "pass": ratio <= TARGET_RATIO["history"]}  # fmt: skip
        tables = db["tables"]
        if tables:
            small, big = tables[min(tables, key=int)], tables[max(tables, key=int)]
            for line in ("tables_eq", "tables_range"):
                ratio = big[line]["p50_ms"] / max(small[line]["p50_ms"], 0.01)
                out[f"{db['database']}:{line}"] = {"ratio": round(ratio, 2), "max": TARGET_RATIO["tables"],
                                                   "pass": ratio <= TARGET_RATIO["tables"]}  # fmt: skip
    return out


async def main(args: argparse.Namespace) -> dict[str, Any]:
    databases: list[tuple[str, str | None]] = []
    if "sqlite" in args.databases:
        databases.append(("sqlite", None))
    postgres = args.postgres_url or os.environ.get("BIFROST_TEST_POSTGRES_URL")
    if "postgres" in args.databases and postgres:
        databases.append(("postgres", postgres))
    results = []
    started_load = load()
    for name, base in databases:
        tmp = Path(tempfile.mkdtemp(prefix=f"bifrost-bench-growth-{name}-"))
        shutil.copytree(WORKSPACE_SOURCE, tmp / "workspace")
        dbname = f"bench_growth_{os.getpid()}"
        try:
            if base is None:
                url = f"sqlite+aiosqlite:///{tmp / 'growth.db'}"
            else:
                import asyncpg

                admin_dsn = base.replace("postgresql+asyncpg://", "postgresql://")
                connection = await asyncpg.connect(admin_dsn)
                await connection.execute(f'CREATE DATABASE "{dbname}"')
                await connection.close()
                url = base.rsplit("/", 1)[0] + f"/{dbname}"
            results.append(await run_database(args, name, url, tmp))
        finally:
            if base is not None:
                import asyncpg

                connection = await asyncpg.connect(base.replace("postgresql+asyncpg://", "postgresql://"))
                await connection.execute(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)')
                await connection.close()
            shutil.rmtree(tmp, ignore_errors=True)
    return {
        "benchmark": "growth",
        "python": sys.version.split()[0],
        "machine": {"cpus": os.cpu_count(), "platform": host.platform()},
        "load_avg_start": started_load,
        "load_avg_end": load(),
        "calls_per_round": args.calls,
        "rounds": args.rounds,
        "results": results,
        "verdicts": verdicts(results),
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scales", default="10000,100000,1000000", help="execution counts (ascending)")
    parser.add_argument("--documents", default="10000,1000000", help="document counts (ascending)")
    parser.add_argument("--quick", action="store_true", help="2k/20k executions and documents, fewer calls")
    parser.add_argument("--databases", default="sqlite,postgres", help="sqlite, postgres or both")
    parser.add_argument("--postgres-url", default=None, help="server URL (default BIFROST_TEST_POSTGRES_URL)")
    parser.add_argument("--calls", type=int, default=15, help="timed calls per round")
    parser.add_argument("--rounds", type=int, default=3, help="rounds (the median of their p50s is reported)")
    arguments = parser.parse_args()
    if arguments.quick:
        arguments.scales, arguments.documents, arguments.calls = "2000,20000", "2000,20000", 8
    print(json.dumps(asyncio.run(main(arguments)), indent=2))
