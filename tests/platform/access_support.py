"""A live server whose workspace has workflows with access policies and approvals (pages and browser tests)."""

from __future__ import annotations

import shutil
from pathlib import Path

from tests.conftest import PLATFORM_WORKSPACE, LiveServer, make_settings
from tests.platform.conftest import World, seed

ACCESS_CASES = """
from bifrost import workflow


@workflow(access="admins", is_tool=True, description="Rotate the vault key (admins only).")
async def pg_admin_only() -> str:
    return "rotated"


@workflow(access="admins", is_tool=True, description="Reset a mailbox.")
async def pg_reset_mailbox(mailbox: str = "ops") -> str:
    return "reset " + mailbox


@workflow(needs_approval=True, is_tool=True, description="Delete a user (needs approval).")
async def pg_delete_user(user: str = "nobody") -> str:
    print("deleting", user)
    return "deleted " + user
"""


def start_access_world(tmp: Path, database_url: str | None = None) -> World:
    """A seeded live server (login throttle raised: page tests sign in often) with :data:`ACCESS_CASES`."""
    workspace = tmp / "workspace"
    shutil.copytree(PLATFORM_WORKSPACE, workspace)
    (workspace / "access_pages_cases.py").write_text(ACCESS_CASES)
    settings = make_settings(tmp, database_url, workspace=workspace, login_rate_limit_per_minute=10_000)
    server = LiveServer(settings).start()
    data = server.call(lambda: seed(server.platform))
    return World(server=server, **data)


def grant_role(world: World, organization_id: str, user_id: str, role: str) -> None:
    """Give ``user_id`` a role named ``role`` in the organization (created when missing)."""

    async def grant() -> None:
        from sqlalchemy import select

        from app.db import transaction
        from app.models import Role, UserRole
        from app.services.workflows.access import forget_roles

        async with transaction(world.server.platform.sessions) as session:
            stmt = select(Role).where(Role.name == role, Role.organization_id == organization_id)  # type: ignore[arg-type]
            found = (await session.execute(stmt)).scalars().first()
            if found is None:
                found = Role(name=role, organization_id=organization_id)
                session.add(found)
                await session.flush()
            session.add(UserRole(role_id=found.id, user_id=user_id))
        forget_roles()

    world.server.call(grant)
