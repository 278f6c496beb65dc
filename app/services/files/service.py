"""``bifrost.files`` in cloud mode: organization-scoped files in the object store.

Each file lives under the key ``<org id or "global">/<location>/<path>``; the
organization is always the actor's acting one (an execution's organization, a
user's own, or the one a platform admin picked; a platform admin without one
works in ``global``), so no path a caller sends can name another organization's
folder. Paths are checked here with messages naming the problem; the store
checks keys again and refuses links.

``uploads`` is read-only through the API: only :meth:`FileService.save_upload`
(the form upload handler) writes there. ``temp`` is emptied of old files by
:func:`clean_temp`, which :class:`TempCleaner` runs periodically.
"""

from __future__ import annotations

import asyncio
import builtins
import logging
import mimetypes
import posixpath
import uuid
from collections.abc import AsyncIterable, AsyncIterator, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from app.services.actor import Actor
from app.services.errors import ConflictError, InvalidInputError, NotFoundError, PermissionDeniedError
from app.services.files.storage import (
    KeyConflictError,
    LocalDirectoryStore,
    NotAnObjectError,
    ObjectNotFoundError,
    ObjectStore,
    ObjectTooLargeError,
    StoreError,
    UnsafeKeyError,
)
from app.services.files.views import StoredFileView

if TYPE_CHECKING:
    from app.settings import Settings

log = logging.getLogger(__name__)

LOCATIONS = ("workspace", "temp", "uploads")
GLOBAL_SCOPE = "global"
MAX_PATH_LENGTH = 1024
MAX_NAME_BYTES = 255  # what common filesystems and S3 tools accept per path segment


class FileTooLargeError(InvalidInputError):
    """A file exceeded the size limit (the web layer answers 413)."""


@dataclass(frozen=True)
class StoredFile:
    """A file as the API shows it.

    Attributes:
        path: Path inside its location, normalised.
        location: ``workspace``, ``temp`` or ``uploads``.
        size: Size in bytes.
        modified: Last write time (UTC).
    """

    path: str
    location: str
    size: int
    modified: datetime

    def public(self) -> StoredFileView:
        """JSON form."""
        return {"path": self.path, "location": self.location, "size": self.size, "modified": self.modified.isoformat()}


@dataclass(frozen=True)
class SavedUpload:
    """A form upload saved by :meth:`FileService.save_upload`.

    Attributes:
        path: ``uploads/<form_id>/<uuid>/<filename>``: pass it to ``files.read(path, location="uploads")``.
        name: The file name as uploaded (folders a browser sent are dropped).
        size: Size in bytes.
        content_type: The type the browser sent, else one guessed from the name.
    """

    path: str
    name: str
    size: int
    content_type: str


# ----- validation ----------------------------------------------------------------------------------
def check_location(location: Any) -> str:
    """Return ``location`` if it is one of :data:`LOCATIONS`; InvalidInputError naming the field otherwise."""
    if location not in LOCATIONS:
        raise InvalidInputError.field("location", f"must be one of {', '.join(LOCATIONS)}, got {location!r}")
    return str(location)


def _check_text(value: str, field: str) -> None:
    if "\x00" in value:
        raise InvalidInputError.field(field, "contains a NUL byte")
    if any(ord(c) < 32 or ord(c) == 127 for c in value):
        raise InvalidInputError.field(field, "contains a control character")
    if "\\" in value:
        raise InvalidInputError.field(field, f"{value!r} contains a backslash; separate folders with '/'")


def parse_path(path: Any, location: str, *, allow_root: bool = False) -> list[str]:
    """Split a caller's path into safe segments relative to the location root.

    ``a/../b`` is fine (it stays inside); a leading ``uploads/`` is dropped for
    the uploads location, as the SDK does, so an upload field's value works as is.

    Raises:
        InvalidInputError: Naming ``path``: not text, absolute, escaping, backslashes,
            control characters, too long, or the root where a file is needed.
    """
    if path is None:
        path = ""
    if not isinstance(path, str):
        raise InvalidInputError.field("path", "must be text")
    if len(path) > MAX_PATH_LENGTH:
        raise InvalidInputError.field("path", f"is longer than {MAX_PATH_LENGTH} characters")
    _check_text(path, "path")
    if path.startswith("/"):
        raise InvalidInputError.field(
            "path", f"must be relative to the {location} location, got an absolute path {path!r}"
        )
    relative = path[len("uploads/") :] if location == "uploads" and path.startswith("uploads/") else path
    normalized = posixpath.normpath(relative) if relative else "."
    if normalized == ".." or normalized.startswith("../"):
        raise InvalidInputError.field("path", f"{path!r} escapes the {location} location")
    parts = [] if normalized == "." else normalized.split("/")
    if any(len(part.encode("utf-8")) > MAX_NAME_BYTES for part in parts):
        raise InvalidInputError.field("path", f"has a name longer than {MAX_NAME_BYTES} bytes")
    if not parts and not allow_root:
        raise InvalidInputError.field("path", f"must name a file inside the {location} location, got {path!r}")
    return parts


