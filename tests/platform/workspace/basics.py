"""Workflows used by the platform tests (copied into a temporary workspace)."""

import asyncio
import ctypes
import logging
import os
import time
from datetime import date

from pydantic import BaseModel

from bifrost import UserError, context, data_provider, executions, organizations, users, workflow

logger = logging.getLogger(__name__)


class Point(BaseModel):
    x: int
    y: int


@workflow
async def noop() -> None:
    """Does nothing (benchmarks)."""


@workflow(category="Math")
async def add(a: int, b: int = 2) -> dict:
    """Add two numbers.

    Args:
        a: First.
        b: Second.
    """
    logger.info("adding %s and %s", a, b)
    return {"sum": a + b}


@workflow
async def typed(day: date, point: Point, tags: list[str] | None = None) -> dict:
    """Echo typed parameters back."""
    return {"day": day.isoformat(), "point": point, "tags": tags or []}


@workflow
async def whoami() -> dict:
    """Return the execution context."""
    return {
        "user_id": context.user_id,
        "email": context.email,
        "org_id": context.org_id,
        "org_name": context.org_name,
        "scope": context.scope,
        "execution_id": context.execution_id,
        "is_platform_admin": context.is_platform_admin,
        "is_function_key": context.is_function_key,
        "is_global_scope": context.is_global_scope,
    }


@workflow
async def chatty() -> str:
    """Log at every level and print."""
    logger.debug("debug line")
    logger.info("info line")
    logger.warning("warning line")
    logger.error("error line")
    print("printed line")
    return "ok"


@workflow
async def slow_logger(steps: int = 3, delay: float = 0.3) -> int:
    """Log a line per step, slowly."""
    for i in range(steps):
        logger.info("step %d", i)
        await asyncio.sleep(delay)
    return steps


@workflow
async def user_fails() -> None:
    """Raise a user-facing error."""
    raise UserError("The mailbox is full; ask IT to raise the quota.")


@workflow
async def crashes() -> None:
    """Raise an unexpected error."""
    raise KeyError("secret internal detail")


@workflow
async def unserialisable() -> object:
    """Return something JSON cannot hold."""
    return object()


@workflow(timeout_seconds=1)
async def cpu_forever() -> None:
    """Spin the CPU without yielding."""
    while True:
        pass


@workflow(timeout_seconds=1)
async def blocking_sleep() -> None:
    """Block the worker's thread."""
    time.sleep(1000)


@workflow
async def sleeper(seconds: float = 30) -> str:
    """Sleep (for cancel tests)."""
    await asyncio.sleep(seconds)
    return "woke"


@workflow
async def hard_exit() -> None:
    """Kill the worker process abruptly."""
    os._exit(3)


@workflow
async def segfault() -> None:
    """Crash the interpreter."""
    ctypes.string_at(0)


@workflow
async def list_my_executions() -> list[str]:
    """Use the SDK to list executions."""
    return [e.execution_id for e in await executions.list(limit=100)]


@workflow
async def list_orgs() -> list[str]:
    """Admin-only SDK call."""
    return [o.name for o in await organizations.list()]


@workflow
async def list_users_sdk() -> int:
    """Admin-only SDK call."""
    return len(await users.list())


@data_provider(cache_ttl_seconds=60)
async def colours() -> list[dict]:
    """Colour options."""
    return [{"label": "Red", "value": "red"}, {"label": "Blue", "value": "blue"}]


@workflow
async def leak_token() -> str:
    """Return this execution's SDK token (to prove it dies with the execution)."""
    from bifrost._context import current_connection

    connection = current_connection()
    assert connection is not None and connection.token
    return connection.token


@workflow
async def where_am_i() -> dict:
    """Report the worker's working directory and whether the server's home is reachable from it."""
    import os

    return {"cwd": os.getcwd(), "home_visible": os.path.exists(".bifrost") or os.path.exists("home")}


class Strict(BaseModel):
    amount: int


@workflow
async def leaky_validation(value: str) -> int:
    """Validate user data with pydantic inside the workflow (its error text contains the input)."""
    return Strict(amount=value).amount  # type: ignore[arg-type]


@workflow
async def odd_text() -> str:
    """Log and return text with a lone surrogate (from bytes decoded with surrogateescape)."""
    text = b"caf\xe9".decode("utf-8", errors="surrogateescape")
    logger.info("menu: %s", text)
    logger.info("after the odd line")
    return "done"


@workflow
async def nested_add(a: int) -> dict:
    """Run another workflow through the SDK and wait for it."""
    from bifrost import workflows

    run = await workflows.execute("add", {"a": a})
    return {"status": run.status, "result": run.result}
