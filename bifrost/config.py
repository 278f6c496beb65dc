"""Configuration and secrets (``bifrost.config``).

Lookups use the execution's organization first, then global values.
Values keep their type: ``str``, ``int``, ``bool``, and JSON (``dict``, ``list``,
``float``). Secrets (``is_secret=True``) are text, stored encrypted; ``get``
returns their plaintext only inside an execution run by the platform
(elsewhere, and in ``list()``, they are masked as ``"********"``).
"""

from __future__ import annotations

import builtins
import math
from typing import Any
from urllib.parse import quote

from bifrost import _client
from bifrost.errors import NotFoundError, ValidationError


def _path(key: str) -> str:
    # Checked here because a URL cannot carry them: an empty key would address the listing
    # (/config), and "." or ".." would be resolved as path steps. The platform checks the rest.
    if not isinstance(key, str) or not key:
        problem = "must be a non-empty string"
    elif key in (".", ".."):
        problem = "must not be '.' or '..'"
    else:
        return f"/config/{quote(key, safe='')}"
    raise ValidationError(f"key: {problem}", [{"field": "key", "message": problem}])


def _unsupported(value: Any, where: str = "value") -> str | None:
    """Why ``value`` cannot be stored as config (None when it can)."""
    if value is None or isinstance(value, str | bool | int):
        return None
    if isinstance(value, float):
        return None if math.isfinite(value) else f"{where} is {value!r}, which JSON cannot hold"
    if isinstance(value, dict):
        for k, v in value.items():
            if not isinstance(k, str):
                return f"{where} has a key of type {type(k).__name__}; JSON object keys must be text"
            problem = _unsupported(v, f"{where}[{k!r}]")
            if problem:
                return problem
        return None
    if isinstance(value, builtins.list | tuple):  # plain `list` is this module's function
        for i, v in enumerate(value):
            problem = _unsupported(v, f"{where}[{i}]")
            if problem:
                return problem
        return None
    return (
        f"{where} has unsupported type {type(value).__name__}: use text, an integer, true/false, "
        "or JSON (dict, list, number)"
    )


async def get(key: str, default: Any = None) -> Any:
    """Return the value of ``key``, or ``default`` when unset.

    The execution's organization is looked up first, then global values. A secret comes back in
    clear inside a workflow run by the platform; elsewhere (notebooks, scripts with an API key)
    it comes back masked as ``"********"``.
    """
    try:
        body = await _client.call("GET", _path(key))
    except NotFoundError:
        return default
    return body["value"]


async def set(key: str, value: Any, is_secret: bool = False) -> None:
    """Store ``value`` under ``key`` in the current organization (type kept).

    Raises:
        ValidationError: Unsupported value (bytes, sets, NaN, ...), bad key, or a non-text secret.
        PermissionDeniedError: A global write by someone who is not a platform admin.
    """
    problem = _unsupported(value)
    if problem:
        raise ValidationError(f"config value of {key!r}: {problem}", [{"field": "value", "message": problem}])
    await _client.call("PUT", _path(key), json={"value": value, "is_secret": is_secret})


async def list() -> dict[str, Any]:
    """Return every key visible to the caller; secret values are masked."""
    return dict(await _client.call("GET", "/config"))


async def delete(key: str) -> bool:
    """Delete ``key`` from the current organization. Returns True when it existed."""
    body = await _client.call_or_none("DELETE", _path(key))
    return bool(body and body.get("deleted"))