def _check_name(value: Any, field: str) -> str:
    """A single file or folder name (no separators, not ``.``/``..``)."""
    if not isinstance(value, str) or not value.strip():
        raise InvalidInputError.field(field, "must be a non-empty name")
    _check_text(value, field)
    if "/" in value or value in (".", ".."):
        raise InvalidInputError.field(field, f"{value!r} is not a plain name")
    if len(value.encode("utf-8")) > MAX_NAME_BYTES:
        raise InvalidInputError.field(field, f"is longer than {MAX_NAME_BYTES} bytes")
    return value


@contextmanager
def _store_errors(path: str, location: str) -> Iterator[None]:
    """Turn object store errors into domain errors that name the caller's path, not the internal key."""
    try:
        yield
    except ObjectNotFoundError:
        raise NotFoundError(f"no file {path!r} in the {location} location") from None
    except NotAnObjectError:
        raise InvalidInputError.field("path", f"{path!r} is a folder, not a file") from None
    except KeyConflictError as exc:
        raise ConflictError(f"cannot write {path!r} in the {location} location: {exc}") from None
    except UnsafeKeyError as exc:
        raise InvalidInputError.field("path", f"{path!r} is refused: {exc} (the file store follows no links)") from None


# ----- the service -------------------------------------------------------------------------------------
class FileService:
    """The seven ``bifrost.files`` operations for one store, scoped by the actor's organization.

    Args:
        store: The object store.
        max_file_bytes: Largest file accepted by a write or an upload.
        temp_max_age: Age after which temp files are deleted.
        cleanup_interval_seconds: How often the temp cleanup runs once started.
    """

    def __init__(
        self,
        store: ObjectStore,
        max_file_bytes: int,
        temp_max_age: timedelta = timedelta(hours=24),
        cleanup_interval_seconds: float = 3600.0,
    ) -> None:
        self.store = store
        self.max_file_bytes = max_file_bytes
        self.cleaner = TempCleaner(store, temp_max_age, cleanup_interval_seconds)

    @classmethod
    def from_settings(cls, settings: Settings) -> FileService:
        """The embedded default: a :class:`LocalDirectoryStore` at ``files_root`` (``<home>/files``)."""
        root = settings.files_root or settings.home / "files"
        return cls(
            LocalDirectoryStore(root),
            settings.max_file_bytes,
            timedelta(hours=settings.temp_max_age_hours),
            settings.temp_cleanup_interval_seconds,
        )

    def start_cleanup(self) -> None:
        """Start the periodic temp cleanup in the running event loop."""
        self.cleaner.start()

    async def stop_cleanup(self) -> None:
        """Stop the periodic temp cleanup."""
        await self.cleaner.stop()

    @staticmethod
    def _key(actor: Actor, location: str, parts: builtins.list[str]) -> str:
        # The scope comes from the actor only: a caller's path can never choose the organization.
        return "/".join([actor.acting_org_id or GLOBAL_SCOPE, location, *parts])

    async def open(
        self, actor: Actor, path: Any, location: Any = "workspace"
    ) -> tuple[StoredFile, AsyncIterator[bytes]]:
        """Open a file for streaming.

        Returns:
            The file's metadata and an iterator of its bytes in chunks.

        Raises:
            NotFoundError: No such file in the actor's organization.
            InvalidInputError: Bad path or location, a folder, or a link in the way.
        """
        location = check_location(location)
        parts = parse_path(path, location)
        with _store_errors(path, location):
            info, chunks = await self.store.open_read(self._key(actor, location, parts))
        return StoredFile("/".join(parts), location, info.size, info.modified), chunks

    async def write(
        self,
        actor: Actor,
        path: Any,
        location: Any,
        chunks: AsyncIterable[bytes],
        declared_size: int | None = None,
    ) -> StoredFile:
        """Write a file from a stream of chunks, atomically (a failed write leaves nothing behind).

        Args:
            actor: Who writes.
            path: Path inside the location.
            location: ``workspace`` or ``temp`` (``uploads`` is read-only).
            chunks: The content.
            declared_size: The announced size (Content-Length), checked before reading anything.

        Raises:
            PermissionDeniedError: The location is ``uploads``.
            FileTooLargeError: The file exceeds ``max_file_bytes``.
            ConflictError: A folder is in the way, or a file where a folder is needed.
            InvalidInputError: Bad path or location, or a link in the way.
        """
        location = check_location(location)
        parts = parse_path(path, location)
        if location == "uploads":
            raise PermissionDeniedError(
                "The uploads location is read-only: its files come from form uploads. "
                "Write to the workspace or temp location instead."
            )
        if declared_size is not None and declared_size > self.max_file_bytes:
            raise self._too_large(path)
        with _store_errors(path, location):
            try:
                info = await self.store.write(self._key(actor, location, parts), chunks, self.max_file_bytes)
            except ObjectTooLargeError:
                raise self._too_large(path) from None
        return StoredFile("/".join(parts), location, info.size, info.modified)

    def _too_large(self, path: Any) -> FileTooLargeError:
        return FileTooLargeError(
            f"{path!r} is larger than the file size limit of {self.max_file_bytes} bytes (BIFROST_MAX_FILE_BYTES)",
            [{"field": "content", "message": f"must be at most {self.max_file_bytes} bytes"}],
        )

    async def list(self, actor: Actor, directory: Any = "", location: Any = "workspace") -> builtins.list[str]:
        """Names directly inside ``directory``, sorted; sub-folders end with ``/``; a missing folder is empty."""
        location = check_location(location)
        parts = parse_path(directory, location, allow_root=True)
        with _store_errors(directory, location):
            return await self.store.list(self._key(actor, location, parts))

    async def delete(self, actor: Actor, path: Any, location: Any = "workspace") -> None:
        """Delete a file (folders it leaves empty disappear with it).

        Raises:
            NotFoundError: No such file.
            PermissionDeniedError: The location is ``uploads``.
        """
        location = check_location(location)
        parts = parse_path(path, location)
        if location == "uploads":
            raise PermissionDeniedError("The uploads location is read-only: its files come from form uploads.")
        with _store_errors(path, location):
            await self.store.delete(self._key(actor, location, parts))

    async def exists(self, actor: Actor, path: Any, location: Any = "workspace") -> bool:
        """True when ``path`` is a file or a folder holding something."""
        location = check_location(location)
        parts = parse_path(path, location, allow_root=True)
        with _store_errors(path, location):
            return await self.store.exists(self._key(actor, location, parts))

    async def save_upload(
        self,
        actor: Actor,
        form_id: str,
        filename: str,
        chunks: AsyncIterable[bytes],
        content_type: str | None = None,
    ) -> SavedUpload:
        """Save a form upload as ``uploads/<form_id>/<uuid>/<filename>`` by streaming it.

        The caller (the form submit handler) has already checked that the actor
        may submit the form; this only stores the file in the actor's organization.

        Args:
            actor: Who uploads.
            form_id: The form the file was uploaded to.
            filename: The name the browser sent (any folders in it are dropped).
            chunks: The content.
            content_type: The type the browser sent; guessed from the name when missing.

        Raises:
            InvalidInputError: Bad form id or file name.
            FileTooLargeError: The file exceeds ``max_file_bytes``.
        """
        form_id = _check_name(form_id, "form_id")
        # Some browsers send the client's full path ("C:\\fakepath\\report.pdf"): keep the last part.
        if isinstance(filename, str):
            filename = filename.replace("\\", "/").rsplit("/", 1)[-1].strip()
        name = _check_name(filename, "filename")
        content_type = (content_type or "").strip() or mimetypes.guess_type(name)[0] or "application/octet-stream"
        if len(content_type) > 255 or any(ord(c) < 32 or ord(c) > 126 for c in content_type):
            raise InvalidInputError.field("content_type", "must be a plain MIME type such as text/csv")
        parts = [form_id, str(uuid.uuid4()), name]
        path = "uploads/" + "/".join(parts)
        with _store_errors(path, "uploads"):
            try:
                info = await self.store.write(self._key(actor, "uploads", parts), chunks, self.max_file_bytes)
            except ObjectTooLargeError:
                raise self._too_large(name) from None
        return SavedUpload(path=path, name=name, size=info.size, content_type=content_type)


