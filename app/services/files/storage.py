"""The object store behind ``bifrost.files`` (cloud mode): a small protocol and a local-directory backend.

Keys are ``/``-separated relative names (``<org>/<location>/<path>``); the
store knows nothing about organizations or locations, :mod:`app.services.files.service`
builds and checks the keys. Folders are implicit, as in S3: a folder exists
while it holds something, and deleting its last file removes it.

An S3-compatible store can implement :class:`ObjectStore` later: every method
maps onto one or two S3 calls (GetObject, PutObject/multipart upload,
ListObjectsV2 with a delimiter, DeleteObject, HeadObject, AbortMultipartUpload).
"""

from __future__ import annotations

import asyncio
import builtins
import errno
import os
import stat
import uuid
from collections.abc import AsyncIterable, AsyncIterator, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

CHUNK_SIZE = 1024 * 1024
STAGING = ".staging"  # below the root, beside the organization folders; never a key's first segment


# ----- errors (the file service turns them into domain errors naming the caller's path) ---------------
class StoreError(Exception):
    """Base class of object store errors."""


class ObjectNotFoundError(StoreError):
    """No object under this key."""


class NotAnObjectError(StoreError):
    """The key names a folder, not an object."""


class KeyConflictError(StoreError):
    """A write would need a folder where an object is, or replace a folder."""


class UnsafeKeyError(StoreError):
    """The key is malformed or reaches through a link the store refuses to follow."""


class ObjectTooLargeError(StoreError):
    """A write exceeded its size limit (nothing was stored)."""


@dataclass(frozen=True)
class ObjectInfo:
    """Metadata of one stored object.

    Attributes:
        key: The object's key.
        size: Size in bytes.
        modified: Last write time (UTC).
    """

    key: str
    size: int
    modified: datetime


class ObjectStore(Protocol):
    """What the platform needs from an object store; kept small so an S3 backend is easy."""

    async def open_read(self, key: str) -> tuple[ObjectInfo, AsyncIterator[bytes]]:
        """Open an object for streaming; raises ObjectNotFoundError/NotAnObjectError before any byte."""
        ...

    async def write(self, key: str, chunks: AsyncIterable[bytes], max_bytes: int | None = None) -> ObjectInfo:
        """Store ``chunks`` under ``key`` atomically (readers see the old object or the whole new one)."""
        ...

    async def list(self, prefix: str) -> builtins.list[str]:
        """Names directly below the folder ``prefix`` (folders end with ``/``), sorted; [] when none."""
        ...

    async def walk(self, prefix: str) -> builtins.list[ObjectInfo]:
        """Every object below the folder ``prefix``, at any depth."""
        ...

    async def delete(self, key: str) -> None:
        """Delete one object; raises ObjectNotFoundError when there is none."""
        ...

    async def exists(self, key: str) -> bool:
        """True when ``key`` is an object or a non-empty folder."""
        ...

    async def stat(self, key: str) -> ObjectInfo | None:
        """The object's metadata, or None when there is no object under ``key``."""
        ...

    async def purge_incomplete(self, older_than: datetime) -> int:
        """Drop writes abandoned before ``older_than`` (a crash mid-upload); returns how many."""
        ...


def split_key(key: str) -> list[str]:
    """The segments of a key; raises UnsafeKeyError for anything but plain relative names.

    The file service validates paths first with messages for the caller; this is
    the store's own line of defence, so that no caller can reach outside the root.
    """
    if not key:
        return []
    parts = key.split("/")
    for part in parts:
        if part in ("", ".", "..") or "\x00" in part or "\\" in part:
            raise UnsafeKeyError(f"invalid key {key!r}")
    if parts[0] == STAGING:
        raise UnsafeKeyError(f"invalid key {key!r}")
    return parts


# ----- local directory backend ------------------------------------------------------------------------
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


