"""Who may see and run a workflow, and whether its runs wait for an approver.

A workflow's *declared* policy comes from its decorator (``access=``, ``needs_approval=``; synced
onto the catalogue row by every scan). A platform admin's *override* lives in ``workflow_access``,
which scans never write, so a re-sync keeps it. The effective policy is the override's fields
where set, else the declared ones.

* ``everyone``: every user of an organization (today's behaviour, the default);
* ``roles``: platform admins, and users holding an active role *of that name* in the organization
  they act in (roles belong to organizations, so a name lets one policy serve every organization);
* ``admins``: platform admins only.

``organizations`` (admins only) limits runs to those organizations; users acting elsewhere do
not see the workflow. What an actor may not run is reported as not found everywhere.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from app.models import Role, UserRole, Workflow
from app.models.access import WorkflowAccess
from app.services import cluster
from app.services.actor import Actor
from app.services.workflows.views import PolicyView

ACCESS_LEVELS = ("everyone", "roles", "admins")

# Role names of (user, organization), for a few seconds: only policies naming roles need them.
_ROLE_TTL_SECONDS = 5.0
_roles_cache: dict[tuple[str, str], tuple[float, frozenset[str]]] = {}


@dataclass(frozen=True)
class AccessPolicy:
    """The effective policy of one workflow.

    Attributes:
        access: ``everyone``, ``roles`` or ``admins``.
        roles: Role names that may run it when ``access`` is ``roles``.
        organizations: Organization ids it is limited to (None: all).
        needs_approval: Each run waits in ``AwaitingApproval`` for an approver.
        approver_role: Besides platform admins, holders of this role (in the run's organization) approve.
        allow_self_approval: The requester may approve their own run.
        schedules_skip_approval: Runs fired by schedules (set by admins) do not wait.
        overridden: Fields an admin set (the others are as declared).
    """

    access: str = "everyone"
    roles: tuple[str, ...] = ()
    organizations: tuple[str, ...] | None = None
    needs_approval: bool = False
    approver_role: str | None = None
    allow_self_approval: bool = False
    schedules_skip_approval: bool = False
    overridden: tuple[str, ...] = field(default=())

    @property
    def open_to_everyone(self) -> bool:
        """True when no role or organization limit applies (no query needed to decide)."""
        return self.access == "everyone" and self.organizations is None

    def allows_org(self, organization_id: str | None) -> bool:
        """True when runs in ``organization_id`` are allowed (global runs are never limited)."""
        return self.organizations is None or organization_id is None or organization_id in self.organizations


def effective_policy(row: Workflow, override: WorkflowAccess | None) -> AccessPolicy:
    """The policy of ``row``: the admin's override where set, else what the decorator declared."""
    declared_access = row.access if row.access in ACCESS_LEVELS else "everyone"
    if override is None:
        return AccessPolicy(
            access=declared_access, roles=tuple(row.access_roles or ()), needs_approval=bool(row.needs_approval)
        )
    overridden = [
        name
        for name in ("access", "roles", "organizations", "needs_approval", "approver_role")
        if getattr(override, name) is not None
    ]
    return AccessPolicy(
        access=override.access or declared_access,
        roles=tuple(override.roles if override.roles is not None else row.access_roles or ()),
        organizations=tuple(override.organizations) if override.organizations is not None else None,
        needs_approval=bool(override.needs_approval if override.needs_approval is not None else row.needs_approval),
        approver_role=override.approver_role,
        allow_self_approval=override.allow_self_approval,
        schedules_skip_approval=override.schedules_skip_approval,
        overridden=tuple(overridden),
    )


def forget_roles() -> None:
    """Drop cached role names (after role changes in this process)."""
    _roles_cache.clear()


cluster.register("workflows", forget_roles)  # a policy change on any server drops them here
cluster.register("roles", forget_roles)  # so does a role renamed, deactivated or assigned


async def role_names(session: AsyncSession, user_id: str, organization_id: str | None) -> frozenset[str]:
    """Names of the active roles ``user_id`` holds in ``organization_id`` (none without one)."""
    if organization_id is None:
        return frozenset()
    key = (user_id, organization_id)
    entry = _roles_cache.get(key)
    if entry is not None and entry[0] > time.monotonic():
        return entry[1]
    stmt = (
        select(col(Role.name))
        .join(UserRole, col(UserRole.role_id) == col(Role.id))
        .where(
            col(UserRole.user_id) == user_id,
            col(Role.organization_id) == organization_id,
            col(Role.is_active).is_(True),
        )
    )
    names = frozenset((await session.execute(stmt)).scalars())
    if len(_roles_cache) > 10_000:
        _roles_cache.clear()
    _roles_cache[key] = (time.monotonic() + _ROLE_TTL_SECONDS, names)
    return names


async def may_run(session: AsyncSession, actor: Actor, policy: AccessPolicy) -> bool:
    """True when ``actor`` may see and run a workflow of ``policy`` in the organization they act in."""
    if actor.is_superuser:
        return True
    if not policy.allows_org(actor.acting_org_id) or (policy.organizations is not None and actor.acting_org_id is None):
        return False
    if policy.access == "everyone":
        return True
    if policy.access == "admins":
        return False
    held = await role_names(session, actor.user_id, actor.acting_org_id)
    return bool(held.intersection(policy.roles))


async def may_approve(
    session: AsyncSession, actor: Actor, approver_role: str | None, organization_id: str | None
) -> bool:
    """True when ``actor`` is an approver: a platform admin, or a holder of ``approver_role`` in the run's org."""
    if actor.is_superuser:
        return True
    if approver_role is None or organization_id is None or actor.acting_org_id != organization_id:
        return False
    return approver_role in await role_names(session, actor.user_id, organization_id)


def policy_view(row: Workflow, policy: AccessPolicy) -> PolicyView:
    """The API shape of a workflow's policy: effective values, what the decorator declared, what an admin set."""
    return {
        "workflow": row.name,
        "access": policy.access,
        "roles": list(policy.roles),
        "organizations": list(policy.organizations) if policy.organizations is not None else None,
        "needs_approval": policy.needs_approval,
        "approver_role": policy.approver_role,
        "allow_self_approval": policy.allow_self_approval,
        "schedules_skip_approval": policy.schedules_skip_approval,
        "declared": {
            "access": row.access,
            "roles": list(row.access_roles or ()),
            "needs_approval": bool(row.needs_approval),
        },
        "overridden": list(policy.overridden),
    }
