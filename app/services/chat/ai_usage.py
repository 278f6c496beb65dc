"""AI usage: one row per model call, summed per organization and model for admins."""

from __future__ import annotations

import builtins

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from app.models.ai import AIUsage
from app.models.organization import Organization
from app.services.actor import Actor
from app.services.chat.views import AIUsageRecord, AIUsageSummaryRow
from app.services.errors import InvalidInputError, NotFoundError


def usage_view(row: AIUsage) -> AIUsageRecord:
    """The API shape of one usage record."""
    return {
        "id": row.id,
        "organization_id": row.organization_id,
        "user_id": row.user_id,
        "execution_id": row.execution_id,
        "conversation_id": row.conversation_id,
        "source": row.source,
        "model": row.model,
        "input_tokens": row.input_tokens,
        "output_tokens": row.output_tokens,
        "requests": row.requests,
        "created_at": row.created_at.isoformat(),
    }


class AIUsageService:
    """Records model calls and reports them."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def record(
        self,
        actor: Actor,
        *,
        source: str,
        model: str,
        input_tokens: int,
        output_tokens: int,
        requests: int,
        conversation_id: str | None = None,
    ) -> AIUsage:
        """Record one call against the actor's execution (if any), organization and user."""
        row = AIUsage(
            organization_id=actor.acting_org_id,
            user_id=actor.user_id,
            execution_id=actor.execution_id,
            conversation_id=conversation_id,
            source=source,
            model=model[:200],
            input_tokens=max(0, int(input_tokens or 0)),
            output_tokens=max(0, int(output_tokens or 0)),
            requests=max(0, int(requests or 0)),
        )
        self.session.add(row)
        await self.session.flush()
        return row

    async def summary(self, actor: Actor) -> builtins.list[AIUsageSummaryRow]:
        """Calls and tokens per organization and model (platform admins; acting in one org: that org)."""
        actor.require_admin("see AI usage")
        stmt = (
            select(
                col(AIUsage.organization_id),
                col(Organization.name),
                col(AIUsage.model),
                func.count(),
                func.sum(col(AIUsage.input_tokens)),
                func.sum(col(AIUsage.output_tokens)),
            )
            .outerjoin(Organization, col(Organization.id) == col(AIUsage.organization_id))
            .group_by(col(AIUsage.organization_id), col(Organization.name), col(AIUsage.model))
            .order_by(col(Organization.name), col(AIUsage.model))
        )
        if actor.acting_org_id:
            stmt = stmt.where(col(AIUsage.organization_id) == actor.acting_org_id)
        return [
            {
                "organization_id": org_id,
                "organization_name": name,
                "model": model,
                "calls": int(calls),
                "input_tokens": int(inp or 0),
                "output_tokens": int(out or 0),
            }
            for org_id, name, model, calls, inp, out in (await self.session.execute(stmt)).all()
        ]

    async def records(
        self, actor: Actor, execution_id: str | None = None, limit: int = 100
    ) -> builtins.list[AIUsageRecord]:
        """Recent usage records, newest first (platform admins), optionally of one execution."""
        actor.require_admin("see AI usage")
        if not isinstance(limit, int) or not 1 <= limit <= 1000:
            raise InvalidInputError.field("limit", "must be between 1 and 1000")
        stmt = select(AIUsage).order_by(col(AIUsage.created_at).desc()).limit(limit)
        if execution_id:
            if len(execution_id) > 36:
                raise NotFoundError(f"Execution {execution_id!r} not found.")
            stmt = stmt.where(col(AIUsage.execution_id) == execution_id)
        if actor.acting_org_id:
            stmt = stmt.where(col(AIUsage.organization_id) == actor.acting_org_id)
        return [usage_view(r) for r in (await self.session.execute(stmt)).scalars()]
