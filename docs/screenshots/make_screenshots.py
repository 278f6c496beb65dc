"""Renew the screenshots in docs/screenshots/ from the demo that `make run` serves (`make screenshots`).

Starts what a new user starts: ``bifrost init --demo`` in a temporary home and ``bifrost serve`` on a free
port, runs a few demo workflows so the pages have something to show, then captures the main pages in
Debian's Chromium (Playwright, ``/usr/bin/chromium``, never a downloaded browser) at 1280 px: as the
platform admin, and as the Contoso technician. The JupyterLab pictures come from tests/notebooks and
are left alone.

The script lives beside its output (``bench/`` holds benchmarks that print JSON, ``tests/`` asserts):
run it with ``make screenshots`` or ``.venv/bin/python docs/screenshots/make_screenshots.py [--out DIR]``.
It prints one line per picture and exits non-zero when a page fails or logs a console error.
"""

from __future__ import annotations

import argparse
import os
import queue
import re
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[2]
OUT = Path(__file__).resolve().parent
CHROMIUM = os.environ.get("BIFROST_CHROMIUM", "/usr/bin/chromium")
LAUNCH_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking"]
WIDTH, HEIGHT, MAX_HEIGHT = 1280, 800, 1800  # a long page is cut at MAX_HEIGHT: the top tells the story
ADMIN = ("admin@example.com", "bifrost-admin")
TECH = ("tech@contoso.example", "contoso-tech")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def demo_server(home: Path) -> Iterator[tuple[str, dict[str, str]]]:
    """``bifrost init --demo`` then ``bifrost serve`` (real processes); yields the URL the banner names."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("BIFROST_")}
    env |= {
        "BIFROST_HOME": str(home / "home"),
        "BIFROST_WORKSPACE": str(home / "workspace"),
        "BIFROST_PORT": str(_free_port()),
        "BIFROST_WORKERS": "2",
        "BIFROST_LOGIN_RATE_LIMIT_PER_MINUTE": "1000",
    }
    command = [sys.executable, "-m", "app.cli"]
    init = subprocess.run([*command, "init", "--demo"], env=env, cwd=ROOT, capture_output=True, text=True)
    if init.returncode != 0:
        raise SystemExit(f"bifrost init --demo failed:\n{init.stderr}")
    server = subprocess.Popen(
        [*command, "serve"], env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in server.stdout or []], daemon=True).start()
    try:
        deadline, url = time.monotonic() + 120, None
        while url is None:
            if server.poll() is not None or time.monotonic() > deadline:
                raise SystemExit("bifrost serve did not start")
            try:
                found = re.search(r"listening on (http://\S+)", lines.get(timeout=1))
            except queue.Empty:
                continue
            url = found.group(1) if found else None
        yield url, env
    finally:
        server.terminate()
        server.wait(60)


def prepare(url: str, env: dict[str, str]) -> dict[str, str]:
    """Runs and data the pictures show; returns the ids the page URLs need."""
    key = subprocess.run(
        [sys.executable, "-m", "app.cli", "api-key", "screenshots"], env=env, cwd=ROOT, capture_output=True, text=True
    ).stdout.strip()
    ids: dict[str, str] = {}
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=120) as api:

        def run(workflow: str, **params: Any) -> str:
            done = api.post(f"/api/workflows/{workflow}/execute", params={"wait": "true"}, json={"params": params})
            done.raise_for_status()
            return str(done.json()["execution_id"])

        run("hello_world", name="Ada", excited=True)
        ids["health"] = run("service_health_check")
        ids["onboarding"] = run("onboard_employee", first_name="Grace", last_name="Hopper", start_date="2027-01-04")
        orgs = {o["name"]: o["id"] for o in api.get("/api/organizations").json()}
        ids["contoso"] = orgs["Contoso"]
        forms = api.get("/api/forms").json()
        ids["form"] = next(f["id"] for f in forms if f["name"] == "Report an incident")
    return ids


class Camera:
    """One browser context (one signed-in user) taking pictures into ``out``."""

    def __init__(self, browser: Any, url: str, out: Path, width: int = WIDTH) -> None:
        self.url, self.out = url, out
        self.context = browser.new_context(viewport={"width": width, "height": HEIGHT})
        self.page = self.context.new_page()
        self.errors: list[str] = []
        self.page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))

    def login(self, email: str, password: str) -> None:
        self.page.goto(f"{self.url}/login")
        self.page.fill("#email", email)
        self.page.fill("#password", password)
        self.page.click("button[type=submit]")
        self.page.wait_for_url(f"{self.url}/")

    def act_in(self, org_id: str) -> None:
        """What the "Acting in" switch posts."""
        token = next(c["value"] for c in self.context.cookies() if c["name"] == "csrftoken")
        self.context.request.post(f"{self.url}/session/org", form={"org_id": org_id, "_csrf_token": token})

    def shoot(self, name: str, path: str | None = None, wait_for: str | None = None) -> None:
        if path is not None:
            response = self.page.goto(f"{self.url}{path}")
            if response is None or response.status >= 400:
                raise SystemExit(f"{name}: {path} answered {response.status if response else 'nothing'}")
        if wait_for:
            self.page.wait_for_selector(wait_for, state="attached")
        self.page.wait_for_load_state("networkidle")
        height = min(self.page.evaluate("document.documentElement.scrollHeight"), MAX_HEIGHT)
        width = self.page.viewport_size["width"]
        target = self.out / f"{name}.png"
        self.page.screenshot(path=str(target), full_page=True, clip={"x": 0, "y": 0, "width": width, "height": height})
        print(f"{target.relative_to(ROOT) if target.is_relative_to(ROOT) else target}  {path or self.page.url}")

    def close(self) -> None:
        self.context.close()


def capture(url: str, ids: dict[str, str], out: Path) -> list[str]:
    """Every picture; returns the console errors seen."""
    from playwright.sync_api import sync_playwright

    errors: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=LAUNCH_ARGS)
        admin = Camera(browser, url, out)
        admin.shoot("login", "/login")
        admin.login(*ADMIN)
        admin.shoot("home", "/")
        admin.shoot("workflows", "/workflows")
        admin.shoot("form", "/workflows/onboard_employee", wait_for="#f-department option[value='eng']")
        admin.shoot("execution", f"/executions/{ids['health']}", wait_for="#result-object")
        admin.shoot("executions", "/executions")
        admin.shoot("organizations", "/admin/organizations")
        admin.shoot("users", "/admin/users")
        admin.shoot("api-keys", "/api-keys")
        admin.shoot("schedules", "/schedules")
        admin.shoot("knowledge", "/knowledge")
        admin.shoot("files", "/files?location=workspace&path=reports")
        admin.shoot("account", "/account")
        admin.act_in(ids["contoso"])
        admin.shoot("roles", "/admin/roles")
        admin.shoot("form-builder", f"/admin/forms/{ids['form']}")
        errors += admin.errors
        admin.close()

        tech = Camera(browser, url, out)
        tech.login(*TECH)
        tech.shoot("home-technician", "/")
        tech.page.goto(f"{url}/forms/{ids['form']}")
        tech.page.wait_for_selector("#f-client option[value='Contoso']", state="attached")
        tech.page.select_option("#f-client", "Contoso")
        tech.page.wait_for_selector("#f-site option:nth-child(2)", state="attached")
        tech.page.select_option("#f-site", index=1)
        tech.page.fill("#f-summary", "Core switch in Seattle HQ is down")
        tech.shoot("custom-form")
        tech.page.click("form button[type=submit].primary")
        tech.page.wait_for_url("**/executions/**")
        tech.page.wait_for_selector("#result-object, #result-table, #result-json, #result-error")
        execution = tech.page.url
        errors += tech.errors
        tech.close()

        phone = Camera(browser, url, out, width=375)
        phone.login(*TECH)
        phone.page.goto(execution)
        phone.shoot("execution-phone")
        errors += phone.errors
        phone.close()
        browser.close()
    return errors


def main() -> int:
    """Start the demo, take the pictures, stop it."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=OUT, help="folder for the PNG files (default: this folder)")
    args = parser.parse_args()
    if not Path(CHROMIUM).exists():
        print(f"screenshots need Debian's chromium at {CHROMIUM} (apt-get install chromium)", file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="bifrost-screenshots-") as home, demo_server(Path(home)) as (url, env):
        print(f"demo at {url}")
        errors = capture(url, prepare(url, env), args.out)
    if errors:
        print("console errors:\n  " + "\n  ".join(errors), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
