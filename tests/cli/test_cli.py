"""The ``bifrost`` command, run as a user would (subprocesses on a temporary home)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

BIFROST = [sys.executable, "-m", "app.cli"]


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    root = tmp_path_factory.mktemp("cli")
    env = {
        **os.environ,
        "BIFROST_HOME": str(root / "home"),
        "BIFROST_WORKSPACE": str(root / "workspace"),
        "BIFROST_WORKERS": "1",
    }
    env.pop("BIFROST_URL", None)
    result = subprocess.run([*BIFROST, "init", "--demo"], env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "Created platform admin admin@example.com" in result.stdout
    assert (root / "workspace" / "hello.py").exists()
    assert "Demo organization Contoso: log in as tech@contoso.example" in result.stdout
    return env


def run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*BIFROST, *args], env=env, capture_output=True, text=True, timeout=120)


def run_together(env: dict[str, str], *commands: tuple[str, ...]) -> list[subprocess.CompletedProcess[str]]:
    """Run independent ``bifrost`` commands as concurrent subprocesses; their results in the order given.

    Each ``bifrost run`` starts its own embedded platform (seconds of start-up, much of it waiting on its
    worker processes): side by side they overlap instead of queueing one after another.
    """
    started = [
        (
            command,
            subprocess.Popen([*BIFROST, *command], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True),
        )
        for command in commands
    ]
    results = []
    for command, process in started:
        try:
            stdout, stderr = process.communicate(timeout=120)
        except subprocess.TimeoutExpired:
            for _, other in started:
                other.kill()
            raise
        results.append(subprocess.CompletedProcess([*BIFROST, *command], process.returncode, stdout, stderr))
    return results


def test_init_is_idempotent_and_keeps_user_files(home: dict[str, str]) -> None:
    hello = Path(home["BIFROST_WORKSPACE"]) / "hello.py"
    hello.write_text(hello.read_text() + "\n# edited by me\n")
    again = run(home, "init", "--demo")
    assert again.returncode == 0 and "Platform admin exists" in again.stdout
    assert "# edited by me" in hello.read_text()


def test_run_prints_logs_and_result(home: dict[str, str]) -> None:
    result = run(home, "run", "hello_world", "-p", "name=Ada", "-p", "excited=true")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["greeting"] == "Hello, Ada!"
    assert "Greeting Ada for admin@example.com" in result.stderr
    assert "hello from a worker process" in result.stderr


def test_run_json_and_typed_params(home: dict[str, str]) -> None:
    result = run(
        home,
        "run",
        "onboard_employee",
        "--json",
        "-p",
        "first_name=Grace",
        "-p",
        "last_name=Hopper",
        "-p",
        "start_date=2026-12-01",
        "-p",
        'groups=["vpn", "git"]',
        "-p",
        'address={"street": "1 Main", "city": "Arlington"}',
    )
    assert result.returncode == 0, result.stderr
    record = json.loads(result.stdout)
    assert record["status"] == "Completed" and record["trigger"] == "cli"
    assert record["result"]["username"] == "ghopper" and record["result"]["groups"] == ["vpn", "git"]
    assert record["input_data"]["address"] == {"street": "1 Main", "city": "Arlington", "country": "US"}


def test_run_failures_exit_non_zero(home: dict[str, str]) -> None:
    invalid, user_error, missing, bad_pair = run_together(
        home,
        ("run", "onboard_employee", "-p", "first_name=A", "-p", "license=gold"),
        ("run", "onboard_employee", "-p", "first_name=A", "-p", "last_name=B", "-p", "start_date=1990-01-01"),
        ("run", "no_such_workflow"),
        ("run", "hello_world", "-p", "oops"),
    )
    assert invalid.returncode == 2
    assert "last_name: this parameter is required" in invalid.stderr and "license:" in invalid.stderr
    assert user_error.returncode == 1 and "The start date looks wrong" in user_error.stderr
    assert "Traceback" not in user_error.stderr
    assert missing.returncode == 2 and "not found" in missing.stderr
    assert bad_pair.returncode != 0 and "key=value" in bad_pair.stderr


def test_workflows_lists_the_workspace(home: dict[str, str]) -> None:
    result = run(home, "workflows")
    assert result.returncode == 0, result.stderr
    assert "hello_world" in result.stdout and "get_departments" in result.stdout
    as_json = json.loads(run(home, "workflows", "--json").stdout)
    assert {w["name"] for w in as_json["workflows"]} >= {"hello_world", "onboard_employee"}


def test_help_is_fast_to_import() -> None:
    # `bifrost --help` must not import the platform's heavy dependencies.
    code = "import sys; from app.cli import build_parser; build_parser(); print(sorted(m for m in ('litestar','sqlalchemy','uvicorn') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "[]"


def test_api_key_command_prints_a_new_key(home: dict[str, str]) -> None:
    created, unknown_org = run_together(home, ("api-key", "laptop"), ("api-key", "x", "--org", "Nowhere"))
    assert created.returncode == 0, created.stderr
    key = created.stdout.strip()
    assert key.startswith("bfk_") and len(key) > 40
    assert unknown_org.returncode == 2 and "Nowhere" in unknown_org.stderr


def test_demo_technician_runs_in_their_organization(home: dict[str, str]) -> None:
    result, refused, admin = run_together(
        home,
        ("run", "hello_world", "--as", "tech@contoso.example"),
        ("run", "team_directory", "--as", "tech@contoso.example"),
        ("run", "team_directory"),
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["org"] == "Contoso"
    # team_directory is for platform admins only (access="admins", issue 16): a technician is told it does
    # not exist (exit 2, a usage error), as everywhere else, instead of running it to fail inside.
    assert refused.returncode == 2 and "not found" in refused.stderr, refused.stderr[-300:]
    assert admin.returncode == 0, admin.stderr  # the admin runs it
