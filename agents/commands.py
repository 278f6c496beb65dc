"""Command mode of the chat, which needs no model: ``/tools``, ``/run <workflow> key=value ...``, ``/help``."""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass, field
from typing import Any

HELP = (
    "Commands: /tools lists the workflows you can run here; "
    '/run <workflow> key=value ... runs one (quote values with spaces: note="two words"; '
    "numbers, true/false and JSON lists or objects are understood; put JSON with quotes in single quotes: "
    'tags=\'["a","b"]\'); /help shows this.'
)


class CommandError(ValueError):
    """The command cannot be understood; the message says why and how to write it."""


@dataclass(frozen=True)
class Command:
    """A parsed command: ``name`` is ``tools``, ``run`` or ``help``."""

    name: str
    workflow: str | None = None
    arguments: dict[str, Any] = field(default_factory=dict)


def is_command(text: str) -> bool:
    """True when the message is a command (starts with ``/``)."""
    return text.lstrip().startswith("/")


def _value(raw: str, schema: dict[str, Any] | None) -> Any:
    kinds = _types(schema)
    if kinds == {"string"}:
        return raw  # a text parameter keeps "007" and "true" as typed
    try:
        return json.loads(raw)
    except ValueError:
        return raw


def _types(schema: dict[str, Any] | None) -> set[str]:
    if not schema:
        return set()
    if "type" in schema:
        kind = schema["type"]
        return set(kind) if isinstance(kind, list) else {kind}
    found: set[str] = set()
    for option in schema.get("anyOf", []) + schema.get("oneOf", []):
        found |= _types(option) - {"null"}
    return found


def parse_command(text: str, schemas: dict[str, dict[str, Any]] | None = None) -> Command:
    """Parse a command message.

    Args:
        text: The message, starting with ``/``.
        schemas: Argument schemas by workflow name, so that text parameters stay text.

    Raises:
        CommandError: Unknown command, missing workflow, or an argument that is not ``key=value``.
    """
    try:
        words = shlex.split(text.strip())
    except ValueError as exc:
        raise CommandError(f"cannot read the command: {exc}. {HELP}") from None
    head = words[0].lower() if words else "/"
    if head in ("/help", "/?"):
        return Command("help")
    if head == "/tools":
        return Command("tools")
    if head != "/run":
        raise CommandError(f"unknown command {words[0] if words else text!r}. {HELP}")
    if len(words) < 2:
        raise CommandError("/run needs a workflow name: /run <workflow> key=value ...")
    workflow = words[1]
    properties = ((schemas or {}).get(workflow) or {}).get("properties", {})
    arguments: dict[str, Any] = {}
    for word in words[2:]:
        key, sep, raw = word.partition("=")
        if not sep or not key:
            raise CommandError(f"argument {word!r} is not key=value")
        arguments[key] = _value(raw, properties.get(key))
    return Command("run", workflow, arguments)
