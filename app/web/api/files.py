"""The files API behind ``bifrost.files`` (cloud mode), under /api and /api/sdk/v1.

Bodies stream both ways: a PUT is read chunk by chunk into the store (never
whole into memory) and a GET answers a streamed response.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import quote

from litestar import Controller, Request, delete, get, put
from litestar.exceptions import HTTPException
from litestar.response import Stream
from litestar.types import ControllerRouterHandler

from app.services.actor import Actor
from app.services.errors import whole_number
from app.services.files.service import FileService, FileTooLargeError, StoredFile
from app.services.files.views import FileExists, StoredFileView
from app.web.deps import get_platform


def _files(request: Request[Any, Any, Any]) -> FileService:
    return get_platform(request.app.state).files


def _declared_size(request: Request[Any, Any, Any]) -> int | None:
    value = request.headers.get("content-length")
    return whole_number(value)


def attachment(stored: StoredFile, chunks: AsyncIterator[bytes]) -> Stream:
    """A stored file's bytes streamed as a download (the API's and the Files page's).

    Never rendered by a browser on this origin: stored HTML must not run as the platform's page.
    """
    name = stored.path.rsplit("/", 1)[-1]
    return Stream(
        chunks,
        media_type="application/octet-stream",
        headers={
            "content-length": str(stored.size),
            "content-disposition": f"attachment; filename*=UTF-8''{quote(name, safe='')}",
            "x-content-type-options": "nosniff",
            "cache-control": "no-store",
        },
    )


class FileController(Controller):
    """Read, write, list, delete and test files of the caller's organization.

    Every route takes ``path`` (relative to the location) and ``location``
    (``workspace`` by default, ``temp`` or ``uploads``) as query parameters.
    """

    path = "/files"
    tags = ["files"]

    @get("/content", media_type="application/octet-stream")
    async def read(
        self, request: Request[Any, Any, Any], actor: Actor, path: str | None = None, location: str = "workspace"
    ) -> Stream:
        """Download a file (streamed)."""
        stored, chunks = await _files(request).open(actor, path, location)
        return attachment(stored, chunks)

    @put("/content", status_code=200, request_max_body_size=None)
    async def write(
        self, request: Request[Any, Any, Any], actor: Actor, path: str | None = None, location: str = "workspace"
    ) -> StoredFileView:
        """Create or replace a file with the raw request body (streamed; 413 past the size limit)."""
        try:
            stored = await _files(request).write(actor, path, location, request.stream(), _declared_size(request))
        except FileTooLargeError as exc:
            raise HTTPException(status_code=413, detail=str(exc), extra={"errors": exc.errors}) from None
        return stored.public()

    @delete("/content", status_code=204)
    async def remove(
        self, request: Request[Any, Any, Any], actor: Actor, path: str | None = None, location: str = "workspace"
    ) -> None:
        """Delete a file (404 when there is none)."""
        await _files(request).delete(actor, path, location)

    @get("/list")
    async def list_dir(
        self, request: Request[Any, Any, Any], actor: Actor, path: str | None = None, location: str = "workspace"
    ) -> list[str]:
        """Names directly inside the folder ``path`` (sub-folders end with ``/``), sorted."""
        return await _files(request).list(actor, path, location)

    @get("/exists")
    async def exists(
        self, request: Request[Any, Any, Any], actor: Actor, path: str | None = None, location: str = "workspace"
    ) -> FileExists:
        """``{"exists": true}`` when ``path`` is a file or a folder holding something."""
        return {"exists": await _files(request).exists(actor, path, location)}


# Route handlers served under both /api and /api/sdk/v1 (SDK) unless the module says otherwise.
CONTROLLERS: list[ControllerRouterHandler] = [FileController]
