"""Per-execution registry of secret values an execution has seen, used to redact its output.

When the config service hands a secret's plaintext to a running execution (or the execution
stores a secret), the value is remembered under that execution's id. The dispatcher, which
runs in the same process as the SDK API, replaces every remembered value with ``***`` in the
execution's log lines (before they are stored or streamed), its result and its error, and
forgets the execution when it ends.

What this cannot catch: a secret the workflow transforms before printing (base64, reversed,
split across lines), or one it got elsewhere than ``bifrost.config``.
"""

from __future__ import annotations

import re
from typing import Any

MASK = "***"
# Bounds memory if executions end without reaching a dispatcher in this process.
MAX_EXECUTIONS = 10_000
MAX_VALUES_PER_EXECUTION = 1_000

_values: dict[str, set[str]] = {}
_patterns: dict[str, re.Pattern[str]] = {}


def remember(execution_id: str | None, value: str) -> None:
    """Record that ``execution_id`` has seen the secret ``value`` (no-op outside an execution or for "")."""
    if not execution_id or not value:
        return
    seen = _values.get(execution_id)
    if seen is None:
        if len(_values) >= MAX_EXECUTIONS:
            oldest = next(iter(_values))
            forget(oldest)
        seen = _values[execution_id] = set()
    if value in seen or len(seen) >= MAX_VALUES_PER_EXECUTION:
        return
    seen.add(value)
    _patterns.pop(execution_id, None)


def forget(execution_id: str) -> None:
    """Drop what ``execution_id`` has seen (when it ends)."""
    _values.pop(execution_id, None)
    _patterns.pop(execution_id, None)


def active(execution_id: str | None) -> bool:
    """True when ``execution_id`` has seen at least one secret (the fast path for everything else)."""
    return execution_id in _values if execution_id else False


def _pattern(execution_id: str) -> re.Pattern[str] | None:
    pattern = _patterns.get(execution_id)
    if pattern is None:
        values = _values.get(execution_id)
        if not values:
            return None
        # Longest first, so a secret that contains another is masked whole.
        ordered = sorted(values, key=len, reverse=True)
        pattern = _patterns[execution_id] = re.compile("|".join(re.escape(v) for v in ordered))
    return pattern


def redact_text(execution_id: str | None, text: str | None) -> str | None:
    """``text`` with every secret ``execution_id`` has seen replaced by :data:`MASK`."""
    if text is None or not execution_id:
        return text
    pattern = _pattern(execution_id)
    return pattern.sub(MASK, text) if pattern else text


def redact_json(execution_id: str | None, value: Any) -> Any:
    """A copy of a JSON-like value with secrets masked in every string (dict keys included)."""
    if not execution_id:
        return value
    pattern = _pattern(execution_id)
    if pattern is None:
        return value
    return _walk(pattern, value)


def _walk(pattern: re.Pattern[str], value: Any) -> Any:
    if isinstance(value, str):
        return pattern.sub(MASK, value)
    if isinstance(value, dict):
        return {_walk(pattern, k) if isinstance(k, str) else k: _walk(pattern, v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_walk(pattern, v) for v in value]
    return value
