"""Platform admins set a workflow's access policy and approval settings (``workflow_access``)."""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from app.models import Organization
from app.models.access import ExecutionApproval, WorkflowAccess
from app.models.base import utcnow
from app.services import cluster
from app.services.actor import Actor
from app.services.audit import events as audit
from app.services.errors import InvalidInputError, reject_unknown_fields, require_bool
from app.services.workflows.access import ACCESS_LEVELS, effective_policy, policy_view
from app.services.workflows.catalogue import WorkflowService
from app.services.workflows.views import PolicyView

POLICY_FIELDS = frozenset(
    {
        "access",
        "roles",
        "organizations",
        "needs_approval",
        "approver_role",
        "allow_self_approval",
        "schedules_skip_approval",
    }
)
MAX_NAMES = 200

# Role names that approve something (admins' settings, and waiting approvals, which keep the role of the
# moment they were asked): every page's navigation asks whether its viewer approves, so this is kept a few
# seconds (cleared at once by a policy change in this process).
_APPROVER_ROLES_TTL_SECONDS = 5.0
_approver_roles: list[tuple[float, frozenset[str]]] = []


def forget_approver_roles() -> None:
    """Drop the cached approver role names."""
    _approver_roles.clear()


cluster.register("workflows", forget_approver_roles)  # a policy change on any server drops them here


async def approver_role_names(session: AsyncSession) -> frozenset[str]:
    """Names of the roles that approve some workflow's runs (besides platform admins, who approve all)."""
    if _approver_roles and _approver_roles[0][0] > time.monotonic():
        return _approver_roles[0][1]
    configured = select(col(WorkflowAccess.approver_role)).where(col(WorkflowAccess.approver_role).is_not(None))
    waiting = select(col(ExecutionApproval.approver_role)).where(
        col(ExecutionApproval.status) == "waiting", col(ExecutionApproval.approver_role).is_not(None)
    )
    names = frozenset(name for name in (await session.execute(configured.union(waiting))).scalars() if name)
    _approver_roles[:] = [(time.monotonic() + _APPROVER_ROLES_TTL_SECONDS, names)]
    return names


def _names(value: Any, field: str) -> list[str] | None:
    if value is None:
        return None
    if not isinstance(value, list) or len(value) > MAX_NAMES:
        raise InvalidInputError.field(field, f"must be a list of at most {MAX_NAMES} names, or null")
    names = []
    for index, item in enumerate(value):
        if not isinstance(item, str) or not item.strip() or len(item.strip()) > 200:
            raise InvalidInputError.field(f"{field}[{index}]", "must be a non-empty name of at most 200 characters")
        names.append(item.strip())
    return list(dict.fromkeys(names))


class PolicyService:
    """Reads (any user who may run the workflow) and changes (platform admins) access policies."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(self, actor: Actor, workflow: str) -> PolicyView:
        """The policy of a workflow the actor may see (platform admins: any).

        Raises:
            NotFoundError: Unknown, or not visible to the actor.
        """
        row, policy = await WorkflowService(self.session).get_with_policy(actor, workflow)
        return policy_view(row, policy)

    async def _organizations(self, value: Any) -> list[str] | None:
        ids = _names(value, "organizations")
        if ids is None:
            return None
        if not ids:
            raise InvalidInputError.field("organizations", "must name at least one organization, or be null for all")
        stmt = select(col(Organization.id)).where(col(Organization.id).in_(ids))
        found = set((await self.session.execute(stmt)).scalars())
        missing = [i for i in ids if i not in found]
        if missing:
            raise InvalidInputError.field("organizations", f"no organization {', '.join(missing)}")
        return ids

    async def update(self, actor: Actor, workflow: str, data: Any) -> PolicyView:
        """Change the admin's settings of a workflow; a field set to null goes back to what the decorator declares.

        Args:
            actor: A platform admin.
            workflow: Workflow name or id.
            data: Any of ``access`` (everyone, roles, admins), ``roles`` (role names), ``organizations``
                (organization ids), ``needs_approval``, ``approver_role`` (a role name),
                ``allow_self_approval``, ``schedules_skip_approval``.

        Returns:
            The new policy view.

        Raises:
            PermissionDeniedError: Not a platform admin.
            NotFoundError: Unknown workflow.
            InvalidInputError: Naming the bad field; nothing is written.
        """
        actor.require_admin("change workflow access")
        if not isinstance(data, dict):
            raise InvalidInputError.field("body", "must be a JSON object")
        reject_unknown_fields(data, POLICY_FIELDS)
        row = await WorkflowService(self.session).get(None, workflow)
        clean: dict[str, Any] = {}
        if "access" in data:
            if data["access"] is not None and data["access"] not in ACCESS_LEVELS:
                raise InvalidInputError.field("access", f"must be one of {', '.join(ACCESS_LEVELS)}, or null")
            clean["access"] = data["access"]
        if "roles" in data:
            clean["roles"] = _names(data["roles"], "roles")
        if "organizations" in data:
            clean["organizations"] = await self._organizations(data["organizations"])
        if "needs_approval" in data:
            clean["needs_approval"] = (
                None if data["needs_approval"] is None else require_bool(data["needs_approval"], "needs_approval")
            )
        if "approver_role" in data:
            role = data["approver_role"]
            if role is not None and (not isinstance(role, str) or not role.strip() or len(role.strip()) > 200):
                raise InvalidInputError.field("approver_role", "must be a role name, or null for platform admins only")
            clean["approver_role"] = role.strip() if isinstance(role, str) else None
        for flag in ("allow_self_approval", "schedules_skip_approval"):
            if flag in data:
                clean[flag] = require_bool(data[flag], flag)
        override = await self.session.get(WorkflowAccess, row.id)
        if override is None:
            override = WorkflowAccess(workflow_id=row.id)
            self.session.add(override)
        for key, value in clean.items():
            setattr(override, key, value)
        policy = effective_policy(row, override)
        if policy.access == "roles" and not policy.roles:
            raise InvalidInputError.field("roles", "name at least one role when access is 'roles'")
        override.updated_by, override.updated_at = actor.user_id, utcnow()
        await self.session.flush()
        details = {"workflow": row.name, "changed": clean}
        await audit.record(self.session, actor, audit.ACCESS_POLICY_CHANGED, "workflow", row.name, None, details)
        WorkflowService.forget_cached_now_and_after_commit(self.session)  # roles and approvers too (cluster)
        return policy_view(row, policy)
