"""Publishing a workflow's source into the workspace (``POST /api/publish``, JSON API only, admins).

``%bifrost publish`` in a notebook calls it; see :mod:`app.engine.publish` for the checks.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any, cast

from litestar import Controller, Request, Response, post
from pydantic import BaseModel, Field

from app.engine.publish import publish
from app.services.actor import Actor
from app.web.api.schemas import PublishResponse
from app.web.deps import get_platform


class PublishRequest(BaseModel):
    """Body of ``POST /publish``."""

    name: str = Field(description="The workflow (or data provider) the module defines")
    source: str = Field(description="Python source of the whole module, imports included")
    file: str | None = Field(default=None, description="Path in the workspace (default <name>.py)")
    kind: str = Field(default="workflow", description="workflow or data_provider")
    force: bool = Field(default=False, description="Replace an existing file or workflow of that name")


class PublishController(Controller):
    """Write a module into the workspace after proving it imports and defines the workflow."""

    path = "/publish"
    tags = ["workspace"]

    @post("/", status_code=201)
    async def publish(
        self, request: Request[Any, Any, Any], actor: Actor, data: PublishRequest
    ) -> Response[PublishResponse]:
        """Publish: 201 with the new workflow, 200 when an existing file was replaced (``force``)."""
        result = await publish(
            get_platform(request.app.state),
            actor,
            data.name,
            data.source,
            file=data.file,
            kind=data.kind,
            force=data.force,
        )
        # cast: asdict() of PublishResult, whose fields are the keys of PublishResponse.
        return Response(cast("PublishResponse", asdict(result)), status_code=200 if result.replaced else 201)


CONTROLLERS = [PublishController]
