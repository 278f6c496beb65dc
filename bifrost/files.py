"""File operations (``bifrost.files``).

``location``: ``"workspace"`` (default, persistent), ``"temp"`` (cleaned
periodically) or ``"uploads"`` (form uploads, read-only from workflows).
``mode``: ``"cloud"`` (default) is the platform's object store, reached over
the SDK API; ``"local"`` uses the local filesystem. In a script or notebook that is
``./<location>/<path>`` below the current directory, for CLI and notebook development.
Inside a platform worker (``BIFROST_LOCAL_FILES_ROOT`` set by the worker pool) it is
``<root>/<org id or global>/<location>/<path>``, a data folder of the execution's
organization that is never the workspace; there every folder is opened without
following links and hard-linked files are refused (see :mod:`bifrost._local_files`).

Paths are relative to the location's root and may not leave it: absolute
paths, ``..`` escapes and (in local mode) symlinks pointing outside raise
:class:`~bifrost.errors.UnsafePathError`, a :class:`~bifrost.errors.ValidationError`,
in both modes. For ``location="uploads"``
a leading ``uploads/`` is accepted and ignored, so the path a form upload field
gives (``uploads/<form_id>/<uuid>/<name>``, as in the spec's example) can be
passed as is. A missing file raises :class:`~bifrost.errors.NoSuchFileError`
(both a ``NotFoundError`` and a ``FileNotFoundError``) in both modes.
"""

from __future__ import annotations

import asyncio
import builtins
import os
import posixpath
from pathlib import Path

from bifrost import _client
from bifrost._context import current_context
from bifrost._local_files import ROOT_ENV, Folder
from bifrost.errors import NoSuchFileError, NotFoundError, UnsafePathError, ValidationError

LOCATIONS = ("workspace", "temp", "uploads")
MODES = ("cloud", "local")


def _check(path: str, location: str, mode: str) -> str:
    """Validate the arguments and return ``path`` relative to the location root."""
    if location not in LOCATIONS:
        raise ValidationError(f"location must be one of {', '.join(LOCATIONS)}, got {location!r}")
    if mode not in MODES:
        raise ValidationError(f"mode must be 'cloud' or 'local', got {mode!r}")
    if not isinstance(path, str):
        raise ValidationError(f"path must be a string, got {type(path).__name__}")
    if "\x00" in path:
        raise ValidationError("path contains a NUL byte")
    if os.path.isabs(path) or path.startswith(("/", "\\")):
        raise UnsafePathError(f"path must be relative to the {location} location, got an absolute path {path!r}")
    normalized = posixpath.normpath(path.replace("\\", "/")) if path else ""
    if normalized == ".." or normalized.startswith("../"):
        raise UnsafePathError(f"path {path!r} escapes the {location} location")
    if location == "uploads" and path.startswith("uploads/"):
        path = path[len("uploads/") :]
    return path


def _platform_folder(location: str) -> Folder | None:
    """The execution's data folder when running in a platform worker, else None (cwd mode)."""
    root = os.environ.get(ROOT_ENV)
    if not root:
        return None
    ctx = current_context()
    return Folder(root, (ctx.org_id if ctx else None) or "global", location)


def _local_path(path: str, location: str) -> Path:
    """Resolve ``path`` inside ``./<location>``, refusing escapes (``..``, absolute, symlinks)."""
    root = (Path.cwd() / location).resolve()
    target = (root / path).resolve()
    if target != root and root not in target.parents:
        raise UnsafePathError(f"path {path!r} escapes the {location} location")
    return target


def _normalized(relative: str) -> str:
    """``relative`` with ``\\`` as ``/`` and ``.``/``..`` folded (``_check`` refused escapes)."""
    return posixpath.normpath(relative.replace("\\", "/")) if relative else ""


def _local_file(path: str, location: str) -> Path:
    target = _local_path(path, location)
    if target == (Path.cwd() / location).resolve():
        raise ValidationError(f"path must name a file inside the {location} location, got {path!r}")
    return target


def _params(path: str, location: str) -> dict[str, str]:
    return {"path": path, "location": location}


def _read_only(location: str) -> None:
    if location == "uploads":
        raise ValidationError("the uploads location is read-only from workflows")


