"""How an execution's result is shown: a table, key/value pairs, or pretty JSON."""

from __future__ import annotations

import json
from typing import Any

MAX_ROWS = 500
MAX_COLUMNS = 40


def cell(value: Any) -> str:
    """A value as table-cell text: scalars as they are, containers as compact JSON."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (str, int, float)):
        return str(value)
    return json.dumps(value, ensure_ascii=False)


def result_view(result: Any) -> dict[str, Any]:
    """Choose the presentation of a result.

    Returns:
        ``{"kind": "table", "columns", "rows", "truncated"}`` for a non-empty list of objects,
        ``{"kind": "object", "items"}`` for an object (values as text, nested ones as JSON),
        ``{"kind": "empty", "text"}`` for ``[]`` and ``{}``, ``{"kind": "json", "text"}`` for anything else,
        ``{"kind": "none"}`` for None.
    """
    if result is None:
        return {"kind": "none"}
    # An empty list or object says so in words (chat showed "{}" then "[]" for two empty answers).
    if isinstance(result, list) and not result:
        return {"kind": "empty", "text": "No rows."}
    if isinstance(result, dict) and not result:
        return {"kind": "empty", "text": "An empty result (no fields)."}
    if isinstance(result, list) and result and all(isinstance(row, dict) for row in result):
        columns: list[str] = []
        for row in result[:MAX_ROWS]:
            for key in row:
                if key not in columns and len(columns) < MAX_COLUMNS:
                    columns.append(key)
        rows = [[cell(row.get(c)) for c in columns] for row in result[:MAX_ROWS]]
        return {"kind": "table", "columns": columns, "rows": rows, "truncated": max(0, len(result) - MAX_ROWS)}
    if isinstance(result, dict) and result:
        items = [
            {"key": str(k), "text": json.dumps(v, indent=2, ensure_ascii=False), "pre": True}
            if isinstance(v, (dict, list))
            else {"key": str(k), "text": cell(v), "pre": False}
            for k, v in result.items()
        ]
        return {"kind": "object", "items": items}
    return {"kind": "json", "text": json.dumps(result, indent=2, ensure_ascii=False)}


def duration_text(duration_ms: int | None) -> str:
    """``850 ms``, ``12.3 s``, ``4 min 5 s``."""
    if duration_ms is None:
        return ""
    if duration_ms < 1000:
        return f"{duration_ms} ms"
    seconds = duration_ms / 1000
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, rest = divmod(int(seconds), 60)
    return f"{minutes} min {rest} s"
