"""API shapes of the files domain (TypedDicts: plain dicts at run time, documented in ``/schema``)."""

from __future__ import annotations

from typing import TypedDict


class StoredFileView(TypedDict):
    """A stored file: its path in its location, size in bytes and last write time (ISO 8601, UTC)."""

    path: str
    location: str
    size: int
    modified: str


class FileExists(TypedDict):
    """Whether a path is a file or a folder holding something."""

    exists: bool
