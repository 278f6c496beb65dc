"""The local-mode file store of a platform worker: ``<root>/<org id or global>/<location>/<path>``.

Inside a worker, ``files.*(..., mode="local")`` takes a path from workflow code, and workflow code
often takes it from whoever ran the workflow. So this store never lets a path leave its folder:
every folder is opened one at a time relative to the previous one with ``O_NOFOLLOW`` (a symbolic
link anywhere on the way is refused, not followed), and a file with more than one hard link is
refused (it may be another name of a workspace file or the database). Writes go to a fresh file
that is renamed into place, so a write never goes *through* an existing directory entry.

The root comes from ``BIFROST_LOCAL_FILES_ROOT``, set by the worker pool (never the workspace).
POSIX only (``dir_fd`` and ``O_NOFOLLOW``), like the platform.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import secrets
import stat
from collections.abc import Iterator

from bifrost.errors import NoSuchFileError, UnsafePathError, ValidationError

ROOT_ENV = "BIFROST_LOCAL_FILES_ROOT"
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_DIR_FLAGS = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | _NOFOLLOW | _CLOEXEC
_PARTIAL = ".bifrost-partial-"  # prefix of files being written; never listed
_ORG_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


class Folder:
    """One location of one organization below the local-files root.

    Args:
        root: The local-files root (trusted: set by the operator through the pool).
        org: The organization's id, or ``global``.
        location: ``workspace``, ``temp`` or ``uploads``.
    """

    def __init__(self, root: str, org: str, location: str) -> None:
        if not _ORG_ID.match(org):
            raise ValidationError(f"invalid organization id {org!r} for local files")
        self.root = root
        self.prefix = [org, location]
        self.location = location

    # ----- walking ----------------------------------------------------------------------------
    @contextlib.contextmanager
    def _folder(self, path: str, folders: list[str], *, create: bool) -> Iterator[int]:
        """Yield an fd of ``folders`` below the location, refusing links; FileNotFoundError if missing."""
        fd = os.open(self.root, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | _CLOEXEC)
        try:
            for index, name in enumerate([*self.prefix, *folders]):
                if create:
                    with contextlib.suppress(FileExistsError):
                        os.mkdir(name, 0o700, dir_fd=fd)
                try:
                    child = os.open(name, _DIR_FLAGS, dir_fd=fd)
                except OSError as exc:
                    if exc.errno not in (errno.ELOOP, errno.ENOTDIR):
                        raise
                    depth = index - len(self.prefix) + 1
                    shown = "/".join(folders[:depth]) if depth > 0 else self.location
                    if stat.S_ISLNK(os.stat(name, dir_fd=fd, follow_symlinks=False).st_mode):
                        raise UnsafePathError(
                            f"path {path!r} goes through a symbolic link ({shown}); links are not followed"
                        ) from None
                    raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), shown) from None
                os.close(fd)
                fd = child
            yield fd
        finally:
            os.close(fd)

    def _entry(self, fd: int, name: str, path: str) -> os.stat_result | None:
        """``lstat`` of ``name`` in ``fd``: None if missing; links refused."""
        try:
            st = os.stat(name, dir_fd=fd, follow_symlinks=False)
        except FileNotFoundError:
            return None
        if stat.S_ISLNK(st.st_mode):
            raise UnsafePathError(f"path {path!r} is a symbolic link; links are not followed")
        if stat.S_ISREG(st.st_mode) and st.st_nlink > 1:
            raise UnsafePathError(
                f"path {path!r} is a hard link ({st.st_nlink} names for one file); hard-linked files are refused"
            )
        return st

    @staticmethod
    def _split(relative: str) -> list[str]:
        return [part for part in relative.split("/") if part not in ("", ".")]

    def _file_parts(self, path: str, relative: str) -> tuple[list[str], str]:
        parts = self._split(relative)
        if not parts:
            raise ValidationError(f"path must name a file inside the {self.location} location, got {path!r}")
        return parts[:-1], parts[-1]

    # ----- operations -------------------------------------------------------------------------
    def read(self, path: str, relative: str) -> bytes:
        """Return the bytes of a regular file (NoSuchFileError, ValidationError for a folder)."""
        folders, name = self._file_parts(path, relative)
        try:
            with self._folder(path, folders, create=False) as fd:
                st = self._entry(fd, name, path)
                if st is None:
                    raise FileNotFoundError(path)
                if stat.S_ISDIR(st.st_mode):
                    raise ValidationError(f"path {path!r} is a folder, not a file")
                if not stat.S_ISREG(st.st_mode):
                    raise UnsafePathError(f"path {path!r} is not a regular file")
                # O_NONBLOCK: a FIFO swapped in after the check must not hang the worker.
                file_fd = os.open(name, os.O_RDONLY | _NOFOLLOW | os.O_NONBLOCK | _CLOEXEC, dir_fd=fd)
                with os.fdopen(file_fd, "rb") as handle:
                    opened = os.fstat(handle.fileno())
                    if (opened.st_dev, opened.st_ino) != (st.st_dev, st.st_ino) or opened.st_nlink > 1:
                        raise UnsafePathError(f"path {path!r} changed while it was opened; try again")
                    return handle.read()
        except (FileNotFoundError, NotADirectoryError):
            raise NoSuchFileError(f"no file {path!r} in the {self.location} location") from None
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise UnsafePathError(f"path {path!r} is a symbolic link; links are not followed") from None
            raise

    def write(self, path: str, relative: str, content: bytes) -> None:
        """Create or replace a file through a fresh file renamed into place."""
        folders, name = self._file_parts(path, relative)
        os.makedirs(self.root, mode=0o700, exist_ok=True)
        try:
            with self._folder(path, folders, create=True) as fd:
                st = self._entry(fd, name, path)
                if st is not None and stat.S_ISDIR(st.st_mode):
                    raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), name)
                partial = f"{_PARTIAL}{secrets.token_hex(8)}"
                flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW | _CLOEXEC
                with os.fdopen(os.open(partial, flags, 0o600, dir_fd=fd), "wb") as handle:
                    handle.write(content)
                try:
                    os.replace(partial, name, src_dir_fd=fd, dst_dir_fd=fd)
                except BaseException:
                    with contextlib.suppress(OSError):
                        os.unlink(partial, dir_fd=fd)
                    raise
        except (IsADirectoryError, NotADirectoryError, FileExistsError) as exc:
            # Same as cloud mode: a folder is in the way, or a file where a folder is needed.
            raise ValidationError(f"cannot write {path!r} in the {self.location} location: {exc.strerror}") from None

    def delete(self, path: str, relative: str) -> None:
        """Delete a file (NoSuchFileError when missing, ValidationError for a folder)."""
        folders, name = self._file_parts(path, relative)
        try:
            with self._folder(path, folders, create=False) as fd:
                st = self._entry(fd, name, path)
                if st is None:
                    raise FileNotFoundError(path)
                if stat.S_ISDIR(st.st_mode):
                    raise ValidationError(f"path {path!r} is a folder, not a file")
                os.unlink(name, dir_fd=fd)
        except (FileNotFoundError, NotADirectoryError):
            raise NoSuchFileError(f"no file {path!r} in the {self.location} location") from None

    def list(self, path: str, relative: str) -> list[str]:
        """Names in a folder, sorted, folders ending with ``/``; links are left out; missing is empty."""
        try:
            with self._folder(path, self._split(relative), create=False) as fd:
                names = []
                with os.scandir(fd) as entries:
                    for entry in entries:
                        if entry.is_symlink() or entry.name.startswith(_PARTIAL):
                            continue
                        names.append(entry.name + ("/" if entry.is_dir(follow_symlinks=False) else ""))
                return sorted(names)
        except (FileNotFoundError, NotADirectoryError):
            return []

    def exists(self, path: str, relative: str) -> bool:
        """True for a file or a folder; links are refused."""
        parts = self._split(relative)
        try:
            with self._folder(path, parts[:-1], create=False) as fd:
                return not parts or self._entry(fd, parts[-1], path) is not None
        except (FileNotFoundError, NotADirectoryError):
            return False
