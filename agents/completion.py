"""One-shot completions for ``bifrost.ai``: history from simple dicts, structured output from a JSON schema."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from bifrost._schema import model_from_json_schema

ROLES = ("user", "assistant", "system")


def check_messages(messages: list[Any]) -> None:
    """Check ``[{"role": "user"|"assistant"|"system", "content": str}]`` without importing pydantic-ai.

    Raises:
        ValueError: ``"messages[i]: ..."`` or ``"messages[i].content: ..."`` naming the bad message.
    """
    for index, message in enumerate(messages):
        if not isinstance(message, dict) or message.get("role") not in ROLES:
            raise ValueError(f"messages[{index}]: needs a role of {', '.join(ROLES)}")
        if not isinstance(message.get("content"), str):
            raise ValueError(f"messages[{index}].content: must be text")


def history_from_dicts(messages: list[dict[str, Any]]) -> list[Any]:
    """``[{"role": "user"|"assistant"|"system", "content": str}]`` as pydantic-ai messages.

    Raises:
        ValueError: A message with another role or non-text content (the message names its index).
    """
    from pydantic_ai.messages import ModelRequest, ModelResponse, SystemPromptPart, TextPart, UserPromptPart

    check_messages(messages)
    result: list[Any] = []
    for message in messages:
        content = message["content"]
        role = message["role"]
        if role == "assistant":
            result.append(ModelResponse(parts=[TextPart(content=content)]))
        elif role == "system":
            result.append(ModelRequest(parts=[SystemPromptPart(content=content)]))
        else:
            result.append(ModelRequest(parts=[UserPromptPart(content=content)]))
    return result


def output_model(schema: dict[str, Any]) -> type[BaseModel]:
    """A pydantic model rebuilt from a ``model_json_schema()`` (what the SDK sends for ``response_format``).

    Raises:
        ValueError: The schema is not an object schema this platform can rebuild.
    """
    if not isinstance(schema, dict) or schema.get("type") != "object":
        raise ValueError("must be the JSON schema of a pydantic model (an object schema)")
    name = schema.get("title") if isinstance(schema.get("title"), str) else "Response"
    try:
        return model_from_json_schema(schema, name=str(name)[:64] or "Response")
    except Exception as exc:  # any schema the rebuilder cannot follow is the caller's input problem
        raise ValueError(f"cannot build a model from it: {exc}") from None


def knowledge_prompt(prompt: str, passages: list[dict[str, Any]]) -> str:
    """The user prompt with retrieved passages put before it, numbered so the model can cite them."""
    if not passages:
        return prompt
    lines = ["Use these passages from the knowledge base if they help; cite them as [1], [2], ...", ""]
    for number, passage in enumerate(passages, start=1):
        source = passage.get("key") or passage.get("id")
        lines.append(f"[{number}] ({passage.get('namespace')}/{source}) {passage.get('content', '')}")
    lines += ["", "Question:", prompt]
    return "\n".join(lines)
