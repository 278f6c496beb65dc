"""API shapes of the config domain (TypedDicts: plain dicts at run time, documented in ``/schema``)."""

from __future__ import annotations

from typing import Any, TypedDict


class _ValueBody(TypedDict):
    value: Any


class ConfigSetBody(_ValueBody, total=False):
    """A value to store: text, an integer, true/false or JSON (a secret: non-empty text, stored encrypted);
    ``description`` null keeps the current one, empty clears it."""

    is_secret: bool
    description: str | None


class ConfigEntryView(TypedDict):
    """A config entry (``bifrost.types.ConfigData`` fields plus ``is_secret``, ``masked``, ``updated_at``);
    a secret's ``value`` is the mask unless the caller is an execution."""

    key: str
    value: Any
    type: str
    is_secret: bool
    masked: bool
    organization_id: str | None
    description: str | None
    updated_at: str


class ConfigEntryRow(ConfigEntryView):
    """A row of ``?detail=true``: ``overridden`` is true for a global value the organization replaces."""

    overridden: bool
