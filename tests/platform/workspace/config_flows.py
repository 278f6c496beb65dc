"""Workflows for the config and secrets tests (copied into a temporary workspace)."""

import asyncio
import hashlib
import json
import logging
import time

from bifrost import UserError, config, workflow
from bifrost.errors import ValidationError

logger = logging.getLogger(__name__)


@workflow
async def config_get(key: str) -> dict:
    """Read one key and report its value, Python type and (for text) SHA-256.

    The digest lets a test check a secret's plaintext although the value itself is redacted.
    """
    value = await config.get(key, default="<unset>")
    digest = hashlib.sha256(value.encode()).hexdigest() if isinstance(value, str) else None
    return {"value": value, "type": type(value).__name__, "sha256": digest}


@workflow
async def config_set(key: str, value_json: str, is_secret: bool = False) -> dict:
    """Store a value (given as JSON text, so every type can be passed), then read it back."""
    await config.set(key, json.loads(value_json), is_secret=is_secret)
    back = await config.get(key)
    return {"value": back, "type": type(back).__name__}


@workflow
async def config_list() -> dict:
    """Everything visible (secrets masked)."""
    return await config.list()


@workflow
async def config_delete(key: str) -> bool:
    """Delete a key of the execution's organization."""
    return await config.delete(key)


@workflow
async def config_bad_values() -> dict:
    """What the SDK says about values and keys it cannot store."""
    problems = {}
    for name, value in {"bytes": b"raw", "set": {1, 2}, "nan": float("nan"), "nested": {"a": [b"x"]}}.items():
        try:
            await config.set("bad", value)
            problems[name] = "stored"
        except ValidationError as exc:
            problems[name] = f"ValidationError: {exc}"
    for name, call in {"get": config.get(""), "delete": config.delete(""), "dots": config.set("..", 1)}.items():
        try:
            await call
            problems[name] = "accepted"
        except ValidationError as exc:
            problems[name] = f"ValidationError: {exc}"
    try:
        await config.set(" padded key", "x")
        problems["key"] = "stored"
    except ValidationError as exc:
        problems["key"] = f"ValidationError: {exc} {exc.errors}"
    return problems


@workflow
async def leak_secret(key: str, how: str = "return", pause: float = 0.0) -> dict:
    """Read a secret and try every way of letting it out: logs, print, result, errors.

    Args:
        key: The secret's key.
        how: ``return`` the secret, raise it in a ``user_error`` or a ``crash``.
        pause: Seconds to wait after logging (so a live viewer can connect).
    """
    secret = await config.get(key)
    logger.info("the secret is %s", secret)
    print(f"printed: {secret}")
    logger.warning("twice: %s and %s", secret, secret)
    if pause:
        await asyncio.sleep(pause)
    if how == "user_error":
        raise UserError(f"could not log in with {secret}")
    if how == "crash":
        raise RuntimeError(f"crashed holding {secret}")
    return {"secret": secret, "nested": [f"prefix-{secret}-suffix", 42], secret: "as a key"}


@workflow
async def store_and_leak_secret(key: str, value: str) -> str:
    """Write a secret and print it: written secrets are redacted too."""
    await config.set(key, value, is_secret=True)
    print(f"stored {value}")
    return value


@workflow
async def config_get_timings(key: str, calls: int = 200) -> list[float]:
    """Milliseconds per ``config.get`` call, measured inside the worker (bench/config_get.py)."""
    timings = []
    for _ in range(calls):
        start = time.perf_counter()
        await config.get(key)
        timings.append((time.perf_counter() - start) * 1000.0)
    return timings
