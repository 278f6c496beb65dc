"""Execution history, logs (stored and live), and cancel."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

from litestar import Controller, Request, get, post
from litestar.params import Parameter
from litestar.response import ServerSentEvent, ServerSentEventMessage

from app.services.actor import Actor
from app.services.executions.service import TERMINAL, ExecutionService, execution_view
from app.services.executions.views import ExecutionView
from app.web.deps import db, get_platform

_KEEPALIVE_SECONDS = 15.0


def log_view(row: Any) -> dict[str, Any]:
    """The API shape of one log line."""
    return {
        "seq": row.seq,
        "timestamp": row.timestamp.isoformat(),
        "level": row.level,
        "logger": row.logger,
        "message": row.message,
    }


class ExecutionController(Controller):
    """Read executions and their logs; cancel them."""

    path = "/executions"
    tags = ["executions"]

    @get("/")
    async def list_executions(
        self,
        request: Request[Any, Any, Any],
        actor: Actor,
        workflow_name: str | None = None,
        status: str | None = None,
        start_date: str | None = None,
        end_date: str | None = None,
        limit: int = Parameter(default=50),
        offset: int = Parameter(default=0),
    ) -> list[ExecutionView]:
        """List executions, newest first (filters as ``bifrost.executions.list``)."""
        async with db(request) as session:
            rows = await ExecutionService(session).list(
                actor, workflow_name, status, start_date, end_date, limit=limit, offset=offset
            )
            return [execution_view(e, actor) for e in rows]

    @get("/{execution_id:str}")
    async def get_execution(self, request: Request[Any, Any, Any], actor: Actor, execution_id: str) -> ExecutionView:
        """One execution."""
        async with db(request) as session:
            return execution_view(await ExecutionService(session).get(actor, execution_id), actor)

    @get("/{execution_id:str}/logs")
    async def get_logs(
        self, request: Request[Any, Any, Any], actor: Actor, execution_id: str, after: int = -1
    ) -> list[dict[str, Any]]:
        """Stored log lines (``after`` = last seq already seen)."""
        async with db(request) as session:
            return [log_view(r) for r in await ExecutionService(session).logs(actor, execution_id, after)]

    @post("/{execution_id:str}/cancel", status_code=200)
    async def cancel(self, request: Request[Any, Any, Any], actor: Actor, execution_id: str) -> ExecutionView:
        """Cancel a pending or running execution."""
        platform = get_platform(request.app.state)
        async with db(request) as session:
            await ExecutionService(session, platform.dispatcher).cancel(actor, execution_id)
        await platform.dispatcher.wait(execution_id, 10.0)
        async with db(request) as session:
            return execution_view(await ExecutionService(session).get(actor, execution_id), actor)

    @get("/{execution_id:str}/stream")
    async def stream(self, request: Request[Any, Any, Any], actor: Actor, execution_id: str) -> ServerSentEvent:
        """Server-sent events: stored logs first, then live ``log`` and ``status`` events until the end."""
        platform = get_platform(request.app.state)
        # Subscribe before reading what is stored, so nothing falls between the two.
        queue = platform.hub.subscribe(execution_id)
        # Lines captured but not yet flushed to the database (no await since subscribing: no gap).
        buffered = [
            {**{k: v for k, v in row.items() if k != "execution_id"}, "timestamp": row["timestamp"].isoformat()}
            for row in platform.dispatcher.buffered_logs(execution_id)
        ]
        try:
            async with db(request) as session:
                service = ExecutionService(session)
                execution = await service.get(actor, execution_id)
                stored = [log_view(r) for r in await service.logs(actor, execution_id)]
                seen = {row["seq"] for row in stored}
                stored += [row for row in buffered if row["seq"] not in seen]
                stored.sort(key=lambda row: row["seq"])
                status = execution.status
        except Exception:
            platform.hub.unsubscribe(execution_id, queue)
            raise

        async def events() -> AsyncIterator[ServerSentEventMessage]:
            last_seq = -1
            try:
                for row in stored:
                    last_seq = row["seq"]
                    yield ServerSentEventMessage(event="log", data=json.dumps(row))
                if status in TERMINAL:
                    yield ServerSentEventMessage(event="status", data=json.dumps({"status": status, "done": True}))
                    return
                yield ServerSentEventMessage(event="status", data=json.dumps({"status": status}))
                while True:
                    try:
                        event = await asyncio.wait_for(queue.get(), _KEEPALIVE_SECONDS)
                    except TimeoutError:
                        yield ServerSentEventMessage(comment="keep-alive")
                        continue
                    if event["type"] == "log":
                        if event["seq"] <= last_seq:
                            continue
                        last_seq = event["seq"]
                        payload = {k: v for k, v in event.items() if k not in ("type", "execution_id")}
                        yield ServerSentEventMessage(event="log", data=json.dumps(payload))
                    else:
                        yield ServerSentEventMessage(event="status", data=json.dumps(event))
                        if event.get("done"):
                            return
            finally:
                platform.hub.unsubscribe(execution_id, queue)

        return ServerSentEvent(events())
