"""API shapes of the forms domain (TypedDicts: plain dicts at run time, documented in ``/schema``)."""

from __future__ import annotations

from typing import Any, TypedDict


class FormDetail(TypedDict):
    """A form: the SDK's ``FormPublic`` fields plus who created it and when."""

    id: str
    name: str
    description: str | None
    workflow_id: str | None
    form_schema: dict[str, Any] | None
    access_level: str
    organization_id: str | None
    is_active: bool
    created_by: str | None
    created_at: str
    updated_at: str


class FormSchema(TypedDict):
    """A ``form_schema``: one entry per field (see docs/forms.md for the field keys)."""

    fields: list[dict[str, Any]]
