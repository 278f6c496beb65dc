"""The ai and chat APIs, under both /api and /api/sdk/v1.

* ``POST /ai/complete`` → ``AIResponse`` fields (``structured`` with ``response_schema``).
* ``POST /ai/stream`` → NDJSON chunks ``{"content", "done"}``; the last one has ``done`` and usage.
* ``GET|PUT /ai/settings?org=<id or GLOBAL>`` (platform admins) → model settings of a scope.
* ``GET /ai/usage`` (``?execution_id=``) and ``GET /ai/usage/summary`` (platform admins).
* The chat routes (``/chat/...``) live in :mod:`app.web.api.chat`.

"No model configured" (and a model that cannot be used) answers **424** with
``X-Bifrost-Error: configuration``, which the SDK raises as ``bifrost.ConfigurationError``;
a failing provider answers 502.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Annotated, Any

from litestar import Controller, MediaType, Request, Response, get, post, put
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import Parameter
from litestar.response import Stream
from litestar.types import ControllerRouterHandler

from app.services.actor import Actor
from app.services.chat.ai import AIService, parse_request
from app.services.chat.ai_settings import AIConfigurationError, AIProviderError, AISettingsService
from app.services.chat.ai_usage import AIUsageService
from app.services.chat.views import (
    AISettingsBody,
    AISettingsView,
    AIUsageRecord,
    AIUsageSummaryRow,
    Completion,
    CompletionBody,
    StreamBody,
    StreamChunk,
)
from app.services.knowledge.embeddings import EmbeddingUnavailableError
from app.services.secrets import SecretKeyError, secret_box
from app.settings import Settings
from app.web.api.chat import CHAT_CONTROLLERS
from app.web.api.config import secret_key_error_handler
from app.web.api.knowledge import embedding_unavailable
from app.web.api.schemas import documented_body
from app.web.deps import db, get_platform

CONFIGURATION_STATUS = 424
NDJSON = "application/x-ndjson"


def ai_configuration_error(_request: Request[Any, Any, Any], exc: AIConfigurationError) -> Response[Any]:
    """424 with the message saying what to set; the SDK raises ``ConfigurationError``."""
    return Response(
        {"status_code": CONFIGURATION_STATUS, "detail": str(exc)},
        status_code=CONFIGURATION_STATUS,
        media_type=MediaType.JSON,
        headers={"X-Bifrost-Error": "configuration"},
    )


def ai_provider_error(_request: Request[Any, Any, Any], exc: AIProviderError) -> Response[Any]:
    """502: the model provider failed (the SDK raises ``WorkflowError`` with the message)."""
    return Response({"status_code": 502, "detail": str(exc)}, status_code=502, media_type=MediaType.JSON)


AI_EXCEPTION_HANDLERS: dict[Any, Any] = {
    AIConfigurationError: ai_configuration_error,
    AIProviderError: ai_provider_error,
    SecretKeyError: secret_key_error_handler,
    EmbeddingUnavailableError: embedding_unavailable,
}


def _settings(request: Request[Any, Any, Any]) -> Settings:
    return request.app.state.settings  # type: ignore[no-any-return]


def ai_service(request: Request[Any, Any, Any]) -> AIService:
    """The AI service of this server (sessions, settings, secrets, knowledge runtime)."""
    platform = get_platform(request.app.state)
    settings = _settings(request)
    return AIService(
        platform.sessions, settings, lambda: secret_box(settings.secret_key, settings.home), platform.knowledge
    )


def settings_service(request: Request[Any, Any, Any], session: Any) -> AISettingsService:
    """The AI settings service on ``session``."""
    settings = _settings(request)
    return AISettingsService(session, settings, lambda: secret_box(settings.secret_key, settings.home))


class AIController(Controller):
    """Completions, streams, settings and usage."""

    path = "/ai"
    tags = ["ai"]
    exception_handlers = AI_EXCEPTION_HANDLERS

    @post("/complete", status_code=200)
    async def complete(
        self,
        request: Request[Any, Any, Any],
        actor: Actor,
        data: Annotated[Any, documented_body(CompletionBody, closed=True)],
    ) -> Completion:
        """Complete a prompt (``prompt``, ``system``, ``messages``, ``model``, ``max_tokens``, ``temperature``,
        ``knowledge``, ``response_schema``)."""
        return await ai_service(request).complete(actor, data)

    @post(
        "/stream",
        status_code=200,
        media_type=NDJSON,
        responses={200: ResponseSpec(StreamChunk, description="NDJSON: one chunk per line", media_type=NDJSON)},
    )
    async def stream(
        self,
        request: Request[Any, Any, Any],
        actor: Actor,
        data: Annotated[Any, documented_body(StreamBody, closed=True)],
    ) -> Stream:
        """Stream a completion as NDJSON chunks (errors before the first chunk are normal HTTP errors)."""
        service = ai_service(request)
        parsed = parse_request(data, structured=False)
        call = await service.prepare(actor, parsed)

        async def lines() -> AsyncIterator[bytes]:
            async for chunk in service.stream(actor, call, parsed):
                yield (json.dumps(chunk, ensure_ascii=False) + "\n").encode()

        return Stream(lines(), media_type=NDJSON)

    @get("/settings")
    async def get_settings(
        self, request: Request[Any, Any, Any], actor: Actor, org: str | None = Parameter(default=None)
    ) -> AISettingsView:
        """Model settings of the platform (no ``org`` / ``GLOBAL``) or of one organization (admins)."""
        async with db(request) as session:
            return await settings_service(request, session).get(actor, org)

    @put("/settings")
    async def put_settings(
        self,
        request: Request[Any, Any, Any],
        actor: Actor,
        data: Annotated[Any, documented_body(AISettingsBody, closed=True)],
        org: str | None = Parameter(default=None),
    ) -> AISettingsView:
        """Change ``model``, ``base_url``, ``api_key_config`` and ``knowledge_namespaces`` of one scope (admins)."""
        async with db(request) as session:
            return await settings_service(request, session).update(actor, org, data)

    @get("/usage")
    async def usage(
        self,
        request: Request[Any, Any, Any],
        actor: Actor,
        execution_id: str | None = Parameter(default=None),
        limit: int = Parameter(default=100, ge=1, le=1000),
    ) -> list[AIUsageRecord]:
        """Recent usage records, newest first, optionally of one execution (admins)."""
        async with db(request) as session:
            return await AIUsageService(session).records(actor, execution_id, limit)

    @get("/usage/summary")
    async def usage_summary(self, request: Request[Any, Any, Any], actor: Actor) -> list[AIUsageSummaryRow]:
        """Calls and tokens per organization and model (admins)."""
        async with db(request) as session:
            return await AIUsageService(session).summary(actor)


# Route handlers served under both /api and /api/sdk/v1 (SDK) unless the module says otherwise.
CONTROLLERS: list[ControllerRouterHandler] = [AIController, *CHAT_CONTROLLERS]
