"""Workflows as LLM tools: names, descriptions and argument schemas built from workflow metadata."""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

_TOOL_NAME = re.compile(r"[^A-Za-z0-9_-]")
MAX_TOOL_NAME = 64  # OpenAI's limit; Anthropic's is the same
PROVIDER_KEYWORD = "data_provider"  # json_schema_extra of a parameter a data provider fills
MAX_ENUM_CHOICES = 200  # beyond this an enum costs the model more tokens than it helps


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
    # Titles repeat the property names: noise (and tokens) for the model. ``data_provider`` is our own
    # keyword (forms read it): no JSON Schema consumer knows it, so it becomes an ``enum`` or goes.
    if isinstance(node, dict):
        return {
            k: _strip_titles(v)
            for k, v in node.items()
            if not (k in ("title", PROVIDER_KEYWORD) and isinstance(v, str))
        }
    if isinstance(node, list):
        return [_strip_titles(v) for v in node]
    return node


def provider_parameters(params_schema: dict[str, Any] | None) -> dict[str, str]:
    """``{parameter: data provider name}`` of the top-level parameters a data provider fills."""
    properties = (params_schema or {}).get("properties") or {}
    return {
        name: prop[PROVIDER_KEYWORD]
        for name, prop in properties.items()
        if isinstance(prop, dict) and isinstance(prop.get(PROVIDER_KEYWORD), str)
    }


def _with_choices(prop: dict[str, Any], choices: Sequence[Mapping[str, Any]]) -> None:
    """Put a provider's current choices on a property: an ``enum``, and labels that say more than values."""
    if not choices:
        return
    if len(choices) > MAX_ENUM_CHOICES:
        note = f"One of {len(choices)} values from a list too long to show here."
        prop["description"] = f"{prop.get('description', '')} {note}".strip()
        return
    values: list[Any] = [c["value"] for c in choices]
    if "default" in prop and prop["default"] not in values:
        values.append(prop["default"])  # leaving the parameter out (its default) stays valid
    prop["enum"] = values
    labelled = [f"{c['value']} ({c['label']})" for c in choices if str(c.get("label", c["value"])) != str(c["value"])]
    if labelled:
        prop["description"] = f"{prop.get('description', '')} Choices: {', '.join(labelled)}.".strip()


def arguments_schema(
    params_schema: dict[str, Any] | None, choices: Mapping[str, Sequence[Mapping[str, Any]]] | None = None
) -> dict[str, Any]:
    """The tool's argument schema from a workflow's stored parameter schema (always an object).

    Args:
        params_schema: The workflow's parameter schema (``params_schema`` of its metadata).
        choices: ``{parameter: [{"value", "label"}]}``: the current choices of parameters a data
            provider fills, put on them as an ``enum`` (parameters without an entry get none).
    """
    schema = _strip_titles(copy.deepcopy(params_schema or {}))
    if not isinstance(schema, dict):
        schema = {}
    schema["type"] = "object"
    schema.setdefault("properties", {})
    schema.setdefault("additionalProperties", False)
    for name, options in (choices or {}).items():
        prop = schema["properties"].get(name)
        if isinstance(prop, dict):
            _with_choices(prop, options)
    return schema


def tool_description(description: str | None, tool_description: str | None, workflow: str) -> str:
    """What the model reads about a workflow: its tool description, else its docstring, else its name."""
    text = (tool_description or description or "").strip()
    return text or f"Run the workflow {workflow!r}."


def make_tools(workflows: list[dict[str, Any]]) -> list[WorkflowTool]:
    """Build tools from ``{"name", "description", "tool_description", "params_schema", "needs_approval"}`` dicts
    (with ``"choices"``: the current choices of data-provider parameters, see :func:`arguments_schema`)."""
    taken: set[str] = set()
    tools = []
    for meta in workflows:
        tools.append(
            WorkflowTool(
                workflow=meta["name"],
                tool_name=safe_tool_name(meta["name"], taken),
                description=tool_description(meta.get("description"), meta.get("tool_description"), meta["name"]),
                parameters_schema=arguments_schema(meta.get("params_schema"), meta.get("choices")),
                needs_approval=bool(meta.get("needs_approval")),
            )
        )
    return tools
