"""Migrated database templates: Alembic runs once per test process, and fresh test databases are copies.

Every platform start runs all migrations (``Platform.start`` → ``upgrade_database``), ~0.35-0.4 s on an
empty SQLite file and more on Postgres, and the suite starts a few hundred platforms. A test database made
here starts at the head revision instead (the start's upgrade then finds nothing to do, ~0.03 s):

- SQLite: a file migrated once per process in a temporary folder, copied into place.
- Postgres: a database migrated once per process (one per xdist worker), cloned with
  ``CREATE DATABASE ... TEMPLATE``.

The templates are built lazily on first use, under a lock (live servers run in threads), and
:func:`drop_templates` removes them at the end of the session. Tests about migrations or the first start
on an empty database ask for an empty one instead (see ``tests/conftest.py``).
"""

from __future__ import annotations

import asyncio
import atexit
import os
import re
import shutil
import socket
import tempfile
import threading
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

from app.db import upgrade_database

# The files SQLite may keep beside a database: a copy must not meet any of them (a stale WAL would be
# replayed into it), and the template must have none left (they hold what the file alone lacks).
SQLITE_SIDE_FILES = ("-wal", "-shm", "-journal")

# The SQLite template's folder: <temp dir>/bifrost-db-template-<pid>-<random>.
_SQLITE_PREFIX = "bifrost-db-template-"

_lock = threading.Lock()
_sqlite_template: Path | None = None
_postgres_template: tuple[str, str] | None = None  # (admin DSN, database name)
_at_exit_registered = False


def _in_own_thread(function: Callable[..., Any], *args: Any) -> None:
    """Run ``function`` in a new thread and wait: Alembic's env calls ``asyncio.run``, which fails on a
    thread whose event loop is running (an async test or fixture calling ``make_settings``)."""
    errors: list[BaseException] = []

    def target() -> None:
        try:
            function(*args)
        except BaseException as exc:  # re-raised in the caller's thread
            errors.append(exc)

    thread = threading.Thread(target=target, name="db-template")
    thread.start()
    thread.join()
    if errors:
        raise errors[0]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def _drop_at_exit() -> None:
    """Drop the templates when this process exits, also outside a pytest session (where
    ``pytest_sessionfinish`` does it); never in a forked child, whose exit must not take its parent's."""
    global _at_exit_registered
    if not _at_exit_registered:
        _at_exit_registered = True
        owner = os.getpid()
        atexit.register(lambda: drop_templates() if os.getpid() == owner else None)


def sqlite_template() -> Path:
    """The migrated SQLite template of this process (built on first call).

    Returns:
        The path of a complete database file (WAL checkpointed, no side files).
    """
    global _sqlite_template
    with _lock:
        if _sqlite_template is None:
            for stale in Path(tempfile.gettempdir()).glob(f"{_SQLITE_PREFIX}*"):
                pid = stale.name.removeprefix(_SQLITE_PREFIX).partition("-")[0]
                if pid.isdigit() and not _alive(int(pid)):  # a test process killed before its session ended
                    shutil.rmtree(stale, ignore_errors=True)
            path = Path(tempfile.mkdtemp(prefix=f"{_SQLITE_PREFIX}{os.getpid()}-")) / "template.db"
            try:
                # Alembic's env disposes its engine: the last connection's close checkpoints the WAL into the file.
                _in_own_thread(upgrade_database, f"sqlite+aiosqlite:///{path}")
                left = [suffix for suffix in SQLITE_SIDE_FILES if Path(f"{path}{suffix}").exists()]
                if left:
                    raise RuntimeError(f"the SQLite template {path} still has {left}: copies would be incomplete")
            except BaseException:
                shutil.rmtree(path.parent, ignore_errors=True)
                raise
            _sqlite_template = path
            _drop_at_exit()
        return _sqlite_template


