"""The workspace watcher calls back after .py files are added, edited or removed."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from app.engine.watcher import WorkspaceWatcher

pytestmark = pytest.mark.timeout(60)


class Changes:
    """``on_change`` callback counting calls, with a way to wait for the next one."""

    def __init__(self) -> None:
        self.calls = 0
        self._event = asyncio.Event()

    async def __call__(self) -> None:
        self.calls += 1
        self._event.set()

    async def next(self, timeout: float = 10.0) -> None:
        await asyncio.wait_for(self._event.wait(), timeout)
        self._event.clear()


@pytest.mark.parametrize("force_polling", [False, True], ids=["notify", "polling"])
async def test_added_edited_and_removed_python_files_trigger_a_reload(tmp_path: Path, force_polling: bool) -> None:
    changes = Changes()
    watcher = WorkspaceWatcher(tmp_path, changes, debounce_ms=50, force_polling=force_polling, poll_interval=0.05)
    await watcher.start()
    try:
        (tmp_path / "sub").mkdir()
        (tmp_path / "sub" / "flow.py").write_text("x = 1\n")
        await changes.next()
        (tmp_path / "sub" / "flow.py").write_text("x = 22\n")
        await changes.next()
        (tmp_path / "sub" / "flow.py").unlink()
        await changes.next()
    finally:
        await watcher.stop()
    assert changes.calls >= 3


async def test_other_files_and_bytecode_caches_are_ignored(tmp_path: Path) -> None:
    changes = Changes()
    watcher = WorkspaceWatcher(tmp_path, changes, debounce_ms=50)
    await watcher.start()
    try:
        (tmp_path / "notes.txt").write_text("hello")
        (tmp_path / "__pycache__").mkdir()
        (tmp_path / "__pycache__" / "flow.cpython-311.pyc").write_bytes(b"\0")
        (tmp_path / "data.json").write_text("{}")
        with pytest.raises(TimeoutError):
            await changes.next(timeout=0.6)
        # The watcher is alive: a Python file still counts.
        (tmp_path / "flow.py").write_text("x = 1\n")
        await changes.next()
    finally:
        await watcher.stop()
    assert changes.calls == 1


async def test_a_failing_callback_does_not_stop_watching(tmp_path: Path) -> None:
    seen = asyncio.Queue[int]()

    async def flaky() -> None:
        seen.put_nowait(1)
        raise RuntimeError("sync failed")

    watcher = WorkspaceWatcher(tmp_path, flaky, debounce_ms=50)
    await watcher.start()
    try:
        (tmp_path / "a.py").write_text("a = 1\n")
        await asyncio.wait_for(seen.get(), 10)
        (tmp_path / "b.py").write_text("b = 1\n")
        await asyncio.wait_for(seen.get(), 10)
    finally:
        await watcher.stop()
