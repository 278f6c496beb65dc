"""JSON typed into a page's text box, read with messages a person can act on.

``json.loads`` says "Expecting value: line 1 column 1 (char 0)"; a technician filling a form needs
to hear which field, what shape is expected and where the text went wrong (issue 19).
"""

from __future__ import annotations

import json
from typing import Any

_SHAPES = {"object": (dict, "a JSON object"), "array": (list, "a JSON list"), "any": (object, "JSON")}
_FOUND = {dict: "an object", list: "a list", str: "text", bool: "true/false", int: "a number", float: "a number"}


def example_object(schema: dict[str, Any] | None) -> str:
    """A one-line example object for a parameter's JSON schema (its property names when it has them)."""
    properties = (schema or {}).get("properties") or {}
    samples = {"integer": 1, "number": 1.5, "boolean": True, "array": [], "object": {}}
    if properties:
        return json.dumps({name: samples.get(str(p.get("type")), "text") for name, p in list(properties.items())[:4]})
    return '{"key": "value"}'


def read_json(text: str, expect: str = "object", example: str = "") -> tuple[Any, str | None]:
    """Parse ``text`` as JSON of the ``expect`` shape ("object", "array" or "any").

    Args:
        text: What the person typed.
        expect: The shape the field takes.
        example: Shown in the message, so the fix is one copy away.

    Returns:
        ``(value, None)``, or ``(None, message)`` with a message that names no Python internals.
    """
    kind, wanted = _SHAPES[expect]
    hint = f", for example {example}" if example else ""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        where = f"line {exc.lineno}, column {exc.colno}" if "\n" in text.strip() else f"character {exc.pos + 1}"
        cause = _cause(exc.msg)
        return None, f"not valid JSON ({cause} at {where}): enter {wanted}{hint}."
    except ValueError:
        return None, f"not valid JSON: enter {wanted}{hint}."
    if not isinstance(value, kind):
        found = _FOUND.get(type(value), "something else")
        return None, f"must be {wanted}{hint}, not {found}."
    return value, None


def _cause(message: str) -> str:
    """The JSON decoder's reason in plain words."""
    lowered = message.lower()
    if lowered.startswith("expecting property name"):
        return "names need double quotes"
    if lowered.startswith("expecting value"):
        return "a value is missing or a string lacks double quotes"
    if lowered.startswith("expecting ',' delimiter") or lowered.startswith("expecting ':' delimiter"):
        return "a comma or colon is missing"
    if lowered.startswith("extra data"):
        return "there is text after the end"
    if lowered.startswith("unterminated string"):
        return "a string is not closed"
    return "it could not be read"
