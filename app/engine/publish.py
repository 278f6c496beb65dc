"""Publish a workflow's source file into the workspace: staged, scanned, moved into place, synced.

Used by ``POST /api/publish`` (``%bifrost publish`` in a notebook). Nothing reaches the workspace
before a scan has proved that the new file imports, defines the named workflow, clashes with no other
definition and breaks no other file: the scan runs in a one-shot worker process (the web process never
imports workspace code) on a staged copy of the workspace with the new file in place. Only then is the
file moved into the workspace atomically, the workers reloaded and the metadata synced, so the workflow
is runnable (form, endpoint, tool, API) as soon as the call returns.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
import tempfile
import weakref
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlmodel import col

from app.db import transaction
from app.engine.pool import scan_workspace
from app.models import Workflow, WorkspaceError
from app.services.actor import Actor
from app.services.audit import events as audit
from app.services.errors import ConflictError, InvalidInputError
from app.services.workflows.catalogue import workflow_detail
from app.services.workflows.views import WorkflowDetail

if TYPE_CHECKING:
    from app.engine.platform import Platform

MAX_SOURCE_BYTES = 1024 * 1024
MAX_PATH_LENGTH = 500
KINDS = ("workflow", "data_provider")
# Folders the workspace loader never imports from on their own (see workspace_loader.discover_files).
_SKIPPED_DIRS = {"__pycache__", "node_modules", "site-packages"}

_locks: weakref.WeakKeyDictionary[Platform, asyncio.Lock] = weakref.WeakKeyDictionary()


@dataclass
class PublishResult:
    """What a publish did.

    Attributes:
        name: The published workflow's name.
        kind: ``workflow`` or ``data_provider``.
        file: Path of the file in the workspace (relative, POSIX).
        replaced: True when the file existed and was overwritten (``force``).
        removed: Names the overwritten file defined that the new one does not.
        workflow: The workflow as ``GET /api/workflows/{name}`` returns it.
        sync: Counts of the workspace sync that followed.
    """

    name: str
    kind: str
    file: str
    replaced: bool
    removed: list[str] = field(default_factory=list)
    workflow: WorkflowDetail | dict[str, Any] = field(default_factory=dict)
    sync: dict[str, Any] = field(default_factory=dict)


def default_file_name(name: str) -> str:
    """``<name>.py`` made importable: other characters become ``_``, no leading ``_`` (the loader skips those)."""
    stem = re.sub(r"[^A-Za-z0-9_]", "_", name).lstrip("_") or "workflow"
    return f"{stem}.py"


def resolve_target(workspace: Path, file: str | None, name: str) -> tuple[Path, str]:
    """The absolute target path inside ``workspace`` and its relative POSIX form.

    Raises:
        InvalidInputError: Absolute paths, ``..``, names the loader would skip, or a path that
            leaves the workspace through a symbolic link.
    """
    raw = file if file else default_file_name(name)
    if not isinstance(raw, str) or "\x00" in raw or "\\" in raw or not _encodable(raw):
        raise InvalidInputError.field("file", "must be a relative path such as 'billing/invoices.py'")
    if len(raw) > MAX_PATH_LENGTH or any(len(part.encode()) > 255 for part in raw.split("/")):
        raise InvalidInputError.field("file", f"must be at most {MAX_PATH_LENGTH} characters, 255 per name")
    relative = PurePosixPath(raw)
    if relative.is_absolute() or not relative.parts:
        raise InvalidInputError.field("file", "must be a path relative to the workspace, not an absolute one")
    if any(part in ("..", ".") for part in relative.parts):
        raise InvalidInputError.field("file", "must stay inside the workspace ('..' is not allowed)")
    if relative.suffix != ".py":
        raise InvalidInputError.field("file", "must be a Python file ending in .py")
    for part in relative.parts:
        if part.startswith(("_", ".")) or part in _SKIPPED_DIRS:
            raise InvalidInputError.field(
                "file", f"{part!r}: names starting with '_' or '.' are not imported by the workspace loader"
            )
    if any("." in part for part in relative.with_suffix("").parts):
        raise InvalidInputError.field(
            "file", "file and folder names must not contain dots (they could not be imported)"
        )
    root = workspace.resolve()
    target = root.joinpath(*relative.parts)
    # Resolve what exists of the path: a symbolic link inside the workspace must not lead out of it.
    if target.is_symlink() or not target.resolve().is_relative_to(root):
        raise InvalidInputError.field("file", "must stay inside the workspace (symbolic links are not followed)")
    return target, relative.as_posix()


def _stage(workspace: Path, relative: str, source: str, readable_by_others: bool) -> Path:
    """A scratch copy of the workspace with ``source`` at ``relative``.

    Python files are copied (the scan imports them from the copy, so their paths stay inside it); other
    files are linked, so data a module reads at import time is there without copying it.
    """
    staging = Path(tempfile.mkdtemp(prefix="bifrost-publish-"))
    root = staging / "workspace"

    def copy(src: str, dst: str) -> None:
        if src.endswith(".py"):
            shutil.copy2(src, dst)
        else:
            os.symlink(os.path.abspath(src), dst)

    def ignore(directory: str, names: list[str]) -> set[str]:
        here = Path(directory)
        return {
            n
            for n in names
            if n in _SKIPPED_DIRS or n == ".git" or ((here / n).is_dir() and (here / n / "pyvenv.cfg").exists())
        }

    shutil.copytree(workspace, root, symlinks=True, ignore=ignore, copy_function=copy)
    target = root / relative
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.is_symlink():
        target.unlink()
    target.write_text(source, encoding="utf-8")
    if readable_by_others:  # workers (and so the scan) run as another OS user
        for path in (staging, *staging.rglob("*")):
            if not path.is_symlink():
                path.chmod(0o755 if path.is_dir() else 0o644)
    return staging


def _write_into_place(target: Path, source: str) -> None:
    """Write atomically: readers (the watcher, a worker starting) never see half a file."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(prefix=".publish-", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(source)
        os.chmod(temp, 0o644)
        os.replace(temp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp)
        raise


