"""File operations (``bifrost.files``).

``location``: ``"workspace"`` (default, persistent), ``"temp"`` (cleaned
periodically) or ``"uploads"`` (form uploads, read-only from workflows).
``mode``: ``"cloud"`` (default) is the platform's object store, reached over
the SDK API; ``"local"`` uses the local filesystem relative to the current
directory (``./<location>/<path>``), for CLI and notebook development.
"""

from __future__ import annotations

import asyncio
import builtins
import os
from pathlib import Path

from bifrost import _client
from bifrost.errors import ValidationError

LOCATIONS = ("workspace", "temp", "uploads")
MODES = ("cloud", "local")


def _check(path: str, location: str, mode: str) -> None:
    if location not in LOCATIONS:
        raise ValidationError(f"location must be one of {', '.join(LOCATIONS)}, got {location!r}")
    if mode not in MODES:
        raise ValidationError(f"mode must be 'cloud' or 'local', got {mode!r}")
    if "\x00" in path:
        raise ValidationError("path contains a NUL byte")


def _local_path(path: str, location: str) -> Path:
    """Resolve ``path`` inside ``./<location>``, refusing escapes (``..``, absolute, symlinks)."""
    root = (Path.cwd() / location).resolve()
    if os.path.isabs(path):
        raise ValidationError(f"path must be relative to the {location} location, got an absolute path {path!r}")
    target = (root / path).resolve()
    if target != root and root not in target.parents:
        raise ValidationError(f"path {path!r} escapes the {location} location")
    return target


def _params(path: str, location: str) -> dict[str, str]:
    return {"path": path, "location": location}


async def read_bytes(path: str, location: str = "workspace", mode: str = "cloud") -> bytes:
    """Read a file as bytes."""
    _check(path, location, mode)
    if mode == "local":
        return await asyncio.to_thread(_local_path(path, location).read_bytes)
    response = await _client.request("GET", "/files/content", params=_params(path, location))
    return response.content


async def read(path: str, location: str = "workspace", mode: str = "cloud") -> str:
    """Read a file as UTF-8 text."""
    return (await read_bytes(path, location, mode)).decode("utf-8")


async def write_bytes(path: str, content: bytes, location: str = "workspace", mode: str = "cloud") -> None:
    """Write a binary file (parent folders are created)."""
    _check(path, location, mode)
    if location == "uploads":
        raise ValidationError("the uploads location is read-only from workflows")
    if mode == "local":
        target = _local_path(path, location)

        def _write() -> None:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(content)

        await asyncio.to_thread(_write)
        return
    await _client.request(
        "PUT", "/files/content", params=_params(path, location), content=content,
        headers={"Content-Type": "application/octet-stream"},
    )


async def write(path: str, content: str, location: str = "workspace", mode: str = "cloud") -> None:
    """Write a text file (UTF-8)."""
    await write_bytes(path, content.encode("utf-8"), location, mode)


async def list(directory: str = "", location: str = "workspace", mode: str = "cloud") -> builtins.list[str]:
    """List a directory's entries (sub-folders end with ``/``)."""
    _check(directory, location, mode)
    if mode == "local":
        folder = _local_path(directory, location)
        if not folder.is_dir():
            return []
        return sorted(p.name + ("/" if p.is_dir() else "") for p in folder.iterdir())
    return builtins.list(await _client.call("GET", "/files/list", params=_params(directory, location)))


async def delete(path: str, location: str = "workspace", mode: str = "cloud") -> None:
    """Delete a file."""
    _check(path, location, mode)
    if location == "uploads":
        raise ValidationError("the uploads location is read-only from workflows")
    if mode == "local":
        await asyncio.to_thread(_local_path(path, location).unlink)
        return
    await _client.call("DELETE", "/files/content", params=_params(path, location))


async def exists(path: str, location: str = "workspace", mode: str = "cloud") -> bool:
    """Return True when the file exists."""
    _check(path, location, mode)
    if mode == "local":
        return _local_path(path, location).exists()
    body = await _client.call("GET", "/files/exists", params=_params(path, location))
    return bool(body["exists"])
