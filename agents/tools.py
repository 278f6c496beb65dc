"""Workflows as LLM tools: names, descriptions and argument schemas built from workflow metadata."""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass, field
from typing import Any

_TOOL_NAME = re.compile(r"[^A-Za-z0-9_-]")
MAX_TOOL_NAME = 64  # OpenAI's limit; Anthropic's is the same


@dataclass(frozen=True)
class WorkflowTool:
    """One workflow offered to the model.

    Attributes:
        workflow: The workflow's name (what the platform submits).
        tool_name: The name the model sees (``workflow`` made safe for every provider).
        description: What the tool does, with its parameters' descriptions.
        parameters_schema: JSON schema of the arguments (an object).
        needs_approval: The user must approve each call before it runs.
    """

    workflow: str
    tool_name: str
    description: str
    parameters_schema: dict[str, Any] = field(default_factory=dict)
    needs_approval: bool = False


def safe_tool_name(name: str, taken: set[str]) -> str:
    """``name`` with characters providers refuse replaced by ``_``, cut to 64 and made unique in ``taken``."""
    base = _TOOL_NAME.sub("_", name)[:MAX_TOOL_NAME] or "tool"
    candidate, n = base, 2
    while candidate in taken:
        suffix = f"_{n}"
        candidate = base[: MAX_TOOL_NAME - len(suffix)] + suffix
        n += 1
    taken.add(candidate)
    return candidate


def _strip_titles(node: Any) -> Any:
    # Titles repeat the property names: noise (and tokens) for the model.
    if isinstance(node, dict):
        return {k: _strip_titles(v) for k, v in node.items() if k != "title" or not isinstance(v, str)}
    if isinstance(node, list):
        return [_strip_titles(v) for v in node]
    return node


def arguments_schema(params_schema: dict[str, Any] | None) -> dict[str, Any]:
    """The tool's argument schema from a workflow's stored parameter schema (always an object)."""
    schema = _strip_titles(copy.deepcopy(params_schema or {}))
    if not isinstance(schema, dict):
        schema = {}
    schema["type"] = "object"
    schema.setdefault("properties", {})
    schema.setdefault("additionalProperties", False)
    return schema


def tool_description(description: str | None, tool_description: str | None, workflow: str) -> str:
    """What the model reads about a workflow: its tool description, else its docstring, else its name."""
    text = (tool_description or description or "").strip()
    return text or f"Run the workflow {workflow!r}."


def make_tools(workflows: list[dict[str, Any]]) -> list[WorkflowTool]:
    """Build tools from ``{"name", "description", "tool_description", "params_schema", "needs_approval"}`` dicts."""
    taken: set[str] = set()
    tools = []
    for meta in workflows:
        tools.append(
            WorkflowTool(
                workflow=meta["name"],
                tool_name=safe_tool_name(meta["name"], taken),
                description=tool_description(meta.get("description"), meta.get("tool_description"), meta["name"]),
                parameters_schema=arguments_schema(meta.get("params_schema")),
                needs_approval=bool(meta.get("needs_approval")),
            )
        )
    return tools
