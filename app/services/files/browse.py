"""What the Files page needs beyond ``bifrost.files``: listings with sizes, uploads by people, deletes by admins.

Built on :class:`~app.services.files.service.FileService`, so the same path rules and the same
organization scoping apply: the organization is always the actor's acting one, never a path.
May use: the files service, identity's actor and the audit log.
"""

from __future__ import annotations

import builtins
import mimetypes
from collections.abc import AsyncIterable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from app.services.actor import Actor
from app.services.audit import events as audit
from app.services.errors import ConflictError
from app.services.files.service import (
    FileService,
    StoredFile,
    _check_name,
    _store_errors,
    check_location,
    parse_path,
)
from app.services.files.storage import ObjectTooLargeError

MAX_ENTRIES = 1000  # a folder listing stats each file: a page shows this many, folders first

# Audit action names of the Files page (details: location and path, never content).
FILE_UPLOADED = audit.FILE_UPLOADED
FILE_DELETED = audit.FILE_DELETED


@dataclass(frozen=True)
class Entry:
    """One line of a folder listing.

    Attributes:
        name: The file or folder name (folders without the trailing ``/``).
        path: Its path inside the location (what ``files.read`` takes).
        is_folder: A folder (open it) rather than a file (download it).
        size: Size in bytes (files only).
        modified: Last write time, UTC (files only).
        content_type: The type guessed from the name (files only), for the page's label.
    """

    name: str
    path: str
    is_folder: bool
    size: int | None = None
    modified: datetime | None = None
    content_type: str | None = None


def split_folder(directory: str | None, location: str) -> builtins.list[str]:
    """The segments of a folder path of ``location`` (empty for its root); path errors name ``path``."""
    return parse_path(directory or "", check_location(location), allow_root=True)


async def browse(
    files: FileService, actor: Actor, location: str, directory: str | None
) -> tuple[builtins.list[Entry], int]:
    """Folders first, then files, each sorted by name, with sizes and write times.

    Returns:
        At most :data:`MAX_ENTRIES` entries, and how many more the folder holds.

    Raises:
        InvalidInputError: Bad location or folder path (naming ``location`` or ``path``).
    """
    parts = split_folder(directory, location)
    folder = "/".join(parts)
    names = await files.list(actor, folder, location)
    names.sort(key=lambda n: (not n.endswith("/"), n.lower()))
    more = max(0, len(names) - MAX_ENTRIES)
    entries: builtins.list[Entry] = []
    for name in names[:MAX_ENTRIES]:
        path = f"{folder}/{name}" if folder else name
        if name.endswith("/"):
            entries.append(Entry(name[:-1], path[:-1], True))
            continue
        info = await files.store.stat(FileService._key(actor, location, [*parts, name]))
        if info is None:  # deleted meanwhile, or not a regular file: leave it out
            continue
        guessed = mimetypes.guess_type(name)[0]
        entries.append(Entry(name, path, False, info.size, info.modified, guessed))
    return entries, more


async def upload(
    files: FileService,
    session: AsyncSession,
    actor: Actor,
    directory: str | None,
    filename: str,
    chunks: AsyncIterable[bytes],
) -> StoredFile:
    """Store a file someone uploaded from the Files page as ``uploads/<directory>/<filename>``.

    Never replaces a file: a second file of the same name is refused (409), so nobody overwrites a
    form upload a workflow still reads. The upload is audited.

    Args:
        files: The file service.
        session: A session in a transaction, for the audit event.
        actor: Who uploads (their acting organization owns the file).
        directory: The uploads folder shown on the page ("" for its root).
        filename: The name the browser sent (folders in it are dropped).
        chunks: The content.

    Raises:
        InvalidInputError: A bad folder path or file name.
        ConflictError: A file or folder of that name is already there.
        FileTooLargeError: Past ``BIFROST_MAX_FILE_BYTES``.
    """
    parts = split_folder(directory, "uploads")
    # Some browsers send the client's full path ("C:\\fakepath\\report.pdf"): keep the last part.
    name = _check_name(filename.replace("\\", "/").rsplit("/", 1)[-1].strip(), "filename")
    key = FileService._key(actor, "uploads", [*parts, name])
    path = "/".join([*parts, name])
    with _store_errors(path, "uploads"):
        if await files.store.exists(key):
            raise ConflictError(f"uploads already has {path!r}: rename the file or delete the old one first")
        try:
            info = await files.store.write(key, chunks, files.max_file_bytes)
        except ObjectTooLargeError:
            raise files._too_large(name) from None
    stored = StoredFile(path, "uploads", info.size, info.modified)
    details = {"location": "uploads", "path": path, "size": info.size}
    await audit.record(session, actor, FILE_UPLOADED, "file", f"uploads/{path}", actor.acting_org_id, details)
    return stored


async def delete(files: FileService, session: AsyncSession, actor: Actor, path: str | None, location: str) -> str:
    """Delete a file of the acting organization in any location, ``uploads`` included (platform admins only).

    Workflows may not delete uploads (they are evidence of what someone submitted); an admin may,
    from the Files page. The delete is audited.

    Returns:
        The deleted file's path inside its location.

    Raises:
        PermissionDeniedError: The actor is not a platform admin.
        NotFoundError: No such file.
        InvalidInputError: Bad location or path, or a folder.
    """
    actor.require_admin("delete files")
    location = check_location(location)
    parts = parse_path(path, location)
    clean = "/".join(parts)
    with _store_errors(clean, location):
        await files.store.delete(FileService._key(actor, location, parts))
    details = {"location": location, "path": clean}
    await audit.record(session, actor, FILE_DELETED, "file", f"{location}/{clean}", actor.acting_org_id, details)
    return clean
