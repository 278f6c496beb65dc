"""Execution history, logs (stored and live), and cancel."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any, cast
from urllib.parse import urlencode

from litestar import Controller, Request, get, post
from litestar.params import Parameter
from litestar.response import Response, ServerSentEvent, ServerSentEventMessage

from app.db import read_transaction
from app.engine.live_lines import unstored_lines
from app.services.actor import Actor
from app.services.executions.service import TERMINAL, ExecutionService, execution_view
from app.services.executions.views import ExecutionView
from app.web.api.schemas import LogLine
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


def buffered_view(row: dict[str, Any]) -> dict[str, Any]:
    """The API shape of a line the dispatcher holds but has not stored yet."""
    return {k: v for k, v in row.items() if k != "execution_id"} | {"timestamp": row["timestamp"].isoformat()}


async def catch_up(
    request: Request[Any, Any, Any],
    actor: Actor,
    execution_id: str,
    after: int,
    buffered: list[dict[str, Any]],
) -> AsyncIterator[dict[str, Any]]:
    """Stored lines after ``after``, page by page, then the ``buffered`` ones not stored meanwhile.

    ``buffered`` must be taken from the dispatcher before this starts reading (and after subscribing
    to live events): a line the flusher moves to the database in between is then found in one of
    the two. Each page is read in its own short transaction and sent before the next is read, so a
    long log never holds the database or the event loop for long.
    """
    settings = get_platform(request.app.state).settings
    last = after
    while True:
        async with db(request) as session:
            page = await ExecutionService(session).logs(
                actor, execution_id, last, max_limit=settings.log_page_lines, max_bytes=settings.log_page_bytes
            )
        for row in page.lines:
            last = row.seq
            yield log_view(row)
        if page.next_after is None:
            break
        # Neither SQLite (inline) nor a fast socket need suspend: let other requests in between pages.
        await asyncio.sleep(0)
    for row in buffered:
        if row["seq"] > last:
            last = row["seq"]
            yield buffered_view(row)


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
        offset: int = Parameter(default=0, description="Rows to skip (reads them all: prefer cursor)"),
        cursor: str | None = Parameter(
            default=None, description="Continue after the previous page (its X-Next-Cursor header)"
        ),
    ) -> Response[list[ExecutionView]]:
        """List executions, newest first (filters as ``bifrost.executions.list``).

        While more rows follow, the ``X-Next-Cursor`` header (and ``Link: <...>; rel="next"``) gives the
        ``cursor`` of the next page: it costs one page however deep, where an ``offset`` reads every
        row it skips. Without the header this page is the last.
        """
        async with read_transaction(get_platform(request.app.state).sessions) as session:
            rows, following = await ExecutionService(session).list_page(
                actor, workflow_name, status, start_date, end_date, limit=limit, offset=offset, cursor=cursor
            )
        headers: dict[str, str] = {}
        if following is not None:
            params = {k: v for k, v in request.query_params.items() if k not in ("cursor", "offset")}
            headers["X-Next-Cursor"] = following
            headers["Link"] = f'<{request.url.path}?{urlencode({**params, "cursor": following})}>; rel="next"'
        return Response([execution_view(e, actor) for e in rows], headers=headers)

    @get("/{execution_id:str}")
    async def get_execution(self, request: Request[Any, Any, Any], actor: Actor, execution_id: str) -> ExecutionView:
        """One execution."""
        async with db(request) as session:
            return execution_view(await ExecutionService(session).get(actor, execution_id), actor)

    @get("/{execution_id:str}/logs")
    async def get_logs(
        self,
        request: Request[Any, Any, Any],
        actor: Actor,
        execution_id: str,
        after: int = Parameter(
            default=-1, description="Cursor: the seq of the last line already read (-1: from the start)"
        ),
        limit: int | None = Parameter(
            default=None, description="Most lines wanted (default and maximum: BIFROST_LOG_PAGE_LINES)"
        ),
    ) -> Response[list[LogLine]]:
        """One page of stored log lines, in order.

        A page ends at ``limit`` lines or ``BIFROST_LOG_PAGE_BYTES`` of messages. While more stored
        lines follow, the ``X-Next-After`` header (and ``Link: <...>; rel="next"``) gives the ``after``
        of the next page; without it the page ends what is stored now.
        """
        settings = get_platform(request.app.state).settings
        async with db(request) as session:
            page = await ExecutionService(session).logs(
                actor,
                execution_id,
                after,
                limit=limit,
                max_limit=settings.log_page_lines,
                max_bytes=settings.log_page_bytes,
            )
        headers: dict[str, str] = {}
        if page.next_after is not None:
            query = f"after={page.next_after}" + (f"&limit={limit}" if limit is not None else "")
            headers["X-Next-After"] = str(page.next_after)
            headers["Link"] = f'<{request.url.path}?{query}>; rel="next"'
        return Response(cast("list[LogLine]", [log_view(r) for r in page.lines]), headers=headers)

    @post("/{execution_id:str}/cancel", status_code=200)
    async def cancel(self, request: Request[Any, Any, Any], actor: Actor, execution_id: str) -> ExecutionView:
        """Cancel a pending or running execution."""
        platform = get_platform(request.app.state)
        async with db(request) as session:
            await ExecutionService(session, platform.dispatcher).cancel(actor, execution_id)
        await platform.dispatcher.wait(execution_id, 10.0)
        async with db(request) as session:
            return execution_view(await ExecutionService(session).get(actor, execution_id), actor)

    @get("/{execution_id:str}/stream", media_type="text/event-stream")
    async def stream(self, request: Request[Any, Any, Any], actor: Actor, execution_id: str) -> ServerSentEvent:
        """Server-sent events: stored logs first, then live ``log`` and ``status`` events until the end."""
        platform = get_platform(request.app.state)
        # Subscribe before reading what is stored, so nothing falls between the two.
        queue = platform.hub.subscribe(execution_id)
        # Lines captured but not yet flushed to the database, here or by the node running it (kept from the
        # bus): no await since subscribing, so no gap.
        buffered = unstored_lines(platform, execution_id)
        try:
            async with db(request) as session:
                status = (await ExecutionService(session).get(actor, execution_id)).status
        except Exception:
            platform.hub.unsubscribe(execution_id, queue)
            raise

        async def events() -> AsyncIterator[ServerSentEventMessage]:
            last_seq = -1
            try:
                async for row in catch_up(request, actor, execution_id, last_seq, buffered):
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
                        if event["seq"] > last_seq + 1:
                            # Live events were lost (a full queue while this viewer lagged): read them back.
                            lost = catch_up(
                                request, actor, execution_id, last_seq, unstored_lines(platform, execution_id)
                            )
                            async for row in lost:
                                last_seq = row["seq"]
                                yield ServerSentEventMessage(event="log", data=json.dumps(row))
                        if event["seq"] <= last_seq:
                            continue
                        last_seq = event["seq"]
                        payload = {k: v for k, v in event.items() if k not in ("type", "execution_id")}
                        yield ServerSentEventMessage(event="log", data=json.dumps(payload))
                    else:
                        if event.get("done"):
                            # Every line is stored before the end is published: send any the queue lost.
                            async for row in catch_up(request, actor, execution_id, last_seq, []):
                                last_seq = row["seq"]
                                yield ServerSentEventMessage(event="log", data=json.dumps(row))
                        yield ServerSentEventMessage(event="status", data=json.dumps(event))
                        if event.get("done"):
                            return
            finally:
                platform.hub.unsubscribe(execution_id, queue)

        return ServerSentEvent(events())
