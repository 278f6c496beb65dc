"""The forms API: read by every user (by access level), managed by platform admins.

Served under ``/api/forms`` and, read-only, under ``/api/sdk/v1/forms`` (``bifrost.forms``).
"""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Controller, Request, delete, get, patch, post, put
from litestar.connection import ASGIConnection
from litestar.handlers.base import BaseRouteHandler
from litestar.types import ControllerRouterHandler
from pydantic import BaseModel

from app.services.actor import Actor
from app.services.errors import PermissionDeniedError
from app.services.forms.service import FormService, form_detail
from app.services.forms.views import FormDetail, FormSchema
from app.web.api.schemas import FormBody, documented_body
from app.web.deps import db

SDK_PREFIX = "/api/sdk/"


def not_through_sdk(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
    """Guard: forms are read-only through the SDK API (``bifrost.forms`` only reads)."""
    if connection.url.path.startswith(SDK_PREFIX):
        raise PermissionDeniedError("Forms are read-only through the SDK API; manage them at /api/forms.")


class RoleIds(BaseModel):
    """Body of ``PUT /forms/{id}/roles``."""

    role_ids: list[str]


class FormController(Controller):
    """Forms: list and get for users; create, update, delete and role assignment for platform admins."""

    path = "/forms"
    tags = ["forms"]

    @get("/")
    async def list_forms(self, request: Request[Any, Any, Any], actor: Actor) -> list[FormDetail]:
        """The forms the caller may use (platform admins: all, inactive ones too)."""
        async with db(request) as session:
            return [form_detail(f) for f in await FormService(session).list(actor)]

    @get("/default-schema")
    async def default_schema(self, request: Request[Any, Any, Any], actor: Actor, workflow: str) -> FormSchema:
        """The ``form_schema`` generated from a workflow's parameters (``?workflow=<id or name>``)."""
        async with db(request) as session:
            return await FormService(session).default_schema(actor, workflow)

    @get("/{form_id:str}")
    async def get_form(self, request: Request[Any, Any, Any], actor: Actor, form_id: str) -> FormDetail:
        """One form with its ``form_schema`` (404 when the caller may not use it)."""
        async with db(request) as session:
            return form_detail(await FormService(session).get(actor, form_id))

    @post("/", status_code=201, guards=[not_through_sdk])
    async def create(
        self,
        request: Request[Any, Any, Any],
        actor: Actor,
        data: Annotated[dict[str, Any], documented_body(FormBody, closed=True)],
    ) -> FormDetail:
        """Create a form: ``name``, ``workflow_id`` (id or name), ``form_schema``, ``access_level``, ..."""
        async with db(request) as session:
            return form_detail(await FormService(session).create(actor, **data))

    @patch("/{form_id:str}", guards=[not_through_sdk])
    async def update(
        self,
        request: Request[Any, Any, Any],
        actor: Actor,
        form_id: str,
        data: Annotated[dict[str, Any], documented_body(FormBody, closed=True)],
    ) -> FormDetail:
        """Change some fields of a form."""
        async with db(request) as session:
            return form_detail(await FormService(session).update(actor, form_id, **data))

    @delete("/{form_id:str}", status_code=204, guards=[not_through_sdk])
    async def remove(self, request: Request[Any, Any, Any], actor: Actor, form_id: str) -> None:
        """Delete a form and its role assignments."""
        async with db(request) as session:
            await FormService(session).delete(actor, form_id)

    @get("/{form_id:str}/roles", guards=[not_through_sdk])
    async def roles(self, request: Request[Any, Any, Any], actor: Actor, form_id: str) -> list[str]:
        """Ids of the roles the form is assigned to."""
        async with db(request) as session:
            return await FormService(session).list_roles(actor, form_id)

    @put("/{form_id:str}/roles", guards=[not_through_sdk])
    async def set_roles(self, request: Request[Any, Any, Any], actor: Actor, form_id: str, data: RoleIds) -> list[str]:
        """Replace the roles the form is assigned to; returns them."""
        async with db(request) as session:
            return await FormService(session).set_roles(actor, form_id, data.role_ids)


# Route handlers served under both /api and /api/sdk/v1 (SDK) unless the module says otherwise.
CONTROLLERS: list[ControllerRouterHandler] = [FormController]
