"""First contact (issue 19): what `make run` shows on a fresh home, with the real `bifrost` processes.

`bifrost init --demo` then `bifrost serve` on a port that is not 8000: the banner names the port the
server really listens on, the first start prints no Alembic INFO lines or setuptools warning, the demo
health check probes that server (not 127.0.0.1:8000), and a refused run prints its error once.
"""

from __future__ import annotations

import os
import queue
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[2]
BIFROST = [sys.executable, "-m", "app.cli"]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Served:
    env: dict[str, str]
    port: int
    init_output: str
    process: subprocess.Popen[str]
    lines: list[str] = field(default_factory=list)


def _reader(process: subprocess.Popen[str], out: queue.Queue[str]) -> None:
    assert process.stdout is not None
    for line in process.stdout:
        out.put(line)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    root = tmp_path_factory.mktemp("first-start")
    env = {k: v for k, v in os.environ.items() if not k.startswith("BIFROST_")}
    port = _free_port()
    env |= {
        "BIFROST_HOME": str(root / "home"),
        "BIFROST_WORKSPACE": str(root / "workspace"),
        "BIFROST_WORKERS": "1",
        "BIFROST_PORT": str(port),
        "PYTHONWARNINGS": "default",  # a deprecation warning at start would show, as on a user's terminal
    }
    init = subprocess.run([*BIFROST, "init", "--demo"], env=env, cwd=ROOT, capture_output=True, text=True, timeout=180)
    assert init.returncode == 0, init.stderr
    process = subprocess.Popen(
        [*BIFROST, "serve"], env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=_reader, args=(process, lines), daemon=True).start()
    served = Served(env, port, init.stdout + init.stderr, process)
    deadline = time.monotonic() + 120
    try:
        while not any("listening on" in line for line in served.lines):
            assert process.poll() is None, "".join(served.lines)
            assert time.monotonic() < deadline, "".join(served.lines)
            try:
                served.lines.append(lines.get(timeout=1))
            except queue.Empty:
                continue
        yield served
    finally:
        process.terminate()
        process.wait(60)


def test_the_banner_names_the_port_the_server_listens_on(served: Served) -> None:
    banner = next(line for line in served.lines if "listening on" in line)
    assert f"http://127.0.0.1:{served.port}" in banner, banner
    assert ":8000" not in "".join(served.lines)
    assert httpx.get(f"http://127.0.0.1:{served.port}/healthz", timeout=10).json() == {"status": "ok"}


def test_the_first_start_prints_no_alembic_chatter_or_setuptools_warning(served: Served) -> None:
    output = served.init_output + "".join(served.lines)
    assert "alembic" not in output.lower(), output
    assert "setuptools" not in output.lower() and "pkg_resources" not in output, output


def test_make_run_prints_no_hard_coded_address() -> None:
    makefile = (ROOT / "Makefile").read_text()
    run_target = makefile.split("\nrun:", 1)[1].split("\n\n", 1)[0]
    assert "8000" not in run_target and "bifrost serve" in run_target


def test_the_demo_health_check_probes_the_server_it_runs_on(served: Served) -> None:
    key = subprocess.run(
        [*BIFROST, "api-key", "first start"], env=served.env, cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert key.returncode == 0, key.stderr
    url = f"http://127.0.0.1:{served.port}"
    headers = {"Authorization": f"Bearer {key.stdout.strip()}"}
    with httpx.Client(base_url=url, headers=headers, timeout=60) as client:
        done = client.post(
            "/api/workflows/service_health_check/execute", params={"wait": "true"}, json={"params": {}}
        ).json()
        assert done["status"] == "Completed", done
        report = client.get("/api/files/content", params={"path": done["result"]["report"]}).text
    assert f"127.0.0.1:{served.port},up," in report, report
    assert "127.0.0.1:8000" not in report


def test_a_refused_run_prints_its_error_once(served: Served) -> None:
    env = served.env | {"BIFROST_URL": f"http://127.0.0.1:{served.port}"}
    key = subprocess.run([*BIFROST, "api-key", "cli"], env=env, cwd=ROOT, capture_output=True, text=True, timeout=60)
    env["BIFROST_API_KEY"] = key.stdout.strip()
    refused = subprocess.run(
        [*BIFROST, "run", "hello_world", "-p", "excited=maybe"],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert refused.returncode == 2
    assert refused.stderr.count("valid boolean") == 1, refused.stderr
    assert "excited" in refused.stderr


def test_the_health_check_report_opens_from_its_execution_page_and_the_files_page(served: Served) -> None:
    url = f"http://127.0.0.1:{served.port}"
    with httpx.Client(base_url=url, timeout=60) as browser:
        browser.get("/login")
        form = {
            "email": "admin@example.com",
            "password": "bifrost-admin",
            "next": "/",
            "_csrf_token": browser.cookies["csrftoken"],
        }
        assert browser.post("/login", data=form).status_code == 303
        browser.headers["X-CSRFToken"] = browser.cookies["csrftoken"]
        run = browser.post(
            "/api/workflows/service_health_check/execute", params={"wait": "true"}, json={"params": {}}
        ).json()
        report = run["result"]["report"]
        page = browser.get(f"/executions/{run['execution_id']}").text
        link = f'href="/files/view?location=workspace&amp;path={report.replace("/", "%2F")}"'
        assert link in page, page
        opened = browser.get("/files/view", params={"location": "workspace", "path": report})
        assert opened.status_code == 200 and '<th scope="col">target</th>' in opened.text
        assert f"127.0.0.1:{served.port}" in opened.text
        listing = browser.get("/files", params={"path": "reports"}).text
        assert report.rsplit("/", 1)[1] in listing
