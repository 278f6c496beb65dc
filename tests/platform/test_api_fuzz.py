"""Property-based fuzzing of the JSON API from its own OpenAPI document: bad input is a 4xx, never a 500."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.platform.conftest import World


# Every operation of the API is fuzzed: with ~120 operations this takes minutes, not the default 120 s.
@pytest.mark.timeout(900)
def test_no_input_makes_the_api_fail_with_a_server_error(world: World, tmp_path: Path) -> None:
    cli = shutil.which("schemathesis") or str(Path(sys.executable).parent / "schemathesis")
    result = subprocess.run(
        [
            cli, "run", f"{world.server.url}/schema/openapi.json",
            "-H", f"Authorization: Bearer {world.admin_key}",
            "--checks", "not_a_server_error",
            "--max-examples", "12",
            "--seed", "20261129",  # reproducible; failures print a curl line to replay
            "--no-color",
        ],
        capture_output=True, text=True, timeout=600, cwd=tmp_path,
        env={**os.environ, "SCHEMATHESIS_HOOKS": ""},
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
    assert "passed" in result.stdout
