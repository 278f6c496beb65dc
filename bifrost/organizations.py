"""Organization management (``bifrost.organizations``, platform admins only)."""

from __future__ import annotations

import builtins
from typing import Any

from bifrost import _client
from bifrost.types import Organization


async def create(name: str, domain: str | None = None, is_active: bool = True) -> Organization:
    """Create an organization."""
    body = await _client.call("POST", "/organizations", json={"name": name, "domain": domain, "is_active": is_active})
    return Organization.model_validate(body)


async def get(org_id: str) -> Organization:
    """Return an organization by id.

    Raises:
        NotFoundError: If there is none.
    """
    return Organization.model_validate(await _client.call("GET", f"/organizations/{_client.segment(org_id)}"))


async def list() -> builtins.list[Organization]:
    """List all organizations."""
    return [Organization.model_validate(r) for r in await _client.call("GET", "/organizations")]


async def update(org_id: str, **updates: Any) -> Organization:
    """Update ``name``, ``domain`` or ``is_active`` of an organization."""
    return Organization.model_validate(
        await _client.call("PATCH", f"/organizations/{_client.segment(org_id)}", json=updates)
    )


async def delete(org_id: str) -> bool:
    """Soft-delete (deactivate) an organization. Returns True when it existed."""
    body = await _client.call_or_none("DELETE", f"/organizations/{_client.segment(org_id)}")
    return bool(body and body.get("deleted"))
