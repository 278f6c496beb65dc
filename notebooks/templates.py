"""The notebook a new Bifrost notebook starts from: ``%load_ext bifrost``, connect, an example workflow."""

from __future__ import annotations

import re
from typing import Any

import nbformat

KERNEL_NAME = "python3"  # ipykernel's own kernelspec, which every install has

EXAMPLE = '''import logging

from bifrost import context, workflow

logger = logging.getLogger(__name__)


@workflow(category="Notebook")
async def {name}(name: str = "World") -> dict:
    """Say hello from a notebook.

    Args:
        name: Who to greet.
    """
    logger.info("Greeting %s in %s", name, context.org_name)
    return {{"greeting": f"Hello {{name}}", "org": context.org_name}}'''


def workflow_name(text: str | None) -> str:
    """A valid Python name for the example workflow (``my workflow`` → ``my_workflow``)."""
    name = re.sub(r"\W", "_", (text or "").strip()).strip("_").lower() or "my_workflow"
    return f"wf_{name}" if name[0].isdigit() else name


def new_notebook(name: str | None = None) -> Any:
    """A new notebook (nbformat v4) that connects, defines an example workflow, trials and publishes it.

    Args:
        name: Name of the example workflow (made a valid identifier).
    """
    wf = workflow_name(name)
    cells = [
        nbformat.v4.new_markdown_cell(
            f"# {wf}\n\nWrite a workflow, trial it on the platform, then publish it. "
            "The first cell connects (the Launcher's *Bifrost workflow* card runs it for you): `%bifrost connect` "
            "uses `BIFROST_URL` / `BIFROST_API_KEY`, which `bifrost notebook` sets; without them it starts an "
            "embedded platform."
        ),
        nbformat.v4.new_code_cell("%load_ext bifrost\n%bifrost connect"),
        nbformat.v4.new_code_cell(EXAMPLE.format(name=wf)),
        nbformat.v4.new_code_cell(f"%bifrost run {wf} name=Ada"),
        nbformat.v4.new_code_cell(f"%bifrost form {wf}"),
        nbformat.v4.new_markdown_cell(
            "When it works, publish it into the platform's workspace (platform admins): it becomes a form, "
            "an endpoint and a tool like any other workflow."
        ),
        nbformat.v4.new_code_cell(f"# %bifrost publish {wf}"),
    ]
    notebook = nbformat.v4.new_notebook(cells=cells)
    notebook.metadata["kernelspec"] = {"name": KERNEL_NAME, "display_name": "Python 3", "language": "python"}
    return notebook
