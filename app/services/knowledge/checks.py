"""Input checks of knowledge calls: each failure is a 422 naming the field."""

from __future__ import annotations

import json
import re
from typing import Any

from app.services.errors import InvalidInputError

NAMESPACE_PATTERN = re.compile(r"^\w[\w .:@-]*$")
CONTROL_CHARS = re.compile(r"[\x00-\x1f\x7f]")
MAX_NAMESPACE = 100
MAX_KEY = 255
MAX_METADATA_BYTES = 64 * 1024
MAX_LIMIT = 100
MAX_NAMESPACES_PER_SEARCH = 20
MAX_QUERY_CHARS = 10_000


def check_namespace(value: Any, field: str = "namespace") -> str:
    """A namespace name: 1-100 characters, letters, digits, spaces and ``_ . : @ -``, not starting with a symbol."""
    if not isinstance(value, str) or not value.strip():
        raise InvalidInputError.field(field, "must be a non-empty string")
    name = value.strip()
    if len(name) > MAX_NAMESPACE:
        raise InvalidInputError.field(field, f"must be at most {MAX_NAMESPACE} characters")
    if not NAMESPACE_PATTERN.match(name):
        raise InvalidInputError.field(
            field, "may contain letters, digits, spaces and _ . : @ - and must start with a letter or digit"
        )
    return name


def check_key(value: Any, *, required: bool = False) -> str | None:
    """A document key (1-255 characters, no control characters) or None."""
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value:
        raise InvalidInputError.field("key", "must be a non-empty string" + ("" if required else " or null"))
    if len(value) > MAX_KEY:
        raise InvalidInputError.field("key", f"must be at most {MAX_KEY} characters")
    if CONTROL_CHARS.search(value):
        raise InvalidInputError.field("key", "must not contain control characters")
    return value


def check_metadata(value: Any) -> dict[str, Any]:
    """A JSON object of at most 64 KiB."""
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
        raise InvalidInputError.field("metadata", "must be a JSON object")
    try:
        size = len(json.dumps(value, allow_nan=False).encode())
    except (TypeError, ValueError) as exc:
        raise InvalidInputError.field("metadata", f"must be JSON-serialisable: {exc}") from None
    if size > MAX_METADATA_BYTES:
        raise InvalidInputError.field("metadata", f"must be at most {MAX_METADATA_BYTES} bytes as JSON")
    return value


def check_content(value: Any, max_chars: int, field: str = "content") -> str:
    """Non-blank text of at most ``max_chars`` characters."""
    if not isinstance(value, str) or not value.strip():
        raise InvalidInputError.field(field, "must be non-empty text")
    if len(value) > max_chars:
        raise InvalidInputError.field(
            field, f"must be at most {max_chars} characters (upload larger files on the knowledge page)"
        )
    if "\x00" in value:  # Postgres text cannot hold NUL
        raise InvalidInputError.field(field, "must not contain NUL characters")
    return value


def check_limit(value: Any) -> int:
    """How many results: an integer from 1 to 100."""
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_LIMIT:
        raise InvalidInputError.field("limit", f"must be an integer from 1 to {MAX_LIMIT}")
    return value


def check_min_score(value: Any) -> float | None:
    """A cosine-similarity threshold from -1 to 1, or None."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not -1.0 <= float(value) <= 1.0:
        raise InvalidInputError.field("min_score", "must be a number from -1 to 1 (cosine similarity)")
    return float(value)


def check_namespaces(value: Any) -> list[str]:
    """One namespace name or a list of 1-20, de-duplicated in order."""
    names = [value] if isinstance(value, str) else value
    if not isinstance(names, list) or not names:
        raise InvalidInputError.field("namespaces", "must be a namespace name or a non-empty list of them")
    if len(names) > MAX_NAMESPACES_PER_SEARCH:
        raise InvalidInputError.field("namespaces", f"at most {MAX_NAMESPACES_PER_SEARCH} namespaces per search")
    return list(dict.fromkeys(check_namespace(n, "namespaces") for n in names))
