"""Opt-in timestamps of a queued run's hops, for measuring where its latency goes (never on by default).

``BIFROST_QUEUE_TRACE=/some/prefix`` makes each server and node process append
``<execution id> <stage> <time.time()>`` lines to ``/some/prefix.<pid>``; bench/scale.py ``--trace``
sets it and reads the hops back. Stages, in order: ``committed`` (the submit committed: the
server's dispatch), ``wait`` (the server starts waiting), ``take`` and ``taken`` (a node's TAKE
sent and answered), ``dispatched`` (handed to the runner), ``result`` (the worker's answer reached
the node), ``finished`` (FINISH answered), ``done`` (the end NOTIFY reached the server). All
processes are on one machine, so their clocks agree.
"""

from __future__ import annotations

import os
import time
from typing import TextIO

_PREFIX = os.environ.get("BIFROST_QUEUE_TRACE")
_file: TextIO | None = None


def enabled() -> bool:
    """Whether ``BIFROST_QUEUE_TRACE`` is set for this process."""
    return bool(_PREFIX)


def mark(execution_id: str, stage: str, at: float | None = None) -> None:
    """Record that ``execution_id`` reached ``stage`` now (or at ``at``, a ``time.time()``)."""
    global _file
    if not _PREFIX:
        return
    if _file is None:
        _file = open(f"{_PREFIX}.{os.getpid()}", "a", buffering=1, encoding="utf-8")
    _file.write(f"{execution_id} {stage} {time.time() if at is None else at:.6f}\n")