class LocalDirectoryStore:
    """Objects as files below ``root`` (the embedded default: ``<BIFROST_HOME>/files``).

    Every path is walked one segment at a time with ``openat``-style calls and
    ``O_NOFOLLOW``: a symbolic link anywhere inside the store (say one planted by
    workflow code running as the server's user) is refused, never followed, so a
    key cannot leave the root or reach another organization's folder. Writes go
    to ``<root>/.staging`` first and are renamed into place once complete.

    Args:
        root: The folder holding the objects (created with mode 0700).
        chunk_size: Bytes per read when streaming an object out.
    """

    def __init__(self, root: Path, chunk_size: int = CHUNK_SIZE) -> None:
        self.root = root.resolve()  # the root itself may be a link (say to another disk); nothing below it
        self.chunk_size = chunk_size
        (self.root / STAGING).mkdir(parents=True, exist_ok=True, mode=0o700)

    # -- low-level helpers (blocking; called in a thread) --
    @contextmanager
    def _dir(self, parts: builtins.list[str], *, create: bool = False) -> Iterator[builtins.list[int]]:
        """Open the folder chain root/parts[0]/... without following links; yields every fd, root first."""
        fds = [os.open(self.root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)]
        try:
            for name in parts:
                if create:
                    with suppress(FileExistsError):
                        os.mkdir(name, 0o700, dir_fd=fds[-1])
                try:
                    fds.append(os.open(name, _DIR_FLAGS, dir_fd=fds[-1]))
                except FileNotFoundError:
                    raise ObjectNotFoundError(name) from None
                except OSError as exc:
                    if exc.errno not in (errno.ENOTDIR, errno.ELOOP):
                        raise
                    if stat.S_ISLNK(os.stat(name, dir_fd=fds[-1], follow_symlinks=False).st_mode):
                        raise UnsafeKeyError(f"{name!r} is a symbolic link") from None
                    raise KeyConflictError(f"{name!r} is a file, not a folder") from None
            yield fds
        finally:
            for fd in fds:
                os.close(fd)

    def _lstat(self, dir_fd: int, name: str) -> os.stat_result | None:
        try:
            return os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
        except FileNotFoundError:
            return None

    def _open_file(self, key: str) -> tuple[ObjectInfo, int]:
        parts = split_key(key)
        if not parts:
            raise NotAnObjectError(key)
        with self._dir(parts[:-1]) as fds:
            try:
                # O_NONBLOCK: a FIFO planted in the store must not hang the open (regular files ignore it).
                flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
                fd = os.open(parts[-1], flags, dir_fd=fds[-1])
            except FileNotFoundError:
                raise ObjectNotFoundError(key) from None
            except OSError as exc:
                if exc.errno == errno.ELOOP:
                    raise UnsafeKeyError(f"{parts[-1]!r} is a symbolic link") from None
                raise
        info = os.fstat(fd)
        problem: StoreError | None = None
        if stat.S_ISDIR(info.st_mode):
            problem = NotAnObjectError(key)
        elif not stat.S_ISREG(info.st_mode):
            problem = UnsafeKeyError(f"{parts[-1]!r} is not a regular file")
        elif info.st_nlink > 1:
            # The store never makes hard links: one planted from outside could expose any file of the user.
            problem = UnsafeKeyError(f"{parts[-1]!r} has several hard links")
        if problem:
            os.close(fd)
            raise problem
        return ObjectInfo(key, info.st_size, datetime.fromtimestamp(info.st_mtime, UTC)), fd

    # -- ObjectStore --
    async def open_read(self, key: str) -> tuple[ObjectInfo, AsyncIterator[bytes]]:
        """Open an object for streaming in chunks of ``chunk_size`` bytes.

        Raises:
            ObjectNotFoundError: No such object.
            NotAnObjectError: The key names a folder.
            UnsafeKeyError: A link or odd file is in the way.
        """
        info, fd = await asyncio.to_thread(self._open_file, key)
        # A file object closes the descriptor even if the response is abandoned and the generator never finishes.
        handle = os.fdopen(fd, "rb", buffering=0)

        async def chunks() -> AsyncIterator[bytes]:
            with handle:
                while chunk := await asyncio.to_thread(handle.read, self.chunk_size):
                    yield chunk

        return info, chunks()

    async def write(self, key: str, chunks: AsyncIterable[bytes], max_bytes: int | None = None) -> ObjectInfo:
        """Stream ``chunks`` into a staging file, then rename it over ``key`` (folders are created).

        Raises:
            ObjectTooLargeError: More than ``max_bytes`` arrived (nothing is stored).
            KeyConflictError: A folder is in the way, or a file where a folder is needed.
            UnsafeKeyError: A link is in the way.
        """
        parts = split_key(key)
        if not parts:
            raise NotAnObjectError(key)
        staging_name = f"{uuid.uuid4().hex}.part"
        fd = await asyncio.to_thread(self._create_staging, staging_name)
        try:
            size = await self._fill(fd, chunks, max_bytes)
            await asyncio.to_thread(os.fsync, fd)  # the bytes are on disk before the name points at them
            os.close(fd)
            fd = -1
            await asyncio.to_thread(self._move_into_place, staging_name, parts)
        except BaseException:
            if fd >= 0:
                os.close(fd)
            await asyncio.to_thread(self._drop_staging, staging_name)
            raise
        stored = await self.stat(key)
        return stored or ObjectInfo(key, size, datetime.now(UTC))

    def _create_staging(self, name: str) -> int:
        with self._dir([STAGING], create=True) as fds:
            flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
            return os.open(name, flags, 0o600, dir_fd=fds[-1])

    def _drop_staging(self, name: str) -> None:
        with suppress(FileNotFoundError, ObjectNotFoundError), self._dir([STAGING]) as fds:
            os.unlink(name, dir_fd=fds[-1])

    async def _fill(self, fd: int, chunks: AsyncIterable[bytes], max_bytes: int | None) -> int:
        """Copy ``chunks`` to ``fd`` in writes of about ``CHUNK_SIZE`` (fewer thread hops than per chunk)."""
        size = 0
        pending: builtins.list[bytes] = []
        pending_size = 0
        async for chunk in chunks:
            size += len(chunk)
            if max_bytes is not None and size > max_bytes:
                raise ObjectTooLargeError(f"more than {max_bytes} bytes")
            pending.append(chunk)
            pending_size += len(chunk)
            if pending_size >= CHUNK_SIZE:
                await asyncio.to_thread(_write_all, fd, b"".join(pending))
                pending, pending_size = [], 0
        if pending:
            await asyncio.to_thread(_write_all, fd, b"".join(pending))
        return size

    def _move_into_place(self, staging_name: str, parts: builtins.list[str]) -> None:
        # A concurrent delete may prune an emptied folder between opening it and renaming into it: retry.
        for attempt in range(5):
            try:
                with self._dir(parts[:-1], create=True) as fds, self._dir([STAGING]) as staging:
                    existing = self._lstat(fds[-1], parts[-1])
                    if existing is not None and stat.S_ISLNK(existing.st_mode):
                        raise UnsafeKeyError(f"{parts[-1]!r} is a symbolic link")
                    if existing is not None and stat.S_ISDIR(existing.st_mode):
                        raise KeyConflictError(f"{parts[-1]!r} is a folder")
                    os.rename(staging_name, parts[-1], src_dir_fd=staging[-1], dst_dir_fd=fds[-1])
                    return
            except (FileNotFoundError, ObjectNotFoundError):
                if attempt == 4:
                    raise

    async def list(self, prefix: str) -> builtins.list[str]:
        """Names directly below ``prefix`` (folders end with ``/``); links and special files are skipped."""
        return await asyncio.to_thread(self._list, split_key(prefix))

    def _list(self, parts: builtins.list[str]) -> builtins.list[str]:
        try:
            with self._dir(parts) as fds, os.scandir(fds[-1]) as entries:
                names = []
                for entry in entries:
                    if entry.is_dir(follow_symlinks=False):
                        if parts or entry.name != STAGING:
                            names.append(entry.name + "/")
                    elif entry.is_file(follow_symlinks=False):
                        names.append(entry.name)
                return sorted(names)
        except (ObjectNotFoundError, KeyConflictError):
            return []

    async def walk(self, prefix: str) -> builtins.list[ObjectInfo]:
        """Every regular file below ``prefix`` (links are not followed)."""
        return await asyncio.to_thread(self._walk, split_key(prefix))

    def _walk(self, parts: builtins.list[str]) -> builtins.list[ObjectInfo]:
        found: builtins.list[ObjectInfo] = []
        try:
            with self._dir(parts) as fds:
                for folder, _dirs, names, folder_fd in os.fwalk(".", dir_fd=fds[-1], follow_symlinks=False):
                    relative = [*parts, *Path(folder).parts]  # Path("./a/b").parts == ("a", "b")
                    for name in names:
                        info = self._lstat(folder_fd, name)
                        if info is not None and stat.S_ISREG(info.st_mode):
                            key = "/".join([*relative, name])
                            found.append(ObjectInfo(key, info.st_size, datetime.fromtimestamp(info.st_mtime, UTC)))
        except (ObjectNotFoundError, KeyConflictError):
            return []
        return found

    async def delete(self, key: str) -> None:
        """Delete an object, then the folders it leaves empty.

        Raises:
            ObjectNotFoundError: No such object.
            NotAnObjectError: The key names a folder.
            UnsafeKeyError: A link is in the way.
        """
        await asyncio.to_thread(self._delete, key)

    def _delete(self, key: str) -> None:
        parts = split_key(key)
        if not parts:
            raise NotAnObjectError(key)
        with self._dir(parts[:-1]) as fds:
            existing = self._lstat(fds[-1], parts[-1])
            if existing is None:
                raise ObjectNotFoundError(key)
            if stat.S_ISDIR(existing.st_mode):
                raise NotAnObjectError(key)
            if stat.S_ISLNK(existing.st_mode):
                raise UnsafeKeyError(f"{parts[-1]!r} is a symbolic link")
            try:
                os.unlink(parts[-1], dir_fd=fds[-1])
            except FileNotFoundError:
                raise ObjectNotFoundError(key) from None
            # Folders are implicit: remove the ones this delete emptied (rmdir refuses non-empty ones).
            for depth in range(len(parts) - 1, 0, -1):
                try:
                    os.rmdir(parts[depth - 1], dir_fd=fds[depth - 1])
                except OSError:
                    break

    async def exists(self, key: str) -> bool:
        """True for an object or a folder (folders exist only while they hold something)."""
        return await asyncio.to_thread(self._exists, split_key(key))

    def _exists(self, parts: builtins.list[str]) -> bool:
        if not parts:
            return True
        try:
            with self._dir(parts[:-1]) as fds:
                found = self._lstat(fds[-1], parts[-1])
        except (ObjectNotFoundError, KeyConflictError):
            return False
        if found is not None and stat.S_ISLNK(found.st_mode):
            raise UnsafeKeyError(f"{parts[-1]!r} is a symbolic link")
        return found is not None and (stat.S_ISREG(found.st_mode) or stat.S_ISDIR(found.st_mode))

    async def stat(self, key: str) -> ObjectInfo | None:
        """The object's size and write time, or None when there is no object (a folder is not one)."""
        return await asyncio.to_thread(self._stat, key)

    def _stat(self, key: str) -> ObjectInfo | None:
        parts = split_key(key)
        if not parts:
            return None
        try:
            with self._dir(parts[:-1]) as fds:
                found = self._lstat(fds[-1], parts[-1])
        except (ObjectNotFoundError, KeyConflictError):
            return None
        if found is None or not stat.S_ISREG(found.st_mode):
            return None
        return ObjectInfo(key, found.st_size, datetime.fromtimestamp(found.st_mtime, UTC))

    async def purge_incomplete(self, older_than: datetime) -> int:
        """Remove staging files (writes cut off by a crash) last touched before ``older_than``."""
        return await asyncio.to_thread(self._purge_incomplete, older_than.timestamp())

    def _purge_incomplete(self, cutoff: float) -> int:
        removed = 0
        with self._dir([STAGING], create=True) as fds, os.scandir(fds[-1]) as entries:
            for entry in entries:
                if entry.is_file(follow_symlinks=False) and entry.stat(follow_symlinks=False).st_mtime < cutoff:
                    with suppress(FileNotFoundError):
                        os.unlink(entry.name, dir_fd=fds[-1])
                        removed += 1
        return removed


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]
