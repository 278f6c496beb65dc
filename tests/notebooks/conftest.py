"""Notebook tests: real kernels (nbclient + ipykernel) against a live platform over loopback."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nbformat
import pytest
from nbclient import NotebookClient

from tests.platform.authoring_support import make_author
from tests.platform.conftest import World, start_world

EXAMPLES = Path(__file__).resolve().parents[2] / "notebooks" / "examples"
# Per cell, and below pytest's 120 s per test: a cell that hangs fails with its own source in the
# error (nbclient's CellTimeoutError) instead of an anonymous pytest timeout. Cells take seconds.
KERNEL_TIMEOUT_SECONDS = 45


@pytest.fixture(scope="session")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """One seeded live server (SQLite) shared by the notebook tests of a test process.

    Starting a platform costs seconds; the tests use their own workflow names, so they can share one.
    """
    w = start_world(tmp_path_factory.mktemp("world"))
    try:
        # Notebook runs are for authors: Alice and Bob hold a role that grants authoring.
        make_author(w, w.alice_id, w.org_a)
        make_author(w, w.bob_id, w.org_b)
        yield w
    finally:
        w.server.stop()


def kernel_env(url: str | None, key: str | None, **extra: str) -> dict[str, str]:
    """The kernel's environment: ours without BIFROST_* (so nothing leaks in), then the platform to use."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("BIFROST_")}
    if url:
        env["BIFROST_URL"] = url
    if key:
        env["BIFROST_API_KEY"] = key
    env.update(extra)
    return env


def code_notebook(*cells: str) -> Any:
    """A notebook of code cells."""
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    return nb


def execute(nb: Any, env: dict[str, str], cwd: Path, *, allow_errors: bool = False) -> Any:
    """Run every cell on a fresh python3 kernel (the venv's interpreter) and return the notebook with outputs."""
    client = NotebookClient(
        nb, timeout=KERNEL_TIMEOUT_SECONDS, kernel_name="python3", allow_errors=allow_errors, resources={}
    )
    client.execute(env=env, cwd=str(cwd))
    return nb


def outputs(cell: Any) -> list[dict[str, Any]]:
    """The outputs of a cell."""
    return list(cell.get("outputs", []))


def text_of(cell: Any) -> str:
    """Everything a cell printed or returned as text (streams, text/plain, errors)."""
    parts: list[str] = []
    for out in outputs(cell):
        if out["output_type"] == "stream":
            parts.append(out["text"])
        elif out["output_type"] == "error":
            parts.append(f"{out['ename']}: {out['evalue']}")
        else:
            parts.append(out.get("data", {}).get("text/plain", ""))
    return "\n".join(parts)


def html_of(cell: Any) -> str:
    """The text/html outputs of a cell."""
    return "\n".join(out.get("data", {}).get("text/html", "") for out in outputs(cell))


def errors_of(nb: Any) -> list[str]:
    """Error outputs of every cell, as ``ename: evalue``."""
    return [f"{o['ename']}: {o['evalue']}" for c in nb.cells for o in outputs(c) if o["output_type"] == "error"]