def copy_sqlite_template(database: Path) -> bool:
    """Put a migrated database at ``database`` unless one is there already.

    An existing file (a restarted test's home) is left as it is, and so is a path with a WAL or journal
    beside it. The copy is made under another name and renamed, so no one sees a partial file.

    Args:
        database: Where the SQLite file goes (its folder is created as needed).

    Returns:
        Whether a copy was made.
    """
    if any(Path(f"{database}{suffix}").exists() for suffix in ("", *SQLITE_SIDE_FILES)):
        return False
    template = sqlite_template()
    database.parent.mkdir(parents=True, exist_ok=True)
    partial = database.with_name(f".{database.name}.{os.getpid()}.{threading.get_ident()}.copying")
    shutil.copyfile(template, partial)
    os.replace(partial, database)
    return True


def _admin_execute(admin_dsn: str, *statements: str) -> None:
    """Run statements, each outside a transaction (``CREATE``/``DROP DATABASE``), as the admin role."""
    import asyncpg

    async def run() -> None:
        conn = await asyncpg.connect(admin_dsn)
        try:
            for statement in statements:
                await conn.execute(statement)
        finally:
            await conn.close()

    _in_own_thread(asyncio.run, run())


# Templates of this machine's test processes: bifrost_tpl_<host>_<xdist worker or main>_<pid>.
_TEMPLATE_PREFIX = f"bifrost_tpl_{re.sub(r'[^a-z0-9]', '', socket.gethostname().lower())[:16]}_"


def _stale_templates(admin_dsn: str) -> list[str]:
    """This machine's templates whose process is gone (killed before the end of its session)."""
    import asyncpg

    found: list[str] = []

    async def run() -> None:
        conn = await asyncpg.connect(admin_dsn)
        try:
            rows = await conn.fetch("SELECT datname FROM pg_database WHERE starts_with(datname, $1)", _TEMPLATE_PREFIX)
        finally:
            await conn.close()
        for row in rows:
            pid = row["datname"].rpartition("_")[2]
            if pid.isdigit() and not _alive(int(pid)):
                found.append(row["datname"])

    _in_own_thread(asyncio.run, run())
    return found


def postgres_template(server_url: str) -> str:
    """The name of this process's migrated Postgres template on the server of ``server_url`` (built on first call).

    Named by host, xdist worker and process id, so concurrent test runs on one server never share (or
    drop) each other's template; the templates of this host's processes that were killed before their
    session ended are dropped here. Nothing stays connected to it: Alembic's env disposes its engine, and
    ``CREATE DATABASE ... TEMPLATE`` needs a source without connections.

    Args:
        server_url: SQLAlchemy URL (``postgresql+asyncpg://...``) of a database on the server, as a role
            that may create databases.

    Returns:
        The template database's name.
    """
    global _postgres_template
    with _lock:
        if _postgres_template is None:
            admin_dsn = server_url.replace("postgresql+asyncpg://", "postgresql://")
            worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
            name = f"{_TEMPLATE_PREFIX}{worker}_{os.getpid()}"
            stale = [f'DROP DATABASE IF EXISTS "{old}" WITH (FORCE)' for old in _stale_templates(admin_dsn)]
            _admin_execute(
                admin_dsn, *stale, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)', f'CREATE DATABASE "{name}"'
            )
            try:
                _in_own_thread(upgrade_database, f"{server_url.rpartition('/')[0]}/{name}")
            except BaseException:
                _admin_execute(admin_dsn, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
                raise
            _postgres_template = (admin_dsn, name)
            _drop_at_exit()
        return _postgres_template[1]


def drop_templates() -> None:
    """Remove this process's templates (the end of the test session); databases cloned from them stay."""
    global _sqlite_template, _postgres_template
    with _lock:
        if _sqlite_template is not None:
            shutil.rmtree(_sqlite_template.parent, ignore_errors=True)
            _sqlite_template = None
        if _postgres_template is not None:
            admin_dsn, name = _postgres_template
            _postgres_template = None
            try:
                _admin_execute(admin_dsn, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            except Exception as exc:  # the server went away: the results stand, the template is left over
                warnings.warn(f"could not drop the Postgres template {name}: {exc}", stacklevel=1)
