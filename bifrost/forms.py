"""Form definitions, read side (``bifrost.forms``)."""

from __future__ import annotations

import builtins

from bifrost import _client
from bifrost.types import FormPublic


async def list() -> builtins.list[FormPublic]:
    """List the forms the calling user may use."""
    return [FormPublic.model_validate(r) for r in await _client.call("GET", "/forms")]


async def get(form_id: str) -> FormPublic:
    """Return one form with its ``form_schema``.

    Raises:
        NotFoundError: If the caller may not see it or it does not exist.
    """
    return FormPublic.model_validate(await _client.call("GET", f"/forms/{_client.segment(form_id)}"))
