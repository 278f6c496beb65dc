"""``bifrost run`` against a running server (BIFROST_URL + BIFROST_API_KEY)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from tests.platform.conftest import World


def cli(world: World, key: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "BIFROST_URL": world.server.url, "BIFROST_API_KEY": key}
    return subprocess.run(
        [sys.executable, "-m", "app.cli", *args], env=env, capture_output=True, text=True, timeout=120
    )


def test_remote_run_streams_logs_and_result(world: World) -> None:
    result = cli(world, world.alice_key, "run", "slow_logger", "-p", "steps=2", "-p", "delay=0.1")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == 2
    assert "step 0" in result.stderr and "step 1" in result.stderr


def test_remote_run_errors(world: World) -> None:
    failed = cli(world, world.alice_key, "run", "user_fails")
    assert failed.returncode == 1 and "mailbox is full" in failed.stderr
    invalid = cli(world, world.alice_key, "run", "add", "-p", "a=x")
    assert invalid.returncode == 2 and "a:" in invalid.stderr
    refused = cli(world, world.alice_key, "run", "add", "-p", "a=1", "--org", world.org_b)
    assert refused.returncode == 2 and "organization" in refused.stderr


def test_remote_run_as_admin_in_an_organization(world: World) -> None:
    result = cli(world, world.admin_key, "run", "whoami", "--org", "Org B", "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["result"]["org_name"] == "Org B"
