"""How much of a run's log is stored: the per-run cap, its marker lines, and the size of one read.

A run may print without end (a loop, a chatty library, a notebook posting lines as fast as it can);
stored and read back in one piece, such a log filled the database and held the server for seconds.
So every run's stored log has a cap in lines and in bytes of message text
(``BIFROST_LOG_MAX_LINES`` / ``BIFROST_LOG_MAX_BYTES``). The first line past the cap is replaced by a
marker line (logger :data:`LIMIT_LOGGER`); later lines are not stored or streamed, only counted, and
a second marker line (logger :data:`DROPPED_LOGGER`) gives their number. Reads go page by page
(:class:`LogPage`), each bounded in lines and bytes (``BIFROST_LOG_PAGE_LINES`` /
``BIFROST_LOG_PAGE_BYTES``).
"""

from __future__ import annotations

import enum
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from app.services.errors import whole_number

LIMIT_LOGGER = "bifrost.log_limit"
"""Logger of the marker line written where a run's log reached its cap."""
DROPPED_LOGGER = "bifrost.log_dropped"
"""Logger of the marker line that counts the lines dropped after the cap."""
MARKER_LOGGERS = (LIMIT_LOGGER, DROPPED_LOGGER)
MARKER_LEVEL = "WARNING"

DEFAULT_MAX_LINES = 100_000
DEFAULT_MAX_BYTES = 32 * 1024**2
DEFAULT_PAGE_LINES = 1000
DEFAULT_PAGE_BYTES = 1024**2


def _size(num_bytes: int) -> str:
    for unit, scale in (("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024)):
        if num_bytes >= scale:
            return f"{num_bytes / scale:.1f}".removesuffix(".0") + f" {unit}"
    return f"{num_bytes} bytes"


def message_bytes(message: str) -> int:
    """Bytes ``message`` takes in UTF-8 (what the cap counts)."""
    return len(message.encode("utf-8", errors="replace"))


@dataclass(frozen=True)
class LogLimits:
    """The cap on one run's stored log.

    Args:
        max_lines: Lines stored per run (marker lines not counted).
        max_bytes: Bytes of message text stored per run.
    """

    max_lines: int = DEFAULT_MAX_LINES
    max_bytes: int = DEFAULT_MAX_BYTES

    def describe(self) -> str:
        """The cap in words, e.g. ``100,000 lines or 32 MiB per run``."""
        return f"{self.max_lines:,} lines or {_size(self.max_bytes)} per run"

    def limit_message(self) -> str:
        """Text of the marker line written where the log reached its cap."""
        return f"Log limit reached ({self.describe()}): later lines are not stored, only counted."

    def dropped_message(self, dropped: int) -> str:
        """Text of the marker line counting the lines dropped after the cap."""
        noun = "line" if dropped == 1 else "lines"
        return f"{dropped:,} log {noun} dropped after the log limit ({self.describe()})."


class Admission(enum.Enum):
    """What to do with one captured line."""

    STORE = "store"
    LIMIT = "limit"  # the first line past the cap: store the limit marker instead
    DROP = "drop"


@dataclass
class LogTally:
    """What one run's log holds so far, and how many lines it dropped after the cap."""

    lines: int = 0
    bytes: int = 0
    capped: bool = False
    dropped: int = 0

    def admit(self, size: int, limits: LogLimits) -> Admission:
        """Count one line of ``size`` bytes and say whether it is stored."""
        if not self.capped:
            if self.lines < limits.max_lines and self.bytes + size <= limits.max_bytes:
                self.lines += 1
                self.bytes += size
                return Admission.STORE
            self.capped = True
            self.dropped += 1
            return Admission.LIMIT
        self.dropped += 1
        return Admission.DROP


@dataclass
class LogPage:
    """One page of a stored log.

    Attributes:
        lines: Rows with ``seq, timestamp, level, logger, message``, in order.
        next_after: The cursor for the next page (the ``seq`` of the last line here) when more stored
            lines follow; None when this page ends what is stored now.
    """

    lines: list[Any] = field(default_factory=list)
    next_after: int | None = None


class TallyCache:
    """Tallies of logs written through the API (notebook runs), kept per process and bounded.

    The tally saves summing a run's stored bytes on every call; it is rebuilt from the database
    when missing (another process wrote the earlier lines, or this one restarted).
    """

    def __init__(self, max_entries: int = 10_000) -> None:
        self.max_entries = max_entries
        self._tallies: OrderedDict[str, LogTally] = OrderedDict()

    def get(self, execution_id: str) -> LogTally | None:
        """The tally of ``execution_id`` if this process keeps one."""
        tally = self._tallies.get(execution_id)
        if tally is not None:
            self._tallies.move_to_end(execution_id)
        return tally

    def put(self, execution_id: str, tally: LogTally) -> None:
        """Keep ``tally``; the least recently used one goes when full."""
        self._tallies[execution_id] = tally
        self._tallies.move_to_end(execution_id)
        while len(self._tallies) > self.max_entries:
            self._tallies.popitem(last=False)

    def forget(self, execution_id: str) -> None:
        """Drop the tally of a run that ended."""
        self._tallies.pop(execution_id, None)


external_tallies = TallyCache()
"""Tallies of notebook runs' logs in this process."""


def parse_dropped(message: str) -> int:
    """The count a :data:`DROPPED_LOGGER` marker line states (0 if unreadable)."""
    head = message.split(" ", 1)[0].replace(",", "")
    return whole_number(head) or 0
