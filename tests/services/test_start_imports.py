"""A server start does not import the libraries that only knowledge, OAuth and single sign-on use.

Every ``bifrost serve``, ``bifrost run`` and ``bifrost worker`` imports the web app and the platform.
numpy (~0.15 s: vectors), authlib with joserfc (~0.15 s: OAuth and OIDC), httpx (~0.09 s with the CLI
modules its package imports) and segno (the enrolment QR code) are imported by the functions that use
them instead. Only a fresh interpreter shows what a start imports: this test process has them all loaded.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

DEFERRED = ("numpy", "authlib", "joserfc", "httpx", "httpx2", "segno")

# Settings are built here, not with tests.conftest.make_settings: the test harness imports httpx itself.
SERVE_AND_VISIT = """
import asyncio, sys, urllib.request
from pathlib import Path

from app.settings import Settings
from app.web.server import running_server

DEFERRED = {deferred!r}


def visit(url):
    with urllib.request.urlopen(url, timeout=60) as response:
        return response.status


async def main():
    tmp = Path(sys.argv[1])
    settings = Settings(home=tmp / "home", workspace=tmp / "workspace", workers=1, watch_workspace=False)
    async with running_server(settings) as (_platform, url):
        # The login page lists the install's SSO providers: it must not load the OIDC client either.
        statuses = [await asyncio.to_thread(visit, url + path) for path in ("/healthz", "/login")]
    print(*statuses, sorted(m for m in DEFERRED if m in sys.modules))


asyncio.run(main())
"""


def test_a_started_server_has_not_imported_numpy_authlib_or_httpx(tmp_path: Path) -> None:
    root = Path(__file__).resolve().parents[2]
    shutil.copytree(root / "tests" / "platform" / "workspace", tmp_path / "workspace")
    script = SERVE_AND_VISIT.format(deferred=DEFERRED)
    out = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path)], capture_output=True, text=True, timeout=120, cwd=root
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.split("\n")[-2] == "200 200 []", out.stdout
