"""User management (``bifrost.users``, platform admins only)."""

from __future__ import annotations

import builtins
from typing import Any

from bifrost import _client
from bifrost.types import UserPublic


async def create(
    email: str,
    name: str,
    is_superuser: bool = False,
    org_id: str | None = None,
    is_active: bool = True,
    password: str | None = None,
) -> UserPublic:
    """Create a user. Non-superusers must belong to an organization (``org_id``).

    Args:
        email: Login email (unique).
        name: Display name.
        is_superuser: Platform admin.
        org_id: Organization of the user.
        is_active: Whether the user may log in.
        password: Optional initial password (beyond the spec); without one the
            user cannot log in with a password until an admin sets one.
    """
    body = await _client.call(
        "POST",
        "/users",
        json={
            "email": email,
            "name": name,
            "is_superuser": is_superuser,
            "org_id": org_id,
            "is_active": is_active,
            "password": password,
        },
    )
    return UserPublic.model_validate(body)


async def get(user_id: str) -> UserPublic | None:
    """Return a user, or None when there is no such user."""
    body = await _client.call_or_none("GET", f"/users/{_client.segment(user_id)}")
    return UserPublic.model_validate(body) if body else None


async def list(org_id: str | None = None) -> builtins.list[UserPublic]:
    """List users, optionally of one organization."""
    return [UserPublic.model_validate(r) for r in await _client.call("GET", "/users", params={"org_id": org_id})]


async def update(user_id: str, **updates: Any) -> UserPublic:
    """Update ``email``, ``name``, ``is_active``, ``is_superuser``, ``org_id`` or ``password``."""
    return UserPublic.model_validate(await _client.call("PATCH", f"/users/{_client.segment(user_id)}", json=updates))


async def delete(user_id: str) -> bool:
    """Soft-delete (deactivate) a user. Returns True when it existed."""
    body = await _client.call_or_none("DELETE", f"/users/{_client.segment(user_id)}")
    return bool(body and body.get("deleted"))
