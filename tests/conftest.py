"""Shared fixtures: settings on a temporary home, a live server in a thread, Postgres databases."""

from __future__ import annotations

import asyncio
import os
import shutil
import threading
import uuid
from collections.abc import Callable, Coroutine, Iterator
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import httpx
import pytest
from argon2 import PasswordHasher

from app.services.identity import security
from app.settings import Settings
from tests import db_templates

# Passwords: the product hashes with argon2id's RFC 9106 profile (64 MiB, 3 passes, 4 lanes), ~0.3-0.5 s of
# CPU per hash and per sign-in on a 2-core box; the suite creates and signs in users thousands of times.
# In this process (the in-thread live servers too) the same argon2id code runs with its cheapest
# parameters; servers started as processes keep the product's, and tests/services/test_password_hashing.py
# checks those in a fresh interpreter.
security._hasher = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)

POSTGRES_URL = os.environ.get("BIFROST_TEST_POSTGRES_URL")
PLATFORM_WORKSPACE = Path(__file__).parent / "platform" / "workspace"


def make_settings(
    tmp_path: Path,
    database_url: str | None = None,
    workspace: Path | None = None,
    *,
    migrated: bool = True,
    **extra: Any,
) -> Settings:
    """Settings isolated under ``tmp_path`` (SQLite file in the home unless a URL is given).

    Args:
        tmp_path: Folder of the home (``home/``) and, unless given, of a copy of the test workspace.
        database_url: The database; ``None`` is the home's SQLite file.
        workspace: The workspace folder (default: a copy of ``tests/platform/workspace``).
        migrated: With the home's SQLite file, put a migrated copy there when it does not exist yet
            (:mod:`tests.db_templates`): the start then skips running every migration. ``False`` leaves
            it to the platform's first start, for tests of that start. A given ``database_url`` is used
            as it is (migrated or not is up to whoever made it: :func:`create_postgres_database`, the
            ``database_url`` fixture).
        **extra: Other settings.
    """
    if workspace is None:
        workspace = tmp_path / "workspace"
        shutil.copytree(PLATFORM_WORKSPACE, workspace)
    settings = Settings(
        home=tmp_path / "home",
        workspace=workspace,
        database_url=database_url,
        workers=extra.pop("workers", 2),
        watch_workspace=extra.pop("watch_workspace", False),
        log_flush_seconds=extra.pop("log_flush_seconds", 0.2),
        **extra,
    )
    if migrated and database_url is None:
        # Only the file: the platform makes the home 0700 itself (tests check it does).
        db_templates.copy_sqlite_template(settings.home / "bifrost.db")
    return settings


# ----- Postgres ----------------------------------------------------------------------------------
def _admin_dsn() -> str:
    assert POSTGRES_URL
    return POSTGRES_URL.replace("postgresql+asyncpg://", "postgresql://")


def create_postgres_database(*, migrated: bool = True) -> str:
    """Create a database for one test (or module); returns its SQLAlchemy URL.

    Args:
        migrated: Clone this process's migrated template (:mod:`tests.db_templates`); ``False`` makes an
            empty database, for tests of migrations or of a first start.
    """
    import asyncpg

    assert POSTGRES_URL
    name = f"bifrost_t_{uuid.uuid4().hex[:12]}"
    template = f' TEMPLATE "{db_templates.postgres_template(POSTGRES_URL)}"' if migrated else ""

    async def _create() -> None:
        conn = await asyncpg.connect(_admin_dsn())
        try:
            await conn.execute(f'CREATE DATABASE "{name}"{template}')
        finally:
            await conn.close()

    asyncio.run(_create())
    base, _, _ = POSTGRES_URL.rpartition("/")
    return f"{base}/{name}"


