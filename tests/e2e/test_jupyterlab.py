"""Idea to published workflow in JupyterLab, in a real Chromium, timed.

``bifrost init --demo`` and a live server (as ``make run`` has), then ``bifrost notebook`` as a real
subprocess pointed at it. In the browser: open JupyterLab, create the notebook from the launcher's
"Bifrost workflow" card, type a new workflow into a cell, run it through the ipywidgets form and through
``%bifrost run`` (live log lines before the result table), publish it, then log in as the Contoso
technician and run it from its web form. The time from opening Lab to that first web run is printed
(docs/jupyter.md reports it). With ``BIFROST_UPDATE_SCREENSHOTS=1`` the shots go to docs/screenshots/.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import LiveServer, make_settings

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
BIFROST = [sys.executable, "-m", "app.cli"]
SCREENSHOTS = REPO / "docs" / "screenshots"
TOKEN = "jupyterlab-e2e-token"
FAILURE_SHOT = "/tmp/bifrost-jupyterlab-failure.png"
ADMIN = "admin@example.com"
TECH, TECH_PASSWORD = "tech@contoso.example", "contoso-tech"

# What the author types: a workflow that is not the template's, with a pause between log lines so that
# "live" is visible (lines in the cell before the result).
WORKFLOW = '''import asyncio
import logging

from bifrost import context, workflow

logger = logging.getLogger(__name__)


@workflow(category="Notebook")
async def ticket_digest(client: str, tickets: int = 3) -> list[dict]:
    """List a client's open tickets.

    Args:
        client: The client's name.
        tickets: How many tickets to list.
    """
    rows = []
    for number in range(1, tickets + 1):
        logger.info("reading ticket %s of %s", number, client)
        await asyncio.sleep(0.5)
        rows.append({"ticket": number, "client": client, "status": "open"})
    print(f"digest ready for {context.email}")
    return rows
'''


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Lab:
    """The demo platform and the JupyterLab ``bifrost notebook`` started for it."""

    server: LiveServer
    url: str
    home: Path
    workspace: Path
    notebooks: Path
    output: Path


def _bifrost(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*BIFROST, *args], env=env, capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    root = tmp_path_factory.mktemp("jupyterlab")
    home, workspace, notebooks = root / "home", root / "workspace", root / "notebooks"
    notebooks.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BIFROST_", "JUPYTER"))}
    env |= {"BIFROST_HOME": str(home), "BIFROST_WORKSPACE": str(workspace), "BIFROST_WORKERS": "1"}
    init = _bifrost(env, "init", "--demo")
    assert init.returncode == 0, init.stderr
    settings = make_settings(root, workspace=workspace, workers=1, login_rate_limit_per_minute=10_000)
    server = LiveServer(settings).start()
    port = _free_port()
    env |= {
        "JUPYTER_TOKEN": TOKEN,
        # Lab's own state in the test's folder: a fresh layout (the launcher), no shared runtime files.
        "JUPYTERLAB_SETTINGS_DIR": str(root / "lab-settings"),
        "JUPYTERLAB_WORKSPACES_DIR": str(root / "lab-workspaces"),
        "JUPYTER_RUNTIME_DIR": str(root / "jupyter-runtime"),
        "IPYTHONDIR": str(root / "ipython"),
        # Kernels import this checkout's packages (a worktree's too), like the test does.
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
    }
    output = root / "bifrost-notebook.log"
    with open(output, "w") as log:
        process = subprocess.Popen(
            [*BIFROST, "notebook", "--no-browser", "--port", str(port), "--dir", str(notebooks), "--url", server.url],
            env=env,
            cwd=REPO,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            assert process.poll() is None, output.read_text()
            try:
                if httpx.get(f"{url}/api/status", params={"token": TOKEN}, timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, output.read_text()
            time.sleep(0.3)
        yield Lab(server, url, home, workspace, notebooks, output)
    finally:
        os.killpg(process.pid, 15)  # its own session: Jupyter and its kernels
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, 9)
        server.stop()


def _cell(page: Any, index: int) -> Any:
    return page.locator(".jp-NotebookPanel:visible .jp-Notebook .jp-Cell").nth(index)


def _type_into(page: Any, index: int, code: str) -> None:
    """Replace the cell's text as a person would paste it (insert_text: no auto-indent or auto-close)."""
    _cell(page, index).locator(".cm-content").click()
    page.keyboard.press("Control+a")
    page.keyboard.insert_text(code)


def _run(page: Any, index: int) -> None:
    _cell(page, index).locator(".cm-content").click()
    page.keyboard.press("Shift+Enter")


def _wait_done(page: Any, index: int, timeout: float = 60_000) -> str:
    """Wait until the cell has run (its prompt shows a number), return its output text."""
    prompt = _cell(page, index).locator(".jp-InputArea-prompt")
    try:
        page.wait_for_function("el => /\\[\\d+\\]/.test(el.textContent)", arg=prompt.element_handle(), timeout=timeout)
    except Exception:
        page.screenshot(path=FAILURE_SHOT)
        raise AssertionError(f"cell {index} did not finish; the page is in {FAILURE_SHOT}") from None
    return str(_cell(page, index).locator(".jp-Cell-outputArea").inner_text())


