"""Declared document fields are indexed: equality and numeric ranges read the index (EXPLAIN), and
answer exactly what the same query answers on an undeclared twin table, on SQLite and on Postgres.

The tests that only read share one seeded database per dialect, which refuses writes; the test that
changes the declarations seeds a database of its own."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Iterator
from contextlib import nullcontext
from typing import Any

import pytest
from sqlalchemy import insert, text
from sqlalchemy.ext.asyncio import AsyncEngine

from app.db import create_engine, read_transaction, session_factory, transaction, upgrade_database
from app.models.base import utcnow
from app.models.document_table import Document
from app.services.actor import Actor
from app.services.errors import InvalidInputError
from app.services.tables.query import date_mirror
from app.services.tables.service import TableService
from tests.platform.plans_support import (
    Captured,
    assert_indexed,
    explain,
    refuse_writes,
    shared_database,
    sqlite_writes_refused,
)

ADMIN = Actor("admin", "admin@x", "Admin", None, True, None)
DOCS = 1200
DECLARED = ["email", "amount", "meta.region"]


def _document(i: int, rng: random.Random) -> dict[str, Any]:
    # Values of every JSON type under the declared names: the index forms must keep the type rules.
    amount: Any = rng.choice([i % 500, float(i % 500) + 0.5, str(i % 500), True, None, {"x": 1}, [i]])
    data: dict[str, Any] = {"email": f"user{i % 600}@x.io" if i % 11 else i % 600, "amount": amount}
    if i % 13:
        data["meta"] = {"region": rng.choice(["eu", "us", "apac", 7])}
    return data


def _seed(database_url: str) -> None:
    upgrade_database(database_url)
    rng = random.Random(5)
    documents = [_document(i, rng) for i in range(DOCS)]

    async def seed() -> None:
        engine = create_engine(database_url)
        async with transaction(session_factory(engine)) as session:
            service = TableService(session)
            indexed = await service.create(ADMIN, "invoices", table_schema={"indexes": DECLARED})
            plain = await service.create(ADMIN, "invoices_plain")
            now = utcnow()
            for table in (indexed, plain):
                rows = [
                    {
                        "table_id": table.id,
                        "id": f"d{i:05d}",
                        "data": d,
                        "dates": date_mirror(d),
                        "created_at": now,
                        "updated_at": now,
                    }
                    for i, d in enumerate(documents)
                ]
                await session.execute(insert(Document), rows)
        if engine.dialect.name == "postgresql":
            async with engine.connect() as connection:
                await connection.execute(text("ANALYZE document"))
        await engine.dispose()

    asyncio.run(seed())


def _opened(database_url: str, *, read_only: bool) -> Iterator[tuple[asyncio.AbstractEventLoop, AsyncEngine]]:
    # Each test has its own engine and event loop (its own connections), as when it seeded its own database.
    loop = asyncio.new_event_loop()
    engine = create_engine(database_url)
    if read_only:
        refuse_writes(engine)
    yield loop, engine
    loop.run_until_complete(engine.dispose())
    loop.close()


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def shared_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The seeded database of the module's tests that only read (one per dialect); it refuses writes."""
    with shared_database(request.param, tmp_path_factory.mktemp("tables"), _seed) as url:
        yield url


@pytest.fixture
def shared_tables(shared_url: str) -> Iterator[tuple[asyncio.AbstractEventLoop, AsyncEngine]]:
    """An engine on the module's seeded database, for a test that only reads."""
    yield from _opened(shared_url, read_only=True)


@pytest.fixture
def tables(database_url: str) -> Iterator[tuple[asyncio.AbstractEventLoop, AsyncEngine]]:
    """A seeded database of the test's own, for a test that writes."""
    _seed(database_url)
    yield from _opened(database_url, read_only=False)


WHERES: list[dict[str, Any]] = [
    {"email": "user42@x.io"},
    {"email": 42},
    {"amount": 100},
    {"amount": 100.5},
    {"amount": {"gt": 480}},
    {"amount": {"gte": 10, "lt": 12}},
    {"amount": {"lte": 1.5}},
    {"amount": {"in": [3, "3", 4.5]}},
    {"meta.region": "eu", "amount": {"gte": 250}},
    {"meta.region": 7},
    {"amount": True},
]


@pytest.mark.parametrize("where", WHERES, ids=[str(w) for w in WHERES])
def test_declared_fields_are_read_through_their_index(shared_tables: Any, where: dict[str, Any]) -> None:
    loop, engine = shared_tables
    dialect = engine.dialect.name

    async def check() -> None:
        async with read_transaction(session_factory(engine)) as session:
            service = TableService(session)
            with Captured(session) as seen:
                page = await service.query(ADMIN, "invoices", where=where, order_by="created_at", limit=1000)
                total = await service.count(ADMIN, "invoices", where=where)
            twin = await service.query(ADMIN, "invoices_plain", where=where, order_by="created_at", limit=1000)
            assert sorted(d.id for d in page.documents) == sorted(d.id for d in twin.documents)
            assert page.total == total == twin.total
            for statement, parameters in seen.matching("FROM document"):
                # Postgres: only sequential scans are ruled out; the planner weighs the rest with the
                # statistics of ANALYZE (the field indexes versus (table_id, created_at) + a filter).
                plan = await explain(session, statement, parameters, disable=("enable_seqscan",))
                assert_indexed(plan, "document", dialect, "ixdoc_", sort_ok=True)

    loop.run_until_complete(check())


def test_declared_indexes_are_not_schema_drift(shared_url: str) -> None:
    """Alembic's model check ignores the run-time indexes of declared fields (they exist here)."""
    from alembic import command

    from app.db import alembic_config

    # The check only reads; Alembic makes its own engine, so on SQLite its connections are told to refuse
    # writes here (the shared Postgres database refuses them on every connection).
    with sqlite_writes_refused() if shared_url.startswith("sqlite") else nullcontext():
        command.check(alembic_config(shared_url))


def test_declarations_change_and_are_checked(tables: Any) -> None:
    loop, engine = tables

    async def check() -> None:
        async with transaction(session_factory(engine)) as session:
            service = TableService(session)
            assert await service.indexed_fields(ADMIN, "invoices") == sorted(DECLARED)
            assert await service.set_indexed_fields(ADMIN, "invoices", ["status"]) == ["status"]
            table = (await service.list(ADMIN))[0]
            assert table.table_schema == {"indexes": ["status"]}
            for bad, message in (
                (["a..b"], "invalid field name"),
                ("email", "list of field names"),
                ([f"f{i}" for i in range(9)], "at most 8"),
            ):
                with pytest.raises(InvalidInputError, match=message) as caught:
                    await service.set_indexed_fields(ADMIN, "invoices", bad)
                assert caught.value.errors[0]["field"] == "indexes"
            with pytest.raises(InvalidInputError) as caught:
                await service.create(ADMIN, "other", table_schema={"indexes": [1]})
            assert caught.value.errors[0]["field"] == "table_schema.indexes"
            assert await service.delete(ADMIN, "invoices") is True
            names = (
                "SELECT name FROM sqlite_master WHERE name LIKE 'ixdoc_%'"
                if engine.dialect.name == "sqlite"
                else ("SELECT indexname FROM pg_indexes WHERE indexname LIKE 'ixdoc_%'")
            )
            assert (await session.execute(text(names))).all() == []

    loop.run_until_complete(check())
