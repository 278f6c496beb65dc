"""Configuration and secrets (``bifrost.config``).

Lookups use the execution's organization first, then global values.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from bifrost import _client
from bifrost.errors import NotFoundError


async def get(key: str, default: Any = None) -> Any:
    """Return the value of ``key`` (secrets decrypted), or ``default`` when unset."""
    try:
        body = await _client.call("GET", f"/config/{quote(key, safe='')}")
    except NotFoundError:
        return default
    return body["value"]


async def set(key: str, value: Any, is_secret: bool = False) -> None:
    """Store ``value`` under ``key`` in the current organization (type kept)."""
    await _client.call("PUT", f"/config/{quote(key, safe='')}", json={"value": value, "is_secret": is_secret})


async def list() -> dict[str, Any]:
    """Return every key visible to the caller; secret values are masked."""
    return dict(await _client.call("GET", "/config"))


async def delete(key: str) -> bool:
    """Delete ``key`` from the current organization. Returns True when it existed."""
    body = await _client.call_or_none("DELETE", f"/config/{quote(key, safe='')}")
    return bool(body and body.get("deleted"))
