"""The Files page: the files of the organization one acts in, as ``bifrost.files`` sees them.

* ``GET /files?location=&path=``: a folder of ``workspace``, ``temp`` or ``uploads`` (sizes, times).
* ``GET /files/view?location=&path=``: a text file shown on the page (CSV as a table), escaped.
* ``GET /files/download?location=&path=``: the bytes, always as an attachment (never run as a page).
* ``POST /files/upload`` (multipart, CSRF): a file into the ``uploads`` folder shown; never replaces one.
* ``POST /files/delete`` (CSRF): platform admins delete a file, ``uploads`` included.

Permissions are the SDK's: the organization is the actor's acting one (a technician's own; the one a
platform admin picked with "Acting in", else the global area), never a parameter, so no URL reaches
another organization's files. Bad paths answer 4xx pages naming the problem.
"""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlencode

from litestar import Request, get, post
from litestar.datastructures import UploadFile
from litestar.exceptions import HTTPException
from litestar.response import Redirect, Stream, Template

from app.models import Organization
from app.services.actor import Actor
from app.services.errors import DomainError, InvalidInputError
from app.services.files import browse
from app.services.files.service import LOCATIONS, FileService, FileTooLargeError, check_location, parse_path
from app.web.api.files import attachment
from app.web.deps import db, get_platform
from app.web.pages.common import PageController, flash, form_text, layout_context

_CHUNK = 1024 * 1024
VIEW_MAX_BYTES = 1024 * 1024  # larger files are offered for download only
VIEW_MAX_ROWS = 500
_LABELS = {"workspace": "Workspace", "temp": "Temp", "uploads": "Uploads"}
_HINTS = {
    "workspace": "Files your workflows keep (files.write(path)).",
    "temp": "Scratch files of workflows; deleted a day after they were last written.",
    "uploads": "Files people uploaded with forms or on this page; workflows read them, never change them.",
}


def files_url(location: str, path: str = "", page: str = "/files") -> str:
    """The page URL of a folder (``page="/files"``) or a file (``/files/view``, ``/files/download``)."""
    query = {"location": location, **({"path": path} if path else {})}
    return f"{page}?{urlencode(query)}"


def _service(request: Request[Any, Any, Any]) -> FileService:
    return get_platform(request.app.state).files


def _crumbs(location: str, parts: list[str]) -> list[dict[str, str]]:
    crumbs = [{"name": _LABELS[location], "url": files_url(location)}]
    for depth in range(len(parts)):
        crumbs.append({"name": parts[depth], "url": files_url(location, "/".join(parts[: depth + 1]))})
    return crumbs


def _size(count: int | None) -> str:
    if count is None:
        return ""
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if count < 1024 or unit == "GiB":
            return f"{count} {unit}" if unit == "bytes" else f"{count:.1f} {unit}"
        count = count / 1024  # type: ignore[assignment]
    return f"{count} bytes"


async def _scope_name(request: Request[Any, Any, Any], actor: Actor) -> str:
    if not actor.acting_org_id:
        return "the global area (no organization picked)"
    async with db(request) as session:
        org = await session.get(Organization, actor.acting_org_id)
    return org.name if org else actor.acting_org_id


async def _chunks(upload: UploadFile) -> AsyncIterator[bytes]:
    while chunk := await upload.read(_CHUNK):
        yield chunk


