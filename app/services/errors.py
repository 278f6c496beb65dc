"""Domain errors raised by services. ``app.web.errors`` maps each to one HTTP status."""

from __future__ import annotations

from typing import Any


class DomainError(Exception):
    """Base class of every service error; ``str(error)`` is safe to show to the caller."""


class NotFoundError(DomainError):
    """The object does not exist in the caller's scope (404)."""


class PermissionDeniedError(DomainError):
    """The caller is authenticated but may not do this (403)."""


class AuthenticationError(DomainError):
    """No valid credentials (401)."""


class ConflictError(DomainError):
    """The request clashes with existing state, e.g. a duplicate name (409)."""


class InvalidInputError(DomainError):
    """Input failed validation (422); ``errors`` names each bad field.

    Args:
        message: Summary.
        errors: ``[{"field": ..., "message": ...}]``.
    """

    def __init__(self, message: str, errors: list[dict[str, Any]] | None = None) -> None:
        super().__init__(message)
        self.errors = errors or []

    @classmethod
    def field(cls, field: str, message: str) -> InvalidInputError:
        """Build an error about a single field."""
        return cls(f"{field}: {message}", [{"field": field, "message": message}])


def reject_unknown_fields(updates: dict[str, Any], allowed: set[str] | frozenset[str]) -> None:
    """Raise InvalidInputError naming every key of ``updates`` that is not in ``allowed``."""
    unknown = sorted(set(updates) - set(allowed))
    if unknown:
        raise InvalidInputError(
            f"Unknown fields: {', '.join(unknown)}", [{"field": f, "message": "cannot be updated"} for f in unknown]
        )


def whole_number(text: str | None, max_digits: int = 18) -> int | None:
    """``text`` as a non-negative integer when it is 1 to ``max_digits`` ASCII digits, else None.

    ``str.isdigit()`` alone also accepts digits ``int()`` refuses ("²", or more digits than Python
    converts), which turned headers such as ``Last-Event-ID`` into 500s.
    """
    if not text or len(text) > max_digits or not (text.isascii() and text.isdigit()):
        return None
    return int(text)


def require_bool(value: Any, field: str) -> bool:
    """``value`` if it is a real boolean; InvalidInputError otherwise (``"false"`` is not False)."""
    if not isinstance(value, bool):
        raise InvalidInputError.field(field, "must be true or false")
    return value


def optional_text(value: Any, field: str, max_length: int) -> str | None:
    """A stripped string of at most ``max_length`` characters, or None for None/empty; 422 otherwise."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidInputError.field(field, "must be text")
    if len(value) > max_length:
        raise InvalidInputError.field(field, f"must be at most {max_length} characters")
    return value.strip() or None
