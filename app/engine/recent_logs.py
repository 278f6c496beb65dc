"""Log lines other nodes published lately, kept by a server so a viewer joining a run late misses none.

A worker node stores a run's lines every ``BIFROST_LOG_FLUSH_SECONDS`` (1 s) and at its end, and publishes
each line on the bus as it comes. A viewer on another server reads the stored lines and then gets the
lines published after it subscribed: the lines in between (published, not stored yet) would be missing.
Every server's hub receives every message of the shared channel, so it keeps the lines of runs that have
not ended (raw, undecoded: a server pays a substring test per line, and decodes only when a viewer
joins), and the live views merge them by ``seq`` (:func:`app.engine.live_lines.unstored_lines`).

Bounded four ways: lines and characters per run, characters in all (the oldest run's oldest lines go
first), and age (a line stored by then has long been on disk). A run's lines are dropped at its ``done`` event.
"""

from __future__ import annotations

import json
import logging
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from datetime import datetime
from typing import Any

log = logging.getLogger(__name__)

RUN_LINES = 5_000  # per run: a node flushes every second, so this is 5,000 lines a second before a gap
RUN_CHARACTERS = 4 * 1024 * 1024  # per run, of the events' JSON: one noisy run cannot push out the others
TOTAL_CHARACTERS = 16 * 1024 * 1024  # in all runs
KEEP_SECONDS = 30.0  # a line older than this was stored long ago (or its node died: the sweep ends the run)
_EXPIRE_EVERY = 1.0

# Substrings of json.dumps' default output (", " and ": " separators), for the hub to sort the events it
# receives without decoding them: inside a JSON string a quote is escaped, so a message cannot contain
# them unescaped. A false match costs little: lines() checks what it decodes, an end drops kept lines.
LOG_MARK = '"type": "log"'
DONE_MARK = '"done": true'


def is_run_key(key: str) -> bool:
    """Whether a bus key is an execution's (not ``turn:<id>``, ``#cache``...)."""
    return bool(key) and key[0] != "#" and ":" not in key


class _Run:
    """One run's kept lines, oldest first, and their characters."""

    __slots__ = ("characters", "lines")

    def __init__(self) -> None:
        self.lines: deque[tuple[float, str]] = deque()
        self.characters = 0

    def pop_oldest(self) -> int:
        """Drop the oldest line; returns its characters."""
        size = len(self.lines.popleft()[1])
        self.characters -= size
        return size


class RecentLogs:
    """The recent log events of runs that have not ended, per run, as raw JSON.

    Args:
        run_lines: Most lines kept per run (the newest).
        run_characters: Most characters of JSON kept per run (the newest lines), so that one run printing
            huge lines cannot push the other runs' lines out.
        total_characters: Most characters of JSON kept in all (the oldest run's oldest lines go first).
        keep_seconds: Lines older than this are dropped.
        clock: Monotonic seconds (tests pass their own).
    """

    def __init__(
        self,
        run_lines: int = RUN_LINES,
        total_characters: int = TOTAL_CHARACTERS,
        keep_seconds: float = KEEP_SECONDS,
        clock: Callable[[], float] = time.monotonic,
        run_characters: int = RUN_CHARACTERS,
    ) -> None:
        self.run_lines = run_lines
        self.run_characters = run_characters
        self.total_characters = total_characters
        self.keep_seconds = keep_seconds
        self._clock = clock
        # Runs in the order their first kept line came: the oldest run sheds first when over the budget.
        self._runs: OrderedDict[str, _Run] = OrderedDict()
        self.characters = 0
        self._expired_at = 0.0

    def __len__(self) -> int:
        return sum(len(run.lines) for run in self._runs.values())

    def add(self, key: str, data: str) -> None:
        """Keep log event ``data`` of run ``key``."""
        now = self._clock()
        run = self._runs.get(key)
        if run is None:
            run = self._runs[key] = _Run()
        run.lines.append((now, data))
        run.characters += len(data)
        self.characters += len(data)
        while run.lines and (len(run.lines) > self.run_lines or run.characters > self.run_characters):
            self.characters -= run.pop_oldest()
        if not run.lines:
            del self._runs[key]  # one line larger than a run may keep
        while self.characters > self.total_characters and self._runs:
            self._shed_oldest()
        if now - self._expired_at >= _EXPIRE_EVERY:
            self._expire(now)

    def end(self, key: str) -> None:
        """Run ``key`` ended (every line is stored before its end is published): drop its lines."""
        run = self._runs.pop(key, None)
        if run is not None:
            self.characters -= run.characters

    def lines(self, key: str) -> list[dict[str, Any]]:
        """The kept lines of run ``key`` as the dispatcher buffers them (``timestamp`` a datetime), by seq."""
        self._expire(self._clock())
        run = self._runs.get(key)
        rows: dict[int, dict[str, Any]] = {}
        for _, data in run.lines if run is not None else ():
            row = _row(key, data)
            if row is not None:
                rows[row["seq"]] = row
        return [rows[seq] for seq in sorted(rows)]

    def _shed_oldest(self) -> None:
        key, run = next(iter(self._runs.items()))
        self.characters -= run.pop_oldest()
        if not run.lines:
            del self._runs[key]

    def _expire(self, now: float) -> None:
        self._expired_at = now
        oldest = now - self.keep_seconds
        for key in list(self._runs):
            run = self._runs[key]
            while run.lines and run.lines[0][0] < oldest:
                self.characters -= run.pop_oldest()
            if not run.lines:
                del self._runs[key]


def _row(key: str, data: str) -> dict[str, Any] | None:
    """A log event's JSON as a buffered row, or None when it is not a well-formed log line."""
    try:
        event = json.loads(data)
        if event.get("type") != "log":
            return None
        seq, message = event["seq"], event["message"]
        if not isinstance(seq, int) or isinstance(seq, bool) or seq < 0 or not isinstance(message, str):
            return None
        row = {k: v for k, v in event.items() if k != "type"}
        row["execution_id"] = key
        row["timestamp"] = datetime.fromisoformat(str(event["timestamp"]))
        return row
    except (ValueError, KeyError, TypeError, AttributeError):
        log.warning("events: a kept log line of %s is not well formed; skipped", key)
        return None