def _encodable(text: str) -> bool:
    """False for text UTF-8 cannot encode (lone surrogates): it cannot be a file name or file content."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _check_text(name: Any, source: Any, kind: Any) -> tuple[str, str, str]:
    if not isinstance(name, str) or not name.strip():
        raise InvalidInputError.field("name", "is required")
    if len(name) > 200 or not _encodable(name):
        raise InvalidInputError.field("name", "must be valid text of at most 200 characters")
    if not isinstance(source, str) or not source.strip():
        raise InvalidInputError.field("source", "is required: the Python source of the module")
    if not _encodable(source):
        raise InvalidInputError.field("source", "must be valid Unicode text")
    if len(source.encode("utf-8")) > MAX_SOURCE_BYTES:
        raise InvalidInputError.field("source", f"must be at most {MAX_SOURCE_BYTES // 1024} KiB")
    if kind not in KINDS:
        raise InvalidInputError.field("kind", f"must be one of {', '.join(KINDS)}")
    return name.strip(), source, kind


async def publish(
    platform: Platform,
    actor: Actor,
    name: Any,
    source: Any,
    *,
    file: str | None = None,
    kind: Any = "workflow",
    force: bool = False,
) -> PublishResult:
    """Write ``source`` into the workspace as the module that defines ``name``, then sync.

    Args:
        platform: The running platform (its workspace, pool and database).
        actor: Must be a platform admin: workspace code runs for every organization.
        name: The workflow (or data provider) the module must define.
        source: Python source of the whole module.
        file: Target path relative to the workspace (default ``<name>.py``).
        kind: ``workflow`` or ``data_provider``.
        force: Replace an existing file, or a workflow of the same name.

    Returns:
        What was published.

    Raises:
        PermissionDeniedError: Not a platform admin.
        InvalidInputError: Bad name/path/source, the module does not import or does not define
            ``name``, or it would break other workspace files (field ``source``).
        ConflictError: The name or file exists and ``force`` is not set, or another file defines
            the same name.
    """
    actor.require_admin("publish workflows to the workspace")
    name, source, kind = _check_text(name, source, kind)
    workspace = platform.settings.workspace.resolve()
    target, relative = resolve_target(workspace, file, name)
    label = "data provider" if kind == "data_provider" else "workflow"
    lock = _locks.setdefault(platform, asyncio.Lock())
    async with lock:  # one publish at a time: each one's checks hold until its file is in place
        async with transaction(platform.sessions) as session:
            rows = list((await session.execute(select(Workflow).where(col(Workflow.is_active).is_(True)))).scalars())
            known_errors = {(e.file, e.error) for e in (await session.execute(select(WorkspaceError))).scalars()}
        existing = next((w for w in rows if w.kind == kind and w.name == name), None)
        replaced = target.exists()
        if not force:
            if existing is not None:
                raise ConflictError(
                    f"A {label} named {name!r} already exists (in {existing.source_file}); "
                    "publish with force to replace it."
                )
            if replaced:
                raise ConflictError(f"{relative} already exists in the workspace; publish with force to replace it.")
        if existing is not None and existing.source_file not in (None, relative):
            # Overwriting another file would leave two definitions, and neither would run.
            raise ConflictError(
                f"The {label} {name!r} is defined in {existing.source_file}: publish to that file "
                f"(file={existing.source_file!r}) or choose another name."
            )

        staging = await asyncio.to_thread(_stage, workspace, relative, source, platform.pool.user is not None)
        try:
            scan = await scan_workspace(staging / "workspace", env=platform.pool._extra_env, user=platform.pool.user)
        finally:
            await asyncio.to_thread(shutil.rmtree, staging, True)

        own_errors = [e for e in scan.errors if e.get("file") == relative or relative in (e.get("files") or [])]
        for error in own_errors:
            if error.get("files"):  # a duplicate name
                raise ConflictError(str(error.get("error")))
            raise InvalidInputError(
                f"The module does not import: {error.get('error')}",
                [{"field": "source", "message": str(error.get("error")), "traceback": error.get("traceback")}],
            )
        defined = [m for m in scan.definitions if m.get("source_file") == relative]
        if not any(m["kind"] == kind and m["name"] == name for m in defined):
            found = ", ".join(sorted(m["name"] for m in defined)) or "nothing"
            raise InvalidInputError.field(
                "source", f"the module does not define a {label} named {name!r} (it defines {found})"
            )
        broken = [e for e in scan.errors if (e.get("file"), e.get("error")) not in known_errors]
        if broken:
            detail = "; ".join(f"{e.get('file')}: {e.get('error')}" for e in broken)
            raise InvalidInputError.field("source", f"publishing it would break other workspace files: {detail}")
        new_names = {m["name"] for m in defined}
        removed = sorted(w.name for w in rows if w.source_file == relative and w.name not in new_names)

        await asyncio.to_thread(_write_into_place, target, source)
        platform.pool.reload()
        counts = await platform.sync_workspace()

    async with transaction(platform.sessions) as session:
        row = (
            (
                await session.execute(
                    select(Workflow).where(
                        col(Workflow.kind) == kind, col(Workflow.name) == name, col(Workflow.is_active).is_(True)
                    )
                )
            )
            .scalars()
            .first()
        )
        published: WorkflowDetail | dict[str, Any] = workflow_detail(row) if row is not None else {}
        details = {"name": name, "kind": kind, "file": relative, "replaced": replaced, "removed": removed}
        await audit.record(session, actor, audit.WORKSPACE_PUBLISHED, kind, row.id if row else None, None, details)
    return PublishResult(
        name=name, kind=kind, file=relative, replaced=replaced, removed=removed, workflow=published, sync=counts
    )
