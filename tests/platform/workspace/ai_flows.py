"""Workflows for the AI and chat tests: ``bifrost.ai`` from inside a run, and tool workflows for the chat."""

import asyncio

from pydantic import BaseModel

from bifrost import UserError, ai, workflow


class Sentiment(BaseModel):
    sentiment: str
    score: float


@workflow(category="AI tests")
async def ask_ai(prompt: str, knowledge: list[str] | None = None) -> dict:
    """Ask the configured model and return its whole answer."""
    response = await ai.complete(prompt, knowledge=knowledge or None)
    return response.model_dump()


@workflow(category="AI tests")
async def classify_text(text: str) -> dict:
    """Structured output: the answer validated into a pydantic model."""
    result = await ai.complete(f"Analyze: {text}", response_format=Sentiment)
    return {"type": type(result).__name__, **result.model_dump()}


@workflow(category="AI tests")
async def stream_ai(prompt: str) -> list:
    """The chunks of a streamed answer, in the order they arrived."""
    return [[chunk.content, chunk.done] async for chunk in ai.stream(prompt)]


@workflow(category="AI tests")
async def ai_without_model(prompt: str) -> str:
    """Reports the typed error the SDK raises when no model is configured."""
    from bifrost import ConfigurationError

    try:
        await ai.complete(prompt)
    except ConfigurationError as exc:
        return f"ConfigurationError: {exc}"
    return "no error"


@workflow(category="Chat tools", is_tool=True)
async def lookup_user(email: str) -> dict:
    """Find a user account by email address.

    Args:
        email: The user's email address.
    """
    return {"email": email, "name": email.split("@")[0].title(), "active": True}


@workflow(category="Chat tools", is_tool=True)
async def reset_password(email: str, notify: bool = True) -> dict:
    """Reset a user's password and send them a link.

    Args:
        email: The user's email address.
        notify: Email the user the reset link.
    """
    return {"email": email, "reset": True, "notified": notify}


@workflow(category="Chat tools", is_tool=True)
async def failing_tool(reason: str) -> dict:
    """A tool that always fails with the reason it is given.

    Args:
        reason: Why it fails.
    """
    raise UserError(f"cannot do it: {reason}")


@workflow(category="Chat tools", is_tool=True, timeout_seconds=2)
async def slow_tool(seconds: float = 30) -> str:
    """A tool that outlives its 2-second timeout."""
    await asyncio.sleep(seconds)
    return "finished"


@workflow(category="Chat tools")
async def not_a_tool(email: str) -> dict:
    """A workflow that is not offered to the chat (no is_tool)."""
    return {"email": email}


@workflow(category="AI tests")
async def chat_from_workflow() -> str:
    """Tries the chat API with the execution's own token (it is for people only)."""
    from bifrost import _client
    from bifrost.errors import PermissionDeniedError

    try:
        await _client.call("GET", "/chat/conversations")
    except PermissionDeniedError as exc:
        return f"refused: {exc}"
    return "allowed"
