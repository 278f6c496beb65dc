"""Role management with user and form assignments (``bifrost.roles``, admins only).

Roles live in the caller's organization (platform admins act in the
organization of the execution, or the one selected with ``BIFROST_ORG``).
"""

from __future__ import annotations

import builtins
from typing import Any

from bifrost import _client
from bifrost.types import Role


async def create(name: str, description: str = "") -> Role:
    """Create a role in the current organization."""
    return Role.model_validate(await _client.call("POST", "/roles", json={"name": name, "description": description}))


async def get(role_id: str) -> Role:
    """Return a role by id.

    Raises:
        NotFoundError: If there is none in the caller's organization.
    """
    return Role.model_validate(await _client.call("GET", f"/roles/{_client.segment(role_id)}"))


async def list() -> builtins.list[Role]:
    """List the roles of the current organization."""
    return [Role.model_validate(r) for r in await _client.call("GET", "/roles")]


async def update(role_id: str, **updates: Any) -> Role:
    """Update ``name``, ``description`` or ``is_active`` of a role."""
    return Role.model_validate(await _client.call("PATCH", f"/roles/{_client.segment(role_id)}", json=updates))


async def delete(role_id: str) -> None:
    """Soft-delete (deactivate) a role."""
    await _client.call("DELETE", f"/roles/{_client.segment(role_id)}")


async def list_users(role_id: str) -> builtins.list[str]:
    """Return the ids of users assigned to the role."""
    return builtins.list(await _client.call("GET", f"/roles/{_client.segment(role_id)}/users"))


async def list_forms(role_id: str) -> builtins.list[str]:
    """Return the ids of forms assigned to the role."""
    return builtins.list(await _client.call("GET", f"/roles/{_client.segment(role_id)}/forms"))


async def assign_users(role_id: str, user_ids: builtins.list[str]) -> None:
    """Assign users (of the role's organization) to the role; already assigned ones are kept."""
    await _client.call("POST", f"/roles/{_client.segment(role_id)}/users", json={"user_ids": user_ids})


async def assign_forms(role_id: str, form_ids: builtins.list[str]) -> None:
    """Assign forms to the role; already assigned ones are kept."""
    await _client.call("POST", f"/roles/{_client.segment(role_id)}/forms", json={"form_ids": form_ids})
