"""Watch the workspace folder and report when its Python files change.

Uses ``watchfiles`` (inotify/FSEvents, debounced); falls back to polling
modification times when it cannot be used (not installed, inotify limits).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

_IGNORED_DIRS = frozenset(
    {"__pycache__", ".git", ".hg", ".svn", ".venv", "node_modules", ".mypy_cache", ".pytest_cache"}
)


def _relevant(path: str, deleted: bool) -> bool:
    """True for ``.py`` files, and for folders (a moved or deleted folder takes its files along)."""
    parts = Path(path).parts
    if any(part in _IGNORED_DIRS for part in parts):
        return False
    if path.endswith(".py"):
        return True
    return os.path.isdir(path) or (deleted and not Path(path).suffix)


def snapshot(root: Path) -> dict[str, tuple[int, int]]:
    """Return ``{path: (mtime_ns, size)}`` of the ``.py`` files under ``root``."""
    found: dict[str, tuple[int, int]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if d not in _IGNORED_DIRS]
        for name in filenames:
            if name.endswith(".py"):
                path = os.path.join(dirpath, name)
                with contextlib.suppress(OSError):
                    stat = os.stat(path)
                    found[path] = (stat.st_mtime_ns, stat.st_size)
    return found


class WorkspaceWatcher:
    """Calls ``on_change`` after ``.py`` files under ``path`` are added, edited or removed.

    Bursts of changes (an editor saving several files, a ``git checkout``)
    result in one call after ``debounce_ms`` of quiet. Changes made while
    ``on_change`` runs lead to another call afterwards.

    Args:
        path: The workspace folder.
        on_change: Awaited after each burst of changes; its errors are logged.
        debounce_ms: Quiet time that ends a burst.
        force_polling: Poll modification times instead of using OS notifications.
        poll_interval: Seconds between polls when polling.
    """

    def __init__(
        self,
        path: Path | str,
        on_change: Callable[[], Awaitable[None]],
        *,
        debounce_ms: int = 300,
        force_polling: bool = False,
        poll_interval: float = 1.0,
    ) -> None:
        self.path = Path(path).resolve()
        self.on_change = on_change
        self.debounce_ms = debounce_ms
        self.force_polling = force_polling
        self.poll_interval = poll_interval
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Start watching; changes made after this returns are noticed."""
        if self._task is not None:
            return
        self._stop.clear()
        self._task = asyncio.create_task(self._run(), name="bifrost-workspace-watcher")
        # Let the task set up its OS watch (or take its first snapshot) before returning.
        for _ in range(3):
            await asyncio.sleep(0)

    async def stop(self) -> None:
        """Stop watching and wait for a running ``on_change`` call to finish."""
        if self._task is None:
            return
        self._stop.set()
        task, self._task = self._task, None
        try:
            await asyncio.wait_for(task, timeout=5.0)
        except TimeoutError:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _run(self) -> None:
        if not self.force_polling:
            try:
                await self._watch_notify()
                return
            except ImportError:
                log.info("watchfiles is not installed; polling %s for changes", self.path)
            except (OSError, RuntimeError) as exc:
                log.warning("cannot watch %s with OS notifications (%s); polling instead", self.path, exc)
        await self._watch_polling()

    async def _watch_notify(self) -> None:
        from watchfiles import Change, awatch

        def keep(change: Change, path: str) -> bool:
            return _relevant(path, change == Change.deleted)

        async for _changes in awatch(
            self.path, watch_filter=keep, debounce=self.debounce_ms, step=50, stop_event=self._stop, rust_timeout=1000
        ):
            await self._notify()

    async def _watch_polling(self) -> None:
        # Synchronous on purpose: the baseline must exist before start() returns.
        previous = snapshot(self.path)
        while not self._stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), self.poll_interval)
            if self._stop.is_set():
                return
            current = await asyncio.to_thread(snapshot, self.path)
            if current != previous:
                previous = current
                await self._notify()

    async def _notify(self) -> None:
        try:
            await self.on_change()
        except Exception:
            log.exception("workspace change handler failed")

    def __repr__(self) -> str:
        state: Any = "running" if self._task is not None else "stopped"
        return f"<WorkspaceWatcher {self.path} {state}>"
