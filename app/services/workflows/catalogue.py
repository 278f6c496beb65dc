"""Workflow metadata: synced from workspace scans, read by everyone who may run them."""

from __future__ import annotations

import builtins
import time
from typing import Any, cast

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from app.models import Form, Role, RoleForm, UserRole, Workflow, WorkspaceError, stable_workflow_id
from app.models.access import WorkflowAccess
from app.models.base import utcnow
from app.services import cluster
from app.services.actor import Actor
from app.services.errors import NotFoundError
from app.services.workflows.access import AccessPolicy, effective_policy, may_run
from app.services.workflows.views import WorkflowDetail
from bifrost.types import WorkflowMetadata

# Fields copied from a scanned definition onto the Workflow row.
_SYNCED_FIELDS = (
    "description",
    "category",
    "tags",
    "execution_mode",
    "execution_mode_explicit",
    "timeout_seconds",
    "schedule",
    "endpoint_enabled",
    "allowed_methods",
    "public_endpoint",
    "is_tool",
    "tool_description",
    "time_saved",
    "cache_ttl_seconds",
    "parameters",
    "params_schema",
    "source_file",
    "access",
    "access_roles",
    "needs_approval",
)
# What a scan of an older SDK (without these keys) means.
_SYNCED_DEFAULTS: dict[str, Any] = {"access": "everyone", "access_roles": [], "needs_approval": False}


def workflow_public(row: Workflow) -> WorkflowMetadata:
    """Return the SDK shape of a workflow."""
    return WorkflowMetadata(
        id=row.id,
        name=row.name,
        description=row.description,
        category=row.category,
        tags=list(row.tags),
        execution_mode=row.execution_mode,
        timeout_seconds=row.timeout_seconds,
        schedule=row.schedule,
        endpoint_enabled=row.endpoint_enabled,
        is_tool=row.is_tool,
        time_saved=row.time_saved,
    )


def workflow_detail(row: Workflow) -> WorkflowDetail:
    """The SDK shape plus everything the API and pages show (parameters, endpoint options, kind)."""
    # cast: the spread of the SDK model's dump is not visible to the type checker.
    return cast(
        "WorkflowDetail",
        {
            **workflow_public(row).model_dump(),
            "kind": row.kind,
            "allowed_methods": list(row.allowed_methods),
            "public_endpoint": row.public_endpoint,
            "tool_description": row.tool_description,
            "cache_ttl_seconds": row.cache_ttl_seconds,
            "parameters": row.parameters,
            "params_schema": row.params_schema,
            "source_file": row.source_file,
            "updated_at": row.updated_at.isoformat(),
        },
    )


# Submitting looks a workflow up on every run; syncs (which clear this) are rare.
_CACHE_TTL_SECONDS = 5.0
# Each entry holds the row and its effective access policy: the submit hot path reads both at once.
_cache: dict[tuple[str, str], tuple[float, Workflow, AccessPolicy]] = {}
# Whether a data provider is used by something an actor may run: (user, org, provider) -> (expiry, verdict).
_provider_cache: dict[tuple[str, str | None, str], tuple[float, bool]] = {}


