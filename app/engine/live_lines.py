"""What a live view of a run merges with the stored lines: the lines not stored yet, wherever they are held."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from app.engine.platform import Platform


def unstored_lines(platform: Platform, execution_id: str) -> list[dict[str, Any]]:
    """Lines of ``execution_id`` that may not be in the database yet, by seq, each once (a copy).

    The embedded dispatcher's buffer; on a queue server, the buffer of this server's own node
    (``BIFROST_SERVE_RUNS_JOBS``) and the lines other nodes published lately (:class:`~app.engine.recent_logs.RecentLogs`). A
    line held whole here wins over its copy from the bus (which may have been cut to fit a NOTIFY).
    Synchronous: call it right after subscribing, with no await between, so no line falls in a gap.
    """
    rows: dict[int, dict[str, Any]] = {row["seq"]: row for row in platform.hub.recent_logs(execution_id)}
    if platform.node is not None:
        rows.update((row["seq"], row) for row in platform.node.runner.buffered_logs(execution_id))
    rows.update((row["seq"], row) for row in platform.dispatcher.buffered_logs(execution_id))
    return [rows[seq] for seq in sorted(rows)]
