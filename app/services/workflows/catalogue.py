"""Workflow metadata: synced from workspace scans, read by everyone who may run them."""

from __future__ import annotations

import builtins
import time
from typing import Any, cast

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from app.models import Workflow, WorkspaceError, stable_workflow_id
from app.models.base import utcnow
from app.services.actor import Actor
from app.services.errors import NotFoundError
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
)


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
_cache: dict[tuple[str, str], tuple[float, Workflow]] = {}


class WorkflowService:
    """Reads workflow metadata and applies workspace scans."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    @staticmethod
    def forget_cached() -> None:
        """Drop cached workflow rows (after a sync commits)."""
        _cache.clear()

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
        _cache.clear()
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
                if getattr(row, field) != meta.get(field):
                    setattr(row, field, meta.get(field))
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
        """Active workflows visible to the actor (global ones and their organization's), by category and name."""
        stmt = (
            select(Workflow)
            .where(col(Workflow.kind) == kind, col(Workflow.is_active).is_(True))
            .order_by(col(Workflow.category), col(Workflow.name))
        )
        return [w for w in (await self.session.execute(stmt)).scalars() if actor.can_see_org(w.organization_id)]

    async def get(self, actor: Actor | None, name_or_id: str, kind: str = "workflow") -> Workflow:
        """Return an active workflow by name or id (``actor=None`` skips the visibility check).

        Rows come from a few-second cache that every sync of this process clears.
        """
        key = (kind, name_or_id)
        entry = _cache.get(key)
        if entry is not None and entry[0] > time.monotonic():
            row: Workflow | None = entry[1]
        else:
            stmt = select(Workflow).where(
                col(Workflow.kind) == kind,
                col(Workflow.is_active).is_(True),
                (col(Workflow.name) == name_or_id) | (col(Workflow.id) == name_or_id),
            )
            row = (await self.session.execute(stmt)).scalars().first()
            if row is not None:
                # Cache a copy outside any session: a rollback or an edit through this session
                # must not change (or expire) what later requests read.
                row = Workflow.model_validate(row.model_dump())
                _cache[key] = (time.monotonic() + _CACHE_TTL_SECONDS, row)
        if row is None or (actor is not None and not actor.can_see_org(row.organization_id)):
            label = "Data provider" if kind == "data_provider" else "Workflow"
            raise NotFoundError(f"{label} {name_or_id!r} not found.")
        return row

    async def errors(self, actor: Actor) -> builtins.list[WorkspaceError]:
        """Workspace import errors (admins only: tracebacks reveal code)."""
        actor.require_admin("see workspace errors")
        stmt = select(WorkspaceError).order_by(col(WorkspaceError.file))
        return list((await self.session.execute(stmt)).scalars())
