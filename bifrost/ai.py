"""LLM completions and streaming with optional RAG (``bifrost.ai``)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any, TypeVar, overload

from pydantic import BaseModel

from bifrost import _client
from bifrost.errors import WorkflowError
from bifrost.types import AIResponse, AIStreamChunk

M = TypeVar("M", bound=BaseModel)


def _body(
    prompt: str,
    system: str | None,
    messages: list[dict[str, Any]] | None,
    model: str | None,
    max_tokens: int | None,
    temperature: float | None,
    knowledge: list[str] | None,
) -> dict[str, Any]:
    return {
        "prompt": prompt,
        "system": system,
        "messages": messages or [],
        "model": model,
        "max_tokens": max_tokens,
        "temperature": temperature,
        "knowledge": knowledge or [],
    }


@overload
async def complete(
    prompt: str,
    *,
    response_format: type[M],
    system: str | None = ...,
    messages: list[dict[str, Any]] | None = ...,
    model: str | None = ...,
    max_tokens: int | None = ...,
    temperature: float | None = ...,
    knowledge: list[str] | None = ...,
) -> M: ...
@overload
async def complete(
    prompt: str,
    *,
    response_format: None = ...,
    system: str | None = ...,
    messages: list[dict[str, Any]] | None = ...,
    model: str | None = ...,
    max_tokens: int | None = ...,
    temperature: float | None = ...,
    knowledge: list[str] | None = ...,
) -> AIResponse: ...


async def complete(
    prompt: str,
    *,
    response_format: type[BaseModel] | None = None,
    system: str | None = None,
    messages: list[dict[str, Any]] | None = None,
    model: str | None = None,
    max_tokens: int | None = None,
    temperature: float | None = None,
    knowledge: list[str] | None = None,
) -> Any:
    """Complete ``prompt`` with the configured model.

    Args:
        prompt: The user prompt.
        response_format: A pydantic model; the answer is validated into it.
        system: System prompt.
        messages: Earlier turns, ``[{"role": "user"|"assistant", "content": ...}]``.
        model: Override the configured model.
        max_tokens: Output token limit.
        temperature: Sampling temperature.
        knowledge: Knowledge namespaces to retrieve passages from.

    Returns:
        ``AIResponse`` (``content``, ``model``, token counts and the knowledge ``sources``
        used), or an instance of ``response_format`` validated from the model's
        structured output.

    Raises:
        ConfigurationError: No model is configured, or it cannot be used (the message says what to set).
        ValidationError: Invalid arguments (e.g. an unknown knowledge namespace name format).
        WorkflowError: The model provider failed.
    """
    body = _body(prompt, system, messages, model, max_tokens, temperature, knowledge)
    if response_format is not None:
        body["response_schema"] = response_format.model_json_schema()
    result = await _client.call("POST", "/ai/complete", json=body)
    if response_format is not None:
        return response_format.model_validate(result["structured"])
    return AIResponse.model_validate(result)


async def stream(
    prompt: str,
    *,
    system: str | None = None,
    messages: list[dict[str, Any]] | None = None,
    model: str | None = None,
    max_tokens: int | None = None,
    temperature: float | None = None,
    knowledge: list[str] | None = None,
) -> AsyncIterator[AIStreamChunk]:
    """Yield ``AIStreamChunk``s as the model produces them.

    The platform answers with one JSON chunk per line (NDJSON); each line is
    yielded as soon as it arrives. The last chunk has ``done=True``. Arguments are
    those of :func:`complete` (without ``response_format``).

    Raises:
        ConfigurationError: No model is configured (before the first chunk).
        WorkflowError: The model provider failed (possibly after some chunks).
    """
    body = _body(prompt, system, messages, model, max_tokens, temperature, knowledge)
    async for line in _client.stream_lines("POST", "/ai/stream", json=body):
        if line.strip():
            data = json.loads(line)
            if isinstance(data, dict) and data.get("error"):
                # The model failed after the stream had started (the HTTP status was already sent).
                raise WorkflowError(str(data["error"]))
            yield AIStreamChunk.model_validate(data)