def _watch_live(page: Any, output: Any, done_selector: str) -> list[str]:
    """Snapshots of an output area until ``done_selector`` appears in it (every 100 ms, at most 60 s)."""
    seen: list[str] = []
    deadline = time.monotonic() + 60
    while output.locator(done_selector).count() == 0:
        assert time.monotonic() < deadline, seen[-1:] or "no output"
        seen.append(output.inner_text())
        page.wait_for_timeout(100)
    return seen


@pytest.mark.timeout(300)
def test_idea_to_published_workflow_in_jupyterlab(lab: Lab, browser: Any, tmp_path: Path) -> None:
    shots = tmp_path
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))

    # `bifrost notebook` made and stored the author's notebook key (0600), and said where.
    key_file = lab.home / "notebook-keys" / f"{ADMIN}.key"
    assert key_file.stat().st_mode & 0o777 == 0o600
    assert f"stored in {key_file}" in lab.output.read_text()

    started = time.monotonic()
    page.goto(f"{lab.url}/lab?token={TOKEN}")
    card = page.locator(".jp-LauncherCard", has_text="Bifrost workflow")
    card.wait_for(timeout=60_000)
    page.screenshot(path=str(shots / "jupyterlab-launcher.png"))
    card.click()
    page.locator(".jp-Dialog input").fill("ticket_digest")
    page.locator(".jp-Dialog .jp-mod-accept").click()
    page.locator(".jp-NotebookPanel:visible .jp-Notebook .jp-Cell").nth(6).wait_for(timeout=30_000)
    assert (lab.notebooks / "ticket_digest.ipynb").exists()

    # The card ran cell 1 as the notebook opened: connected as the author. Cell 2 is where the author types.
    connected = _wait_done(page, 1)
    assert f"Connected to {lab.server.url} as {ADMIN}" in connected, connected
    _type_into(page, 2, WORKFLOW)
    _run(page, 2)
    assert "Error" not in _wait_done(page, 2)

    # `%bifrost run` with parameters: log lines show while it runs, then the result table.
    _type_into(page, 3, "%bifrost run ticket_digest client=Contoso tickets=3")
    _run(page, 3)
    run_output = _cell(page, 3).locator(".jp-Cell-outputArea")
    seen = _watch_live(page, run_output, "table")
    assert any("reading ticket 1 of Contoso" in s and "reading ticket 3" not in s for s in seen), seen
    text = _wait_done(page, 3)
    assert "Completed" in text and f"digest ready for {ADMIN}" in text, text
    assert run_output.locator("table tbody tr").count() == 3

    # The widget form: fields from the signature, Submit runs it with live logs under the form.
    _run(page, 4)
    _wait_done(page, 4)
    form = _cell(page, 4).locator(".jp-Cell-outputArea")
    form.locator(".widget-text", has_text="client").locator("input").fill("Fabrikam")
    form.locator(".widget-text", has_text="tickets").locator("input").fill("2")
    form.locator("button", has_text="Submit").click()
    seen = _watch_live(page, form, "table")
    assert any("reading ticket 1 of Fabrikam" in s and "reading ticket 2" not in s for s in seen), seen
    assert form.locator("table tbody tr").count() == 2
    assert "Fabrikam" in form.locator("table").inner_text()
    page.screenshot(path=str(shots / "jupyterlab-workflow.png"))

    # Publish: the file lands in the workspace, formatted, and the cell says how to run it.
    _type_into(page, 6, "%bifrost publish ticket_digest")
    _run(page, 6)
    published = _wait_done(page, 6)
    assert "Published workflow 'ticket_digest' as ticket_digest.py" in published, published
    assert f"{lab.server.url}/workflows/ticket_digest" in published
    page.screenshot(path=str(shots / "jupyterlab-published.png"))
    module = lab.workspace / "ticket_digest.py"
    for check in (["check"], ["format", "--check"]):
        ruff = subprocess.run(
            [sys.executable, "-m", "ruff", *check, "--config", str(REPO / "pyproject.toml"), str(module)],
            capture_output=True,
            text=True,
            check=False,
        )
        assert ruff.returncode == 0, ruff.stdout + ruff.stderr + module.read_text()

    # The Contoso technician runs it from its web form.
    tech_context = browser.new_context(viewport={"width": 1200, "height": 800})
    tech = tech_context.new_page()
    tech.goto(f"{lab.server.url}/login")
    tech.fill("#email", TECH)
    tech.fill("#password", TECH_PASSWORD)
    tech.click("button[type=submit]")
    tech.wait_for_url(f"{lab.server.url}/")
    tech.goto(f"{lab.server.url}/workflows/ticket_digest")
    tech.fill("#f-client", "Contoso")
    tech.fill("#f-tickets", "1")
    tech.click("#run-form button[type=submit]")
    tech.wait_for_selector("#result-table", timeout=30_000)
    elapsed = time.monotonic() - started
    assert tech.inner_text("#exec-status-text") == "Completed"
    assert "Contoso" in tech.inner_text("#result-table")
    tech.screenshot(path=str(shots / "jupyterlab-web-run.png"))
    print(f"\nJupyterLab: from opening Lab to the published workflow's first web run: {elapsed:.1f} s")
    assert errors == [], errors

    if os.environ.get("BIFROST_UPDATE_SCREENSHOTS") == "1":
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        for shot in ("jupyterlab-launcher.png", "jupyterlab-workflow.png", "jupyterlab-published.png"):
            shutil.copy(shots / shot, SCREENSHOTS / shot)
    tech_context.close()
    context.close()