class FilePages(PageController):
    """``/files``: browse, view, download, upload (into ``uploads``) and, for admins, delete."""

    path = "/files"

    async def _page(self, request: Request[Any, Any, Any], actor: Actor, template: str, **extra: Any) -> Template:
        async with db(request) as session:
            layout = await layout_context(request, session, actor)
        context = {
            **layout,
            "scope_name": await _scope_name(request, actor),
            "locations": [{"name": n, "label": _LABELS[n], "url": files_url(n)} for n in LOCATIONS],
            "files_url": files_url,
            "human_size": _size,
            "max_upload": _size(_service(request).max_file_bytes),
            **extra,
        }
        return Template(template, context=context)

    @get("/")
    async def folder(
        self, request: Request[Any, Any, Any], actor: Actor, location: str = "workspace", path: str | None = None
    ) -> Template:
        """A folder: its sub-folders and files, newest write times shown, with the actions allowed."""
        location = check_location(location)
        parts = browse.split_folder(path, location)
        entries, more = await browse.browse(_service(request), actor, location, path)
        return await self._page(
            request,
            actor,
            "pages/files.html",
            location=location,
            hint=_HINTS[location],
            folder="/".join(parts),
            crumbs=_crumbs(location, parts),
            entries=entries,
            more=more,
        )

    @get("/view")
    async def view(
        self, request: Request[Any, Any, Any], actor: Actor, location: str = "workspace", path: str | None = None
    ) -> Template:
        """A file on the page: CSV as a table, other text as it is (escaped); binary files offer the download."""
        location = check_location(location)
        stored, chunks = await _service(request).open(actor, path, location)
        parts = stored.path.split("/")
        text: str | None = None
        if stored.size <= VIEW_MAX_BYTES:
            data = b"".join([chunk async for chunk in chunks])
            try:
                text = data.decode("utf-8")
            except UnicodeDecodeError:
                text = None
        # A larger file is not read at all: its handle closes with the unstarted iterator.
        rows: list[list[str]] = []
        if text is not None and parts[-1].lower().endswith(".csv"):
            rows = list(csv.reader(io.StringIO(text)))[: VIEW_MAX_ROWS + 1]
        return await self._page(
            request,
            actor,
            "pages/files_view.html",
            location=location,
            file=stored,
            name=parts[-1],
            crumbs=_crumbs(location, parts),
            text=text,
            rows=rows,
            too_large=stored.size > VIEW_MAX_BYTES,
            download_url=files_url(location, stored.path, "/files/download"),
            folder_url=files_url(location, "/".join(parts[:-1])),
        )

    @get("/download", media_type="application/octet-stream")
    async def download(
        self, request: Request[Any, Any, Any], actor: Actor, location: str = "workspace", path: str | None = None
    ) -> Stream:
        """The file's bytes, streamed, as an attachment (a stored HTML file never runs as our page)."""
        stored, chunks = await _service(request).open(actor, path, location)
        return attachment(stored, chunks)

    # The body limit is the guard middleware's (BIFROST_MAX_FILE_BYTES plus form framing, 413 above it).
    @post("/upload", status_code=303, request_max_body_size=None)
    async def upload(self, request: Request[Any, Any, Any], actor: Actor) -> Redirect:
        """Store the chosen file in the ``uploads`` folder shown (refused when the name is taken)."""
        data = await request.form()
        folder = form_text(data, "path")
        parse_path(folder, "uploads", allow_root=True)  # a bad folder is a 422 page, not a flash
        upload = data.get("file")
        if not isinstance(upload, UploadFile) or not upload.filename:
            raise InvalidInputError.field("file", "choose a file to upload")
        try:
            async with db(request) as session:
                stored = await browse.upload(
                    _service(request), session, actor, folder, upload.filename, _chunks(upload)
                )
        except FileTooLargeError as exc:
            raise HTTPException(status_code=413, detail=str(exc)) from None
        except DomainError as exc:
            if isinstance(exc, InvalidInputError) and exc.errors:
                flash(request, f"Upload refused: {'; '.join(e['message'] for e in exc.errors)}.")
            else:
                flash(request, f"Upload refused: {exc}")
            return Redirect(files_url("uploads", folder), status_code=303)
        flash(request, f"Uploaded {stored.path} ({_size(stored.size)}).")
        return Redirect(files_url("uploads", folder), status_code=303)

    @post("/delete", status_code=303)
    async def delete(self, request: Request[Any, Any, Any], actor: Actor) -> Redirect:
        """Delete one file (platform admins); back to its folder."""
        data = await request.form()
        location = check_location(form_text(data, "location"))
        async with db(request) as session:
            path = await browse.delete(_service(request), session, actor, form_text(data, "path"), location)
        flash(request, f"Deleted {location}/{path}.")
        return Redirect(files_url(location, path.rpartition("/")[0]), status_code=303)
