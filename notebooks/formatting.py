"""Make the module ``%bifrost publish`` writes pass ``ruff check`` and ``ruff format --check``.

The settings are the project's (``[tool.ruff]`` of pyproject.toml; ``tests/notebooks`` checks a
published file against that file, so the two cannot drift apart unnoticed). Ruff is a dependency of
the product; it runs as a subprocess on the text (stdin to stdout), isolated from any configuration
file near the kernel's working folder. Safe fixes only (imports sorted, old syntax upgraded), then the
formatter; what ruff cannot fix is reported to the author, never silently changed.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass, field

# The project's [tool.ruff] settings that matter for one module of the workspace.
RUFF_SETTINGS = (
    "line-length = 120",
    'target-version = "py311"',
    'lint.select = ["E", "F", "W", "I", "B", "UP", "ASYNC", "RUF"]',
    'lint.ignore = ["E501", "B008", "RUF012", "UP047", "UP046", "ASYNC109", "RUF022"]',
    'lint.isort.known-first-party = ["bifrost", "app", "agents", "notebooks", "tests"]',
)
TIMEOUT_SECONDS = 30


@dataclass
class Formatted:
    """The module after ruff.

    Attributes:
        source: The fixed and formatted text (the input unchanged when ruff is missing or fails).
        findings: What ``ruff check`` still reports (``line:col CODE message``), or why ruff did not run.
    """

    source: str
    findings: list[str] = field(default_factory=list)


def _ruff() -> str | None:
    try:
        from ruff.__main__ import find_ruff_bin
    except ImportError:
        return None
    try:
        return str(find_ruff_bin())
    except FileNotFoundError:
        return None


def _run(ruff: str, *args: str, source: str) -> subprocess.CompletedProcess[str]:
    config = [arg for setting in RUFF_SETTINGS for arg in ("--config", setting)]
    return subprocess.run(
        [ruff, *args, "--isolated", *config, "--stdin-filename", "published.py", "-"],
        input=source,
        capture_output=True,
        text=True,
        timeout=TIMEOUT_SECONDS,
        check=False,
    )


def format_module(source: str) -> Formatted:
    """Sort imports, apply ruff's safe fixes and format ``source`` with the project's settings."""
    ruff = _ruff()
    if ruff is None:
        return Formatted(source, ["ruff is not installed here, so the module is not formatted"])
    try:
        fixed = _run(ruff, "check", "--fix", "--exit-zero", "--quiet", source=source)
        if fixed.returncode != 0:
            return Formatted(source, [f"ruff could not fix the module: {fixed.stderr.strip()}"])
        formatted = _run(ruff, "format", "--quiet", source=fixed.stdout)
        if formatted.returncode != 0:
            return Formatted(fixed.stdout, [f"ruff could not format the module: {formatted.stderr.strip()}"])
        left = _run(ruff, "check", "--output-format", "concise", "--quiet", source=formatted.stdout)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return Formatted(source, [f"ruff did not run: {exc}"])
    findings = [line.removeprefix("published.py:") for line in left.stdout.splitlines() if line.strip()]
    return Formatted(formatted.stdout, findings)
