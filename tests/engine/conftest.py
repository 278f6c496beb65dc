"""Fixtures of the engine tests: workspaces written to ``tmp_path`` and pools that stop themselves."""

from __future__ import annotations

import asyncio
import textwrap
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from app.engine.pool import WorkerPool
from app.engine.protocol import Job, LogRecord

CONTEXT = {
    "user_id": "user-1",
    "email": "ops@example.com",
    "name": "Ops",
    "org_id": "org-42",
    "org_name": "Acme",
    "scope": "org-42",
}

# One workspace file with a workflow for every behaviour under test.
FLOWS = """
import asyncio
import ctypes
import datetime as dt
import enum
import logging
import os
import sys
import time
from dataclasses import dataclass

from pydantic import BaseModel

from bifrost import UserError, context, data_provider, workflow

log = logging.getLogger(__name__)
print("importing flows")  # output outside any execution must not reach on_log


class Color(enum.Enum):
    RED = "red"
    BLUE = "blue"


class Address(BaseModel):
    street: str
    zip: int


class Report(BaseModel):
    title: str
    created: dt.datetime
    tags: set[str]


@dataclass
class Point:
    x: int
    y: int


class Opaque:
    pass


@workflow
async def coerce(count: int, when: dt.date, color: Color, address: Address, ratio: float = 0.5) -> dict:
    return {
        "count": count,
        "count_type": type(count).__name__,
        "when_type": type(when).__name__,
        "when": when.isoformat(),
        "color_is_enum": isinstance(color, Color),
        "color": color.name,
        "address_type": type(address).__name__,
        "zip": address.zip,
        "ratio": ratio,
    }


@workflow
async def pydantic_result() -> Report:
    return Report(title="weekly", created=dt.datetime(2024, 5, 6, 7, 8, 9, tzinfo=dt.UTC), tags={"a"})


@workflow
async def mixed_result() -> dict:
    return {"point": Point(1, 2), "day": dt.date(2024, 1, 2), "ids": {3}, "pair": (1, "a"), "color": Color.BLUE, "nan": float("nan")}


@workflow
async def unserialisable() -> dict:
    return {"thing": Opaque()}


@workflow
async def user_error() -> None:
    raise UserError("Mailbox alice@example.com does not exist")


def _parse(value):
    raise ValueError(f"bad value {value}")


@workflow
async def crash() -> None:
    _parse(42)


@workflow
async def chatty() -> str:
    log.debug("debug line")
    log.info("info line")
    log.warning("warning line")
    log.error("error line")
    log.critical("critical line")
    print("printed line")
    print("to stderr", file=sys.stderr)
    try:
        1 / 0
    except ZeroDivisionError:
        log.exception("with traceback")
    logging.getLogger("httpx").debug("noisy library debug")
    logging.getLogger("httpx").warning("library warning")
    os.system("echo from a child process")
    return "ok"


@workflow
async def wait_for_file(path: str) -> str:
    log.info("waiting")
    while not os.path.exists(path):
        await asyncio.sleep(0.01)
    log.info("released")
    return "released"


@workflow
async def spin() -> None:
    print("spinning")
    while True:
        pass


@workflow
async def block() -> None:
    print("blocking")
    time.sleep(1000)


@workflow
async def exit_hard() -> None:
    os._exit(3)


@workflow
async def segfault() -> None:
    ctypes.string_at(0)


@workflow
async def whoami() -> dict:
    return {
        "org_id": context.org_id,
        "execution_id": context.execution_id,
        "user_id": context.user_id,
        "email": context.email,
        "pid": os.getpid(),
        "loop": id(asyncio.get_running_loop()),
    }


@workflow
async def hijack_output() -> None:
    import io

    logging.basicConfig(force=True, stream=io.StringIO())
    sys.stdout = io.StringIO()
    sys.stderr = io.StringIO()


@workflow
async def loaded_modules() -> list[str]:
    return sorted(sys.modules)


@data_provider
async def colors(prefix: str = "") -> list[dict]:
    return [{"label": c.name, "value": c.value} for c in Color if c.value.startswith(prefix)]
"""


def write_workspace(root: Path, files: dict[str, str]) -> Path:
    """Write ``{relative path: source}`` under ``root`` and return ``root``."""
    for relpath, source in files.items():
        path = root / relpath
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(source))
    return root


def make_job(
    name: str, params: dict[str, Any] | None = None, *, kind: str = "workflow", timeout: float = 30.0, **context: Any
) -> Job:
    """A job with a fresh execution id and the test context."""
    execution_id = f"exec-{uuid.uuid4().hex[:12]}"
    return Job(
        execution_id=execution_id,
        kind=kind,
        name=name,
        params=params or {},
        context={**CONTEXT, **context, "execution_id": execution_id},
        timeout_seconds=timeout,
    )


class LogCollector:
    """``on_log`` callback that records lines and lets a test wait for one."""

    def __init__(self) -> None:
        self.records: list[LogRecord] = []
        self._waiters: list[tuple[str, str, asyncio.Future[LogRecord]]] = []

    def __call__(self, record: LogRecord) -> None:
        self.records.append(record)
        for execution_id, text, future in self._waiters:
            if record.execution_id == execution_id and text in record.message and not future.done():
                future.set_result(record)

    def of(self, execution_id: str) -> list[LogRecord]:
        """Lines of one execution, in arrival order."""
        return [r for r in self.records if r.execution_id == execution_id]

    async def wait_for(self, execution_id: str, text: str, timeout: float = 15.0) -> LogRecord:
        """Wait until a line of ``execution_id`` containing ``text`` arrives."""
        for record in self.of(execution_id):
            if text in record.message:
                return record
        future: asyncio.Future[LogRecord] = asyncio.get_running_loop().create_future()
        self._waiters.append((execution_id, text, future))
        return await asyncio.wait_for(future, timeout)


@pytest.fixture
def main_workspace(tmp_path: Path) -> Path:
    """A workspace with the FLOWS file."""
    return write_workspace(tmp_path / "ws", {"flows.py": FLOWS})


PoolFactory = Callable[..., Awaitable[WorkerPool]]


@pytest.fixture
async def make_pool() -> AsyncIterator[PoolFactory]:
    """Start pools (``on_log`` is a :class:`LogCollector`) and stop them after the test."""
    pools: list[WorkerPool] = []

    async def make(workspace: Path, size: int = 1, **kwargs: Any) -> WorkerPool:
        pool = WorkerPool(workspace, size, on_log=LogCollector(), **kwargs)
        pools.append(pool)
        await pool.start()
        return pool

    yield make
    for pool in pools:
        await pool.stop()


@pytest.fixture
async def pool(make_pool: PoolFactory, main_workspace: Path) -> WorkerPool:
    """A started one-worker pool on the main workspace."""
    return await make_pool(main_workspace)


def logs(pool: WorkerPool) -> LogCollector:
    """The collector a :func:`make_pool` pool reports to."""
    assert isinstance(pool.on_log, LogCollector)
    return pool.on_log