def drop_postgres_database(url: str) -> None:
    """Drop a database made by :func:`create_postgres_database`."""
    import asyncpg

    name = url.rsplit("/", 1)[1]

    async def _drop() -> None:
        conn = await asyncpg.connect(_admin_dsn())
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await conn.close()

    asyncio.run(_drop())


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh database URL: a SQLite file, then a Postgres database (skipped without BIFROST_TEST_POSTGRES_URL).

    Migrated (a copy of this process's template), or empty for a test marked ``empty_database`` (a file of
    migration tests says ``pytestmark = pytest.mark.empty_database``).
    """
    migrated = request.node.get_closest_marker("empty_database") is None
    if request.param == "sqlite":
        path = tmp_path / "test.db"
        if migrated:
            db_templates.copy_sqlite_template(path)
        yield f"sqlite+aiosqlite:///{path}"
        return
    if not POSTGRES_URL:
        pytest.skip("Postgres tests need BIFROST_TEST_POSTGRES_URL (set by .ci/run)")
    url = create_postgres_database(migrated=migrated)
    try:
        yield url
    finally:
        drop_postgres_database(url)


def pytest_configure(config: pytest.Config) -> None:
    """Register the ``empty_database`` marker."""
    config.addinivalue_line(
        "markers", "empty_database: the database_url fixture gives an empty database, not a migrated copy"
    )


def pytest_sessionfinish(session: pytest.Session) -> None:
    """Drop this process's database templates (each xdist worker has its own)."""
    db_templates.drop_templates()


# ----- live server ---------------------------------------------------------------------------------
class LiveServer:
    """The platform + HTTP server running in a background thread with its own event loop."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.url = ""
        self.platform: Any = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._main, name="live-server", daemon=True)

    def _main(self) -> None:
        async def serve() -> None:
            from app.web.server import running_server

            self._loop = asyncio.get_running_loop()
            self._stop = asyncio.Event()
            async with running_server(self.settings, recover=True, watch=self.settings.watch_workspace) as (
                platform,
                url,
            ):
                self.platform, self.url = platform, url
                self._ready.set()
                await self._stop.wait()

        try:
            asyncio.run(serve())
        except BaseException as exc:  # surfaced by start()
            self._error = exc
            self._ready.set()

    def start(self) -> LiveServer:
        self._thread.start()
        self._ready.wait(120)
        if self._error:
            raise self._error
        return self

    def stop(self) -> None:
        if self._loop and self._stop:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(60)

    def call(self, factory: Callable[[], Coroutine[Any, Any, Any]]) -> Any:
        """Run a coroutine on the server's loop (to set up data through the services) and return its result."""
        assert self._loop
        future: Future[Any] = asyncio.run_coroutine_threadsafe(factory(), self._loop)
        return future.result(60)

    def client(self, token: str | None = None, **headers: str) -> httpx.Client:
        """An HTTP client for this server, optionally with a bearer token."""
        if token:
            headers["Authorization"] = f"Bearer {token}"
        return httpx.Client(base_url=self.url, headers=headers, timeout=30)


# ----- scheduling under xdist ------------------------------------------------------------------------
# `make test` hands whole files to the workers (`--dist loadfile --no-loadscope-reorder`) in collection
# order. A file of a few long tests (real process clusters, kill -9 cycles) taken last would run alone
# while the other workers sit idle, so the longest files are collected first (longest-first is the
# classic schedule for jobs on parallel machines). Their order, longest first, comes from
# `pytest --durations=0` of a full run; the other files keep pytest's order after them.
LONGEST_FILES_FIRST = (
    "tests/scale/test_cluster.py",
    "tests/platform/test_faults_restart.py",
    "tests/platform/test_api_fuzz.py",
    "tests/platform/test_runs_ahead.py",
    "tests/cli/test_cli.py",
    "tests/scale/test_cluster_events.py",
    "tests/e2e/test_web_app.py",
    "tests/e2e/test_jupyterlab.py",
    "tests/e2e/test_walk_every_page.py",
    "tests/platform/test_config_cli.py",
    "tests/e2e/test_security_browser.py",
    "tests/platform/test_faults_approvals.py",
    "tests/platform/test_knowledge_embeddings.py",
    "tests/platform/test_schedules_leader.py",
    "tests/platform/test_faults_logs.py",
)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Put the longest test files first (stable: tests keep their order inside a file)."""
    rank = {path: position for position, path in enumerate(LONGEST_FILES_FIRST)}
    root = config.rootpath

    def file_rank(item: pytest.Item) -> int:
        return rank.get(item.path.relative_to(root).as_posix(), len(rank))

    items.sort(key=file_rank)