# ----- temp cleanup ------------------------------------------------------------------------------------
async def clean_temp(store: ObjectStore, max_age: timedelta, *, now: datetime | None = None) -> int:
    """Delete every organization's temp files last written more than ``max_age`` ago.

    Also drops writes abandoned by a crash (older than ``max_age``, at least a day).

    Args:
        store: The object store.
        max_age: Age after which a temp file goes.
        now: The current time (tests pass one).

    Returns:
        How many temp files were deleted.
    """
    now = now or datetime.now(UTC)
    cutoff = now - max_age
    removed = 0
    for scope in await store.list(""):
        if not scope.endswith("/"):
            continue
        try:
            old = [info for info in await store.walk(f"{scope[:-1]}/temp") if info.modified < cutoff]
        except StoreError:
            continue
        for info in old:
            with suppress(StoreError):  # gone meanwhile, or a link planted since: leave it
                await store.delete(info.key)
                removed += 1
    await store.purge_incomplete(now - max(max_age, timedelta(days=1)))
    return removed


class TempCleaner:
    """Runs :func:`clean_temp` now and then every ``interval_seconds`` in the background.

    Args:
        store: The object store.
        max_age: Age after which a temp file goes.
        interval_seconds: Pause between runs.
    """

    def __init__(self, store: ObjectStore, max_age: timedelta, interval_seconds: float) -> None:
        self.store = store
        self.max_age = max_age
        self.interval_seconds = interval_seconds
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Start the background task (idempotent)."""
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name="temp-file-cleanup")

    async def stop(self) -> None:
        """Cancel the background task and wait for it."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with suppress(asyncio.CancelledError):
                await task

    async def _run(self) -> None:
        while True:
            try:
                removed = await clean_temp(self.store, self.max_age)
                if removed:
                    log.info("temp cleanup: deleted %d file(s) older than %s", removed, self.max_age)
            except Exception:  # keep cleaning next time; a full disk or odd file must not end the task
                log.exception("temp cleanup failed")
            await asyncio.sleep(self.interval_seconds)