async def read_bytes(path: str, location: str = "workspace", mode: str = "cloud") -> bytes:
    """Read a file as bytes.

    Raises:
        NoSuchFileError: If there is no such file.
        ValidationError: If the path leaves the location or an argument is invalid.
    """
    relative = _check(path, location, mode)
    if mode == "local":
        if (folder := _platform_folder(location)) is not None:
            return await asyncio.to_thread(folder.read, path, _normalized(relative))
        target = _local_file(relative, location)
        try:
            return await asyncio.to_thread(target.read_bytes)
        except FileNotFoundError:
            raise NoSuchFileError(f"no file {path!r} in the {location} location") from None
        except IsADirectoryError:
            raise ValidationError(f"path {path!r} is a folder, not a file") from None
    try:
        response = await _client.request("GET", "/files/content", params=_params(relative, location))
    except NotFoundError as exc:
        raise NoSuchFileError(str(exc) or f"no file {path!r} in the {location} location") from None
    return response.content


async def read(path: str, location: str = "workspace", mode: str = "cloud") -> str:
    """Read a file as UTF-8 text."""
    return (await read_bytes(path, location, mode)).decode("utf-8")


async def write_bytes(path: str, content: bytes, location: str = "workspace", mode: str = "cloud") -> None:
    """Write a binary file (parent folders are created, an existing file is replaced)."""
    relative = _check(path, location, mode)
    _read_only(location)
    if mode == "local":
        if (folder := _platform_folder(location)) is not None:
            await asyncio.to_thread(folder.write, path, _normalized(relative), content)
            return
        target = _local_file(relative, location)

        def _write() -> None:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(content)

        try:
            await asyncio.to_thread(_write)
        except (IsADirectoryError, NotADirectoryError, FileExistsError) as exc:
            # Same as cloud mode: a folder is in the way, or a file where a folder is needed.
            raise ValidationError(f"cannot write {path!r} in the {location} location: {exc.strerror}") from None
        return
    await _client.request(
        "PUT",
        "/files/content",
        params=_params(relative, location),
        content=content,
        headers={"Content-Type": "application/octet-stream"},
    )


async def write(path: str, content: str, location: str = "workspace", mode: str = "cloud") -> None:
    """Write a text file (UTF-8)."""
    await write_bytes(path, content.encode("utf-8"), location, mode)


async def list(directory: str = "", location: str = "workspace", mode: str = "cloud") -> builtins.list[str]:
    """List a directory's entries by name, sorted; sub-folders end with ``/``; a missing folder is empty.

    Example: ``await files.list("data")`` -> ``["archive/", "config.json"]``.
    """
    relative = _check(directory, location, mode)
    if mode == "local":
        if (store := _platform_folder(location)) is not None:
            return await asyncio.to_thread(store.list, directory, _normalized(relative))
        folder = _local_path(relative, location)
        if not folder.is_dir():
            return []
        return sorted(p.name + ("/" if p.is_dir() else "") for p in folder.iterdir())
    return builtins.list(await _client.call("GET", "/files/list", params=_params(relative, location)))


async def delete(path: str, location: str = "workspace", mode: str = "cloud") -> None:
    """Delete a file.

    Raises:
        NoSuchFileError: If there is no such file.
    """
    relative = _check(path, location, mode)
    _read_only(location)
    if mode == "local":
        if (folder := _platform_folder(location)) is not None:
            await asyncio.to_thread(folder.delete, path, _normalized(relative))
            return
        target = _local_file(relative, location)
        try:
            await asyncio.to_thread(target.unlink)
        except FileNotFoundError:
            raise NoSuchFileError(f"no file {path!r} in the {location} location") from None
        except IsADirectoryError:
            raise ValidationError(f"path {path!r} is a folder, not a file") from None
        return
    try:
        await _client.call("DELETE", "/files/content", params=_params(relative, location))
    except NotFoundError as exc:
        raise NoSuchFileError(str(exc) or f"no file {path!r} in the {location} location") from None


async def exists(path: str, location: str = "workspace", mode: str = "cloud") -> bool:
    """Return True when ``path`` is a file or a folder (in cloud mode folders exist while they hold files)."""
    relative = _check(path, location, mode)
    if mode == "local":
        if (folder := _platform_folder(location)) is not None:
            return await asyncio.to_thread(folder.exists, path, _normalized(relative))
        return _local_path(relative, location).exists()
    body = await _client.call("GET", "/files/exists", params=_params(relative, location))
    return bool(body["exists"])
