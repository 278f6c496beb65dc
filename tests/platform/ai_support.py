"""Helpers of the AI and chat tests: scripted pydantic-ai models registered in the server process."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import contextmanager
from typing import Any

import httpx
from pydantic_ai.messages import (
    ModelMessage,
    ModelRequest,
    ModelResponse,
    SystemPromptPart,
    TextPart,
    ToolCallPart,
    ToolReturnPart,
    UserPromptPart,
)
from pydantic_ai.models.function import AgentInfo, DeltaToolCall, FunctionModel

from agents.models import register_model, unregister_model
from tests.platform.conftest import World


def last_user_text(messages: list[ModelMessage]) -> str:
    """The text of the last user prompt the model received."""
    for message in reversed(messages):
        if isinstance(message, ModelRequest):
            for part in reversed(message.parts):
                if isinstance(part, UserPromptPart) and isinstance(part.content, str):
                    return part.content
    return ""


def all_text(messages: list[ModelMessage]) -> str:
    """Every system, user and tool-return text the model received, joined (for assertions)."""
    texts = []
    for message in messages:
        if isinstance(message, ModelRequest):
            if getattr(message, "instructions", None):
                texts.append(str(message.instructions))  # pydantic-ai sends instructions beside the parts
            for part in message.parts:
                if isinstance(part, SystemPromptPart | UserPromptPart) and isinstance(part.content, str):
                    texts.append(part.content)
                if isinstance(part, ToolReturnPart):
                    texts.append(json.dumps(part.content, default=str))
        elif isinstance(message, ModelResponse):
            texts += [p.content for p in message.parts if isinstance(p, TextPart)]
    return "\n".join(texts)


def tool_returns(messages: list[ModelMessage]) -> list[ToolReturnPart]:
    """Tool results sent back to the model in the last request."""
    last = messages[-1] if messages else None
    if isinstance(last, ModelRequest):
        return [p for p in last.parts if isinstance(p, ToolReturnPart)]
    return []


def echo_model(name: str = "echo", chunks: tuple[str, ...] = ("one ", "two ", "three")) -> FunctionModel:
    """Answers ``echo: <prompt>``; fills structured output from the prompt; streams ``chunks``."""
    seen: list[list[ModelMessage]] = []

    def answer(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        seen.append(messages)
        prompt = last_user_text(messages)
        if info.output_tools:
            args: dict[str, Any] = {"sentiment": "positive" if "great" in prompt.lower() else "negative", "score": 0.9}
            return ModelResponse(parts=[ToolCallPart(info.output_tools[0].name, args)])
        return ModelResponse(parts=[TextPart(f"echo: {prompt}")])

    async def stream(messages: list[ModelMessage], info: AgentInfo) -> AsyncIterator[str]:
        seen.append(messages)
        for chunk in chunks:
            yield chunk

    model = FunctionModel(answer, stream_function=stream, model_name=name)
    model.seen = seen  # type: ignore[attr-defined]
    return model


@contextmanager
def registered(name: str, model: Any) -> Iterator[Any]:
    """``custom:<name>`` resolves to ``model`` in this process (the live server runs here too)."""
    register_model(name, model)
    try:
        yield model
    finally:
        unregister_model(name)


def set_ai(world: World, org: str | None = None, **fields: Any) -> dict[str, Any]:
    """PUT the AI settings of the platform (``org`` None) or of an organization, as the admin."""
    with world.server.client(world.admin_key) as admin:
        response = admin.put("/api/ai/settings", params={"org": org} if org else {}, json=fields)
        assert response.status_code == 200, response.text
        return response.json()  # type: ignore[no-any-return]


def clear_ai(world: World, *orgs: str | None) -> None:
    """Remove the model of the platform and of the given organizations."""
    for org in (None, *orgs):
        set_ai(world, org, model=None, base_url=None, api_key_config=None, knowledge_namespaces=[])


def run_workflow(client: httpx.Client, name: str, params: dict[str, Any], timeout: float = 60) -> dict[str, Any]:
    """Run a workflow over the API and wait for its end; returns the execution."""
    response = client.post(f"/api/workflows/{name}/execute", params={"wait": "true"}, json={"params": params})
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


def stream_function(script: Callable[[list[ModelMessage], AgentInfo], list[str | dict[int, DeltaToolCall]]]) -> Any:
    """An async stream function yielding what ``script`` returns for each request."""

    async def stream(messages: list[ModelMessage], info: AgentInfo) -> AsyncIterator[Any]:
        for item in script(messages, info):
            yield item

    return stream
