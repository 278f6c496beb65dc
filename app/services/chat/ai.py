"""``bifrost.ai`` on the server: completions and streams through pydantic-ai, with knowledge and usage.

No database transaction is held while the model answers (a SQLite writer would block every
other request): settings and knowledge are read in one short transaction, the model is
called, and the usage is recorded in another.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any, cast

from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from agents.completion import check_messages, history_from_dicts, knowledge_prompt, output_model
from agents.models import ModelConfigurationError, build_model_async, classify_model_error, model_label
from app.db import transaction
from app.services.actor import Actor
from app.services.chat.ai_settings import AIConfigurationError, AIProviderError, AISettingsService
from app.services.chat.ai_usage import AIUsageService
from app.services.chat.views import Completion, CompletionSource, StreamChunk
from app.services.errors import InvalidInputError, reject_unknown_fields
from app.services.knowledge.service import KnowledgeRuntime, KnowledgeService
from app.services.knowledge.views import SearchHit
from app.services.secrets import SecretBox
from app.settings import Settings

BODY_FIELDS = frozenset(
    {"prompt", "system", "messages", "model", "max_tokens", "temperature", "knowledge", "response_schema"}
)
MAX_PROMPT_CHARS = 1_000_000
MAX_MESSAGES = 1000
KNOWLEDGE_PASSAGES = 5


@dataclass
class CompletionRequest:
    """A validated ``/ai/complete`` or ``/ai/stream`` body."""

    prompt: str
    system: str | None = None
    messages: list[dict[str, Any]] = field(default_factory=list)
    model: str | None = None
    max_tokens: int | None = None
    temperature: float | None = None
    knowledge: list[str] = field(default_factory=list)
    response_schema: dict[str, Any] | None = None


def _text(value: Any, name: str, *, required: bool = False) -> str | None:
    if value is None and not required:
        return None
    if not isinstance(value, str) or (required and not value.strip()):
        raise InvalidInputError.field(name, "must be non-empty text" if required else "must be text")
    if len(value) > MAX_PROMPT_CHARS:
        raise InvalidInputError.field(name, f"must be at most {MAX_PROMPT_CHARS} characters")
    if "\x00" in value:
        raise InvalidInputError.field(name, "must not contain NUL characters")
    return value


def parse_request(body: Any, *, structured: bool = True) -> CompletionRequest:
    """Validate a completion body; every problem is a 422 naming the field."""
    if not isinstance(body, dict):
        raise InvalidInputError.field("body", "must be a JSON object")
    reject_unknown_fields(body, BODY_FIELDS if structured else BODY_FIELDS - {"response_schema"})
    request = CompletionRequest(prompt=str(_text(body.get("prompt"), "prompt", required=True)))
    request.system = _text(body.get("system"), "system")
    messages = body.get("messages") or []
    if not isinstance(messages, list) or len(messages) > MAX_MESSAGES:
        raise InvalidInputError.field("messages", f"must be a list of at most {MAX_MESSAGES} messages")
    request.messages = messages
    try:
        check_messages(messages)
    except ValueError as exc:
        field_name, _, message = str(exc).partition(": ")
        raise InvalidInputError.field(field_name, message) from None
    model = body.get("model")
    if model is not None and (not isinstance(model, str) or not model.strip()):
        raise InvalidInputError.field("model", "must be a model string such as 'openai:gpt-4o-mini'")
    request.model = model
    max_tokens = body.get("max_tokens")
    if max_tokens is not None and (
        isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or not 1 <= max_tokens <= 1_000_000
    ):
        raise InvalidInputError.field("max_tokens", "must be a whole number between 1 and 1000000")
    request.max_tokens = max_tokens
    temperature = body.get("temperature")
    if temperature is not None and (
        isinstance(temperature, bool) or not isinstance(temperature, int | float) or not 0 <= temperature <= 2
    ):
        raise InvalidInputError.field("temperature", "must be a number between 0 and 2")
    request.temperature = temperature
    knowledge = body.get("knowledge") or []
    if not isinstance(knowledge, list) or not all(isinstance(n, str) and n.strip() for n in knowledge):
        raise InvalidInputError.field("knowledge", "must be a list of namespace names")
    request.knowledge = knowledge
    schema = body.get("response_schema")
    if schema is not None:
        try:
            output_model(schema)
        except ValueError as exc:
            raise InvalidInputError.field("response_schema", str(exc)) from None
        request.response_schema = schema
    return request


@dataclass
class PreparedCall:
    """Everything resolved before the model is called."""

    model: Any
    label: str
    prompt: str
    history: list[Any]
    model_settings: dict[str, Any]
    sources: list[CompletionSource]
    output: type[BaseModel] | None


def _source(passage: SearchHit) -> CompletionSource:
    keys = ("id", "namespace", "key", "score", "metadata", "organization_id", "content")
    return cast(CompletionSource, {k: passage.get(k) for k in keys})


def usage_counts(usage: Any) -> tuple[int, int, int]:
    """(input tokens, output tokens, requests) of a pydantic-ai ``RunUsage``."""
    return int(usage.input_tokens or 0), int(usage.output_tokens or 0), int(usage.requests or 0)


def provider_error(exc: BaseException) -> Exception | None:
    """The domain error for a failed model call, or None when ``exc`` is not a model error."""
    kind = classify_model_error(exc)
    if kind is None:
        return None
    if kind[0] == "configuration":
        return AIConfigurationError(f"The AI model cannot be used: {kind[1]}")
    return AIProviderError(f"The AI model provider failed: {kind[1]}")


class AIService:
    """Runs ``ai.complete`` and ``ai.stream`` for a caller.

    Args:
        sessions: Session factory (short transactions only).
        settings: Server settings.
        secret_box: Decrypts API key secrets.
        knowledge: The knowledge runtime (retrieval for ``knowledge=[...]``).
    """

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        settings: Settings,
        secret_box: Callable[[], SecretBox],
        knowledge: KnowledgeRuntime,
    ) -> None:
        self.sessions = sessions
        self.settings = settings
        self.secret_box = secret_box
        self.knowledge = knowledge

    async def prepare(self, actor: Actor, request: CompletionRequest) -> PreparedCall:
        """Resolve the model and retrieve knowledge (raises before anything is streamed)."""
        async with transaction(self.sessions) as session:
            resolved = await AISettingsService(session, self.settings, self.secret_box).resolve(actor, request.model)
        passages: list[SearchHit] = []
        if request.knowledge:
            async with transaction(self.sessions) as session:
                passages = await KnowledgeService(session, self.knowledge).search(
                    actor, request.prompt, namespaces=request.knowledge, limit=KNOWLEDGE_PASSAGES
                )
        try:
            model = await build_model_async(resolved.config)
        except ModelConfigurationError as exc:
            raise AIConfigurationError(f"The AI model cannot be used: {exc}") from None
        model_settings: dict[str, Any] = {}
        if request.max_tokens is not None:
            model_settings["max_tokens"] = request.max_tokens
        if request.temperature is not None:
            model_settings["temperature"] = request.temperature
        return PreparedCall(
            model=model,
            label=model_label(model, resolved.config.model),
            prompt=knowledge_prompt(request.prompt, cast(list[dict[str, Any]], passages)),
            history=history_from_dicts(request.messages),
            model_settings=model_settings,
            sources=[_source(p) for p in passages],
            output=output_model(request.response_schema) if request.response_schema else None,
        )

    def _agent(self, request: CompletionRequest, output: type[BaseModel] | None) -> Any:
        from pydantic_ai import Agent

        return Agent(None, output_type=output or str, instructions=request.system or None, defer_model_check=True)

    async def _record(self, actor: Actor, label: str, usage: Any) -> None:
        inp, out, requests = usage_counts(usage)
        source = "sdk" if actor.execution_id else "api"  # inside a workflow run, or an API key / session
        async with transaction(self.sessions) as session:
            await AIUsageService(session).record(
                actor, source=source, model=label, input_tokens=inp, output_tokens=out, requests=requests
            )

    async def complete(self, actor: Actor, body: Any) -> Completion:
        """Answer one completion: ``{"content", "model", "input_tokens", "output_tokens", "sources"[, "structured"]}``.

        Raises:
            InvalidInputError: Bad body (422 naming the field).
            AIConfigurationError: No model, or it cannot be used (the message says what to set).
            AIProviderError: The provider failed.
        """
        request = parse_request(body)
        call = await self.prepare(actor, request)
        agent = self._agent(request, call.output)
        try:
            result = await agent.run(
                call.prompt, message_history=call.history, model=call.model, model_settings=call.model_settings or None
            )
        except Exception as exc:
            mapped = provider_error(exc)
            if mapped is None:
                raise
            raise mapped from None
        await self._record(actor, call.label, result.usage)
        inp, out, _ = usage_counts(result.usage)
        answer: dict[str, Any] = {
            "model": call.label,
            "input_tokens": inp,
            "output_tokens": out,
            "sources": call.sources,
        }
        if call.output is not None:
            structured = result.output.model_dump(mode="json")
            answer["structured"] = structured
            answer["content"] = json.dumps(structured, ensure_ascii=False)
        else:
            answer["content"] = str(result.output)
        return cast(Completion, answer)

    async def stream(self, actor: Actor, call: PreparedCall, request: CompletionRequest) -> AsyncIterator[StreamChunk]:
        """Chunks ``{"content", "done": False}`` as the model writes, then one ``done`` chunk with usage.

        A failure after the first chunk ends the stream with ``{"done": True, "error": ...}``
        (the status line was sent already).
        """
        from pydantic_ai import AgentRunResultEvent
        from pydantic_ai.messages import PartDeltaEvent, PartStartEvent, TextPart, TextPartDelta

        agent = self._agent(request, None)
        result = None
        try:
            async with agent.run_stream_events(
                call.prompt, message_history=call.history, model=call.model, model_settings=call.model_settings or None
            ) as events:
                async for event in events:
                    if isinstance(event, PartStartEvent) and isinstance(event.part, TextPart) and event.part.content:
                        yield {"content": event.part.content, "done": False}
                    elif isinstance(event, PartDeltaEvent) and isinstance(event.delta, TextPartDelta):
                        if event.delta.content_delta:
                            yield {"content": event.delta.content_delta, "done": False}
                    elif isinstance(event, AgentRunResultEvent):
                        result = event.result
        except Exception as exc:
            mapped = provider_error(exc)
            if mapped is None:
                raise
            yield {"content": "", "done": True, "error": str(mapped)}
            return
        usage = result.usage if result is not None else None
        if usage is not None:
            await self._record(actor, call.label, usage)
        inp, out, _ = usage_counts(usage) if usage is not None else (0, 0, 0)
        yield {
            "content": "",
            "done": True,
            "model": call.label,
            "input_tokens": inp,
            "output_tokens": out,
            "sources": call.sources,
        }
