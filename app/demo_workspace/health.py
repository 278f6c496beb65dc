"""Demo: a scheduled health check that reads config and secrets and writes a CSV report.

`bifrost init --demo` sets the global config values it reads:

- ``health_check_targets`` (plain): the ``host:port`` services to probe;
- ``psa_api_token`` (secret): what a real check would send to the PSA to open tickets.

Scheduled runs act as the built-in Scheduler account, globally and without admin powers:
they may read global config and write files, but not global tables (see docs/triggers.md).
"""

import asyncio
import csv
import io
import logging
import os
import time
from datetime import UTC, datetime
from urllib.parse import urlsplit

from bifrost import config, context, files, workflow

logger = logging.getLogger(__name__)


def platform_target() -> str | None:
    """``host:port`` of the platform running this workflow (workers get its URL as BIFROST_URL), if known."""
    url = urlsplit(os.environ.get("BIFROST_URL", ""))
    if not url.hostname:
        return None
    port = url.port or (443 if url.scheme == "https" else 80)
    host = f"[{url.hostname}]" if ":" in url.hostname else url.hostname
    return f"{host}:{port}"


async def _probe(target: str, timeout: float) -> tuple[str, float | None]:
    """Open a TCP connection to ``host:port``; returns ("up", milliseconds) or ("down", None)."""
    host, _, port = target.rpartition(":")
    host = host.strip("[]")  # an IPv6 address is written [::1]:8000
    started = time.perf_counter()
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(host, int(port)), timeout)
    except (TimeoutError, OSError, ValueError):
        return "down", None
    writer.close()
    await writer.wait_closed()
    return "up", round((time.perf_counter() - started) * 1000, 1)


@workflow(
    category="Monitoring",
    tags=["demo", "scheduled"],
    schedule="0 * * * *",  # every hour, on the hour (UTC); listed on the Schedules page
    timeout_seconds=60,
)
async def service_health_check(timeout: float = 2.0) -> dict:
    """Probe the monitored services and save a CSV report under reports/.

    Args:
        timeout: Seconds to wait for each service.
    """
    # A plain value: extra services to probe, with a default for workspaces where nobody set it. The
    # platform itself is always probed at the address this run reached it by (whatever port it serves on).
    extra = await config.get("health_check_targets", default=[])
    if isinstance(extra, str):  # typed as "a:1, b:2" on the config page
        extra = [t.strip() for t in extra.split(",") if t.strip()]
    own = platform_target()
    targets = ([own] if own else []) + [t for t in extra if t != own]
    # A secret comes back in clear inside a run. Log THAT it is set, never its value: the
    # platform would redact it from logs and results anyway, but code reviewers should not
    # have to rely on that.
    token = await config.get("psa_api_token")
    logger.info("Checking %d service(s); PSA token %s", len(targets), "configured" if token else "missing")

    results = await asyncio.gather(*(_probe(t, timeout) for t in targets))
    rows = [{"target": t, "status": s, "ms": ms} for t, (s, ms) in zip(targets, results, strict=True)]
    for row in rows:
        if row["status"] == "up":
            logger.info("%s is up (%s ms)", row["target"], row["ms"])
        else:
            logger.warning("%s is DOWN", row["target"])

    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=["target", "status", "ms"])
    writer.writeheader()
    writer.writerows(rows)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    path = f"reports/health-{stamp}.csv"
    # Files belong to the run's organization (the global area for the scheduler): download it
    # with files.read(path) or GET /api/files/content?path=...
    await files.write(path, out.getvalue())

    down = [r["target"] for r in rows if r["status"] == "down"]
    return {"checked": len(rows), "down": down, "report": path, "run_by": context.email}
