"""HTML rendering of run results: a table for a list of objects, JSON otherwise, errors with their traceback."""

from __future__ import annotations

import json
from html import escape
from typing import Any, Protocol

MAX_ROWS = 200
MAX_COLUMNS = 30

_STYLE = (
    "<style>.bifrost-run{font-family:var(--jp-ui-font-family,sans-serif);font-size:13px}"
    ".bifrost-run table{border-collapse:collapse;margin:4px 0}"
    ".bifrost-run th,.bifrost-run td{border:1px solid #ccc;padding:2px 6px;text-align:left;vertical-align:top}"
    ".bifrost-run th{background:#f3f3f3}.bifrost-run .ok{color:#16794c}.bifrost-run .bad{color:#b3261e}"
    ".bifrost-run pre{margin:4px 0;white-space:pre-wrap}</style>"
)


def _cell(value: Any) -> str:
    if isinstance(value, str):
        return escape(value)
    if value is None:
        return ""
    return escape(json.dumps(value, default=str))


def table_html(rows: list[dict[str, Any]]) -> str:
    """An HTML table of a list of objects: one column per key (in first-seen order), one row per object."""
    columns: list[str] = []
    for row in rows[:MAX_ROWS]:
        for key in row:
            if key not in columns and len(columns) < MAX_COLUMNS:
                columns.append(key)
    head = "".join(f"<th>{escape(str(c))}</th>" for c in columns)
    body = "".join(
        "<tr>" + "".join(f"<td>{_cell(row.get(c))}</td>" for c in columns) + "</tr>" for row in rows[:MAX_ROWS]
    )
    more = f"<p>… {len(rows) - MAX_ROWS} more rows</p>" if len(rows) > MAX_ROWS else ""
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>{more}"


def is_table(value: Any) -> bool:
    """True for a non-empty list whose items are all objects (dicts)."""
    return isinstance(value, list) and bool(value) and all(isinstance(item, dict) for item in value)


def value_html(value: Any) -> str:
    """A table for a list of objects, pretty JSON for anything else."""
    if is_table(value):
        return table_html(value)
    return f"<pre>{escape(json.dumps(value, indent=2, default=str))}</pre>"


class RunView(Protocol):
    """What :func:`run_result_html` reads of a run (``notebooks.runner.RunResult`` has it).

    A protocol rather than an import keeps this module a leaf: the runner uses it, not the reverse.
    """

    name: str
    execution_id: str
    status: str
    result: Any
    error_message: str | None
    traceback: str | None
    duration_ms: int | None

    @property
    def ok(self) -> bool: ...


def run_result_html(run: RunView) -> str:
    """The rich display of a notebook run."""
    duration = f" in {run.duration_ms} ms" if run.duration_ms is not None else ""
    head = (
        f"<div><b>{escape(run.name)}</b> "
        f"<span class='{'ok' if run.ok else 'bad'}'>{escape(run.status)}</span>{duration}"
        f" · execution <code>{escape(run.execution_id)}</code></div>"
    )
    if run.ok:
        body = value_html(run.result)
    else:
        body = f"<pre class='bad'>{escape(run.error_message or '')}</pre>"
        if run.traceback:
            body += f"<details><summary>Traceback</summary><pre>{escape(run.traceback)}</pre></details>"
    return f"{_STYLE}<div class='bifrost-run'>{head}{body}</div>"