class WorkflowService:
    """Reads workflow metadata and applies workspace scans."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    @staticmethod
    def forget_cached() -> None:
        """Drop cached workflow rows and policies (after a sync or a policy change commits)."""
        _cache.clear()
        _provider_cache.clear()

    @classmethod
    def forget_cached_now_and_after_commit(cls, session: AsyncSession) -> None:
        """Drop cached rows at once and when ``session`` commits (a read in between would cache the old policy)."""
        cluster.invalidate_after_commit(session, "workflows")  # with roles and approvers, on every server

    async def sync(
        self, definitions: builtins.list[dict[str, Any]], errors: builtins.list[dict[str, Any]]
    ) -> dict[str, int]:
        """Apply a workspace scan: upsert what was found, deactivate what disappeared, replace errors.

        Args:
            definitions: ``WorkflowDefinition.to_metadata()`` dicts of workflows and data providers.
            errors: ``{"file", "error", "traceback"}`` dicts of files that failed.

        Returns:
            Counts of ``added``, ``updated``, ``removed`` and ``errors``.
        """
        cluster.invalidate_after_commit(self.session, "workflows")
        rows = {(w.kind, w.name): w for w in (await self.session.execute(select(Workflow))).scalars()}
        seen: set[tuple[str, str]] = set()
        added = updated = 0
        now = utcnow()
        for meta in definitions:
            key = (meta["kind"], meta["name"])
            seen.add(key)
            row = rows.get(key)
            if row is None:
                row = Workflow(id=stable_workflow_id(*key), kind=key[0], name=key[1])
                self.session.add(row)
                added += 1
            changed = not row.is_active
            for field in _SYNCED_FIELDS:
                value = meta.get(field, _SYNCED_DEFAULTS.get(field))
                if getattr(row, field) != value:
                    setattr(row, field, value)
                    changed = True
            if changed:
                row.is_active = True
                row.updated_at = now
                updated += 1
        removed = 0
        for key, row in rows.items():
            if key not in seen and row.is_active:
                row.is_active = False
                row.updated_at = now
                removed += 1
        await self.session.execute(delete(WorkspaceError))
        self.session.add_all(
            WorkspaceError(file=e.get("file", "?"), error=e.get("error", ""), traceback=e.get("traceback"))
            for e in errors
        )
        await self.session.flush()
        return {"added": added, "updated": updated - added, "removed": removed, "errors": len(errors)}

    async def list(self, actor: Actor, kind: str = "workflow") -> builtins.list[Workflow]:
        """Active workflows the actor may run (organization and access policy), by category and name."""
        return [row for row, _ in await self.list_with_policies(actor, kind)]

    async def list_with_policies(
        self, actor: Actor | None, kind: str = "workflow", *, tools_only: bool = False
    ) -> builtins.list[tuple[Workflow, AccessPolicy]]:
        """Like :meth:`list`, each row with its effective policy (``actor=None``: every active row).

        Args:
            actor: Whose view (None: no check).
            kind: ``workflow`` or ``data_provider``.
            tools_only: Only workflows offered to the chat (``is_tool``).
        """
        stmt = (
            select(Workflow, WorkflowAccess)
            .outerjoin(WorkflowAccess, col(WorkflowAccess.workflow_id) == col(Workflow.id))
            .where(col(Workflow.kind) == kind, col(Workflow.is_active).is_(True))
            .order_by(col(Workflow.category), col(Workflow.name))
        )
        if tools_only:
            stmt = stmt.where(col(Workflow.is_tool).is_(True))
        found = []
        for row, override in (await self.session.execute(stmt)).all():
            policy = effective_policy(row, override)
            if actor is None or await self._visible(actor, row, policy):
                found.append((row, policy))
        return found

    async def _visible(self, actor: Actor, row: Workflow, policy: AccessPolicy) -> bool:
        if not actor.can_see_org(row.organization_id):
            return False
        if row.kind == "data_provider":
            return await self._provider_in_use(actor, row)
        return policy.open_to_everyone or await may_run(self.session, actor, policy)

    async def get(self, actor: Actor | None, name_or_id: str, kind: str = "workflow") -> Workflow:
        """Return an active workflow by name or id that the actor may run (``actor=None`` skips the checks).

        Rows come from a few-second cache that every sync and policy change of this process clears.

        Raises:
            NotFoundError: Unknown, inactive, or not for this actor (the same answer).
        """
        return (await self.get_with_policy(actor, name_or_id, kind))[0]

    async def get_with_policy(
        self, actor: Actor | None, name_or_id: str, kind: str = "workflow"
    ) -> tuple[Workflow, AccessPolicy]:
        """:meth:`get` with the workflow's effective access policy (cached together)."""
        key = (kind, name_or_id)
        entry = _cache.get(key)
        if entry is not None and entry[0] > time.monotonic():
            row: Workflow | None = entry[1]
            policy = entry[2]
        else:
            stmt = (
                select(Workflow, WorkflowAccess)
                .outerjoin(WorkflowAccess, col(WorkflowAccess.workflow_id) == col(Workflow.id))
                .where(
                    col(Workflow.kind) == kind,
                    col(Workflow.is_active).is_(True),
                    (col(Workflow.name) == name_or_id) | (col(Workflow.id) == name_or_id),
                )
            )
            found = (await self.session.execute(stmt)).first()
            row, policy = None, AccessPolicy()
            if found is not None:
                # Cache a copy outside any session: a rollback or an edit through this session
                # must not change (or expire) what later requests read.
                row = Workflow.model_validate(found[0].model_dump())
                policy = effective_policy(row, found[1])
                _cache[key] = (time.monotonic() + _CACHE_TTL_SECONDS, row, policy)
        if row is None or (actor is not None and not await self._visible(actor, row, policy)):
            label = "Data provider" if kind == "data_provider" else "Workflow"
            raise NotFoundError(f"{label} {name_or_id!r} not found.")
        return row, policy

    async def _provider_in_use(self, actor: Actor, provider: Workflow) -> bool:
        """A data provider follows the workflows and forms that use it: visible when one of them is."""
        if actor.is_superuser:
            return True
        key = (actor.user_id, actor.acting_org_id, provider.name)
        entry = _provider_cache.get(key)
        if entry is not None and entry[0] > time.monotonic():
            return entry[1]
        verdict = await self._provider_used_by_visible(actor, provider.name)
        if len(_provider_cache) > 10_000:
            _provider_cache.clear()
        _provider_cache[key] = (time.monotonic() + _CACHE_TTL_SECONDS, verdict)
        return verdict

    async def _provider_used_by_visible(self, actor: Actor, name: str) -> bool:
        workflows = {row.id: (row, policy) for row, policy in await self.list_with_policies(actor)}
        for row, _ in workflows.values():
            # The scan keeps a parameter's json_schema_extra (its ``data_provider``) in its json_schema.
            if any(
                name in (p.get("data_provider"), (p.get("json_schema") or {}).get("data_provider"))
                for p in row.parameters
            ):
                return True
        # Forms in the actor's scope that use it, whose workflow the actor may run and whose access
        # level lets the actor in (the forms domain sits above this one: its rule is restated here).
        stmt = select(Form).where(col(Form.is_active).is_(True))
        forms = [
            f
            for f in (await self.session.execute(stmt)).scalars()
            if f.workflow_id in workflows
            and actor.can_see_org(f.organization_id)
            and any(field.get("data_provider") == name for field in (f.form_schema or {}).get("fields", []))
        ]
        if any(f.access_level in ("public", "authenticated") for f in forms):
            return True
        role_based = [f.id for f in forms if f.access_level == "role_based"]
        if not role_based or actor.acting_org_id is None:
            return False
        held = (
            select(col(RoleForm.form_id))
            .join(Role, col(Role.id) == col(RoleForm.role_id))
            .join(UserRole, col(UserRole.role_id) == col(Role.id))
            .where(
                col(UserRole.user_id) == actor.user_id,
                col(Role.organization_id) == actor.acting_org_id,
                col(Role.is_active).is_(True),
                col(RoleForm.form_id).in_(role_based),
            )
            .limit(1)
        )
        return (await self.session.execute(held)).first() is not None

    async def errors(self, actor: Actor) -> builtins.list[WorkspaceError]:
        """Workspace import errors (admins only: tracebacks reveal code)."""
        actor.require_admin("see workspace errors")
        stmt = select(WorkspaceError).order_by(col(WorkspaceError.file))
        return list((await self.session.execute(stmt)).scalars())


cluster.register("workflows", WorkflowService.forget_cached)  # a sync or a policy change on any server
