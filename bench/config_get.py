#!/usr/bin/env python
"""``config.get`` latency from inside a workflow. Prints ONE JSON object; progress goes to stderr.

Run ``.venv/bin/python bench/config_get.py`` (options: ``--calls 300 --runs 3 --workers 2``).
See ``docs/performance.md``.

What it measures: the real ``app.web.server.running_server`` (fresh SQLite file in WAL mode, a warm
pool of worker processes importing ``tests/platform/workspace``, Litestar on uvicorn on a loopback
port, uvloop when installed as ``bifrost serve`` uses) with one organization, a user, and config
values. The workflow ``config_get_timings`` runs in a worker and times each ``await config.get(key)``
with ``time.perf_counter`` there: the SDK's HTTP call with the execution token, authentication,
the database read (org value, then global), decryption for secrets, the JSON answer. Nothing else
runs meanwhile. Scenarios:

* ``plain_org``: a string value of the execution's organization;
* ``plain_global``: a string value only set globally (the fallback lookup);
* ``secret_org``: a Fernet-encrypted secret (decrypted and remembered for redaction per call).

Each scenario runs once to warm up, then ``--runs`` executions of ``--calls`` calls each.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
WORKSPACE_SOURCE = ROOT / "tests" / "platform" / "workspace"
TARGET_P50_MS = 2.0


def log(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


def quantile(sorted_values: list[float], q: float) -> float:
    """Linear-interpolation quantile of already sorted values (q in [0, 1])."""
    pos = (len(sorted_values) - 1) * q
    lo = int(pos)
    hi = min(lo + 1, len(sorted_values) - 1)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (pos - lo)


def summarize(samples_ms: list[float]) -> dict[str, Any]:
    values = sorted(samples_ms)
    return {
        "calls": len(values),
        "p50_ms": round(quantile(values, 0.50), 3),
        "p95_ms": round(quantile(values, 0.95), 3),
        "p99_ms": round(quantile(values, 0.99), 3),
        "mean_ms": round(statistics.fmean(values), 3),
        "max_ms": round(values[-1], 3),
    }


async def _seed(platform_: Any) -> Any:
    """One organization with a user; config values in it and globally. Returns the user's actor."""
    from app.db import transaction
    from app.services.config.service import ConfigService
    from app.services.identity.auth import AuthService
    from app.services.identity.organizations import OrganizationService
    from app.services.identity.users import UserService
    from app.services.secrets import secret_box

    settings = platform_.settings
    async with transaction(platform_.sessions) as session:
        users, auth = UserService(session), AuthService(session)
        admin = await users.create(None, "admin@bench.local", "Admin", is_superuser=True)
        admin_actor = await auth.actor_for_user(admin.id)
        org = await OrganizationService(session).create(admin_actor, "Bench Org")
        user = await users.create(admin_actor, "user@bench.local", "Bench User", org_id=org.id)
        config = ConfigService(session, lambda: secret_box(settings.secret_key, settings.home))
        await config.set(admin_actor, "only_global", "global value")
        user_actor = await auth.actor_for_user(user.id)
        await config.set(user_actor, "plain", "org value")
        await config.set(user_actor, "only_global_decoy", 1)
        await config.set(user_actor, "secret", "sk-bench-secret-value", is_secret=True)
    async with transaction(platform_.sessions) as session:
        return await AuthService(session).actor_for_user(user.id)


def cpu_ms(pid: int) -> float:
    """User + system CPU time of a process so far (``/proc/<pid>/stat``), in milliseconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) * 1000.0 / os.sysconf("SC_CLK_TCK")


async def _timings(platform_: Any, actor: Any, key: str, calls: int) -> list[float]:
    from app.db import transaction
    from app.services.executions.service import ExecutionService

    async with transaction(platform_.sessions) as session:
        execution = await ExecutionService(session, platform_.dispatcher).submit(
            "config_get_timings", {"key": key, "calls": calls}, actor, trigger="cli"
        )
    await platform_.dispatcher.wait(execution.id)
    outcome = platform_.dispatcher.outcome(execution.id)
    if not outcome or outcome["status"] != "Completed":
        raise RuntimeError(f"benchmark run failed: {outcome}")
    return [float(v) for v in outcome["result"]]


async def _main(args: argparse.Namespace) -> dict[str, Any]:
    from app.services.config import service as config_service
    from app.settings import Settings
    from app.web.server import running_server

    if args.no_cache:
        config_service._CACHE_TTL_SECONDS = 0.0  # entries expire at once: every lookup reads the database
    directory = Path(tempfile.mkdtemp(prefix="bifrost-bench-config-"))
    try:
        workspace = directory / "workspace"
        shutil.copytree(WORKSPACE_SOURCE, workspace)
        settings = Settings(home=directory / "home", workspace=workspace, workers=args.workers, host="127.0.0.1")
        async with running_server(settings) as (platform_, _url):
            actor = await _seed(platform_)
            scenarios: dict[str, Any] = {}
            for name, key in (("plain_org", "plain"), ("plain_global", "only_global"), ("secret_org", "secret")):
                log(f"{name}: warm-up")
                await _timings(platform_, actor, key, args.calls)
                samples: list[float] = []
                pids = platform_.pool.pids()
                server_cpu, workers_cpu = cpu_ms(os.getpid()), sum(cpu_ms(p) for p in pids)
                for i in range(args.runs):
                    log(f"{name}: run {i + 1}/{args.runs} ({args.calls} calls)")
                    samples += await _timings(platform_, actor, key, args.calls)
                scenarios[name] = summarize(samples)
                # CPU per call moves much less than wall time when other processes compete for the cores.
                calls = len(samples)
                scenarios[name]["server_cpu_ms_per_call"] = round((cpu_ms(os.getpid()) - server_cpu) / calls, 3)
                scenarios[name]["worker_cpu_ms_per_call"] = round(
                    (sum(cpu_ms(p) for p in pids) - workers_cpu) / calls, 3
                )
            return {
                "loop": type(asyncio.get_running_loop()).__module__,
                "lookup_cache": not args.no_cache,
                "scenarios": scenarios,
            }
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--calls", type=int, default=300, help="config.get calls per execution")
    parser.add_argument("--runs", type=int, default=3, help="measured executions per scenario")
    parser.add_argument("--workers", type=int, default=2, help="warm worker processes")
    parser.add_argument(
        "--no-cache", action="store_true", help="disable the config lookup cache (every call reads the database)"
    )
    args = parser.parse_args()
    load_start = os.getloadavg()[0]
    try:
        import uvloop
    except ImportError:
        measured = asyncio.run(_main(args))
    else:
        measured = uvloop.run(_main(args))
    p50 = measured["scenarios"]["plain_org"]["p50_ms"]
    report = {
        "benchmark": "config.get inside a workflow",
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "load_avg_start": round(load_start, 2),
        "load_avg_end": round(os.getloadavg()[0], 2),
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        **measured,
        "target_p50_ms": TARGET_P50_MS,
        "verdict": "pass" if p50 <= TARGET_P50_MS else "miss",
    }
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
