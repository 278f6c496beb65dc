"""``%bifrost run NAME`` for a workflow that is on the platform but not defined in the notebook.

A workflow defined in the notebook runs in the kernel (``notebooks.runner``). Any other name is
submitted to the platform like a form or ``bifrost run`` would (``POST /api/workflows/{name}/execute``,
the one submit path, so access rules and approvals hold), its log lines are followed live over the
execution's event stream and echoed in the cell in the same format, and the stored execution comes
back as the same :class:`~notebooks.runner.RunResult` (a table for a list of objects).
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable
from datetime import datetime
from typing import Any

from bifrost import _registry
from bifrost.errors import NotFoundError, ValidationError
from notebooks import session
from notebooks.runner import RunResult, run_workflow

AWAITING_APPROVAL = "AwaitingApproval"


def defined_in_notebook(workflow: str | Callable[..., Any]) -> bool:
    """True for a decorated function, or a name a cell of this kernel defined."""
    if callable(workflow):
        return True
    return any(_registry.get(workflow, kind) is not None for kind in ("workflow", "data_provider"))


def _echo(line: dict[str, Any]) -> None:
    try:
        stamp = datetime.fromisoformat(line["timestamp"]).astimezone().strftime("%H:%M:%S")
    except (KeyError, TypeError, ValueError):
        stamp = "--:--:--"
    sys.stdout.write(f"{stamp} {line.get('level', 'INFO'):<7} {line.get('logger', '')}: {line.get('message', '')}\n")
    sys.stdout.flush()


async def run_on_platform(
    name: str, params: dict[str, Any] | None = None, *, org: str | None = None, echo: bool = True
) -> RunResult:
    """Run a workflow of the platform's workspace, echo its log live, and return the stored outcome.

    Args:
        name: The workflow's name on the platform.
        params: Parameter values (text is coerced by the platform's validation, like a form's).
        org: Organization to run in (platform admins).
        echo: Print the log lines as they arrive.

    Raises:
        ValidationError: No such workflow in the notebook or on the platform, or bad parameters.
    """
    client = session.current().client
    try:
        accepted = await client.execute(name, params or {}, org)
    except NotFoundError:
        raise ValidationError(
            f"No workflow named {name!r} is defined in this notebook or on the platform at {client.url}: "
            "run the cell that defines it, or see `%bifrost workflows`."
        ) from None
    execution_id = accepted["execution_id"]
    if accepted.get("status") == AWAITING_APPROVAL:
        if echo:
            print(f"{name} waits for approval (execution {execution_id}); it runs once an approver accepts it.")
        return RunResult(name=name, execution_id=execution_id, status=AWAITING_APPROVAL)
    lines: list[dict[str, Any]] = []
    try:
        async for event, data in client.stream(execution_id):
            if event == "log":
                lines.append(data)
                if echo:
                    _echo(data)
    except (asyncio.CancelledError, KeyboardInterrupt):  # Kernel > Interrupt: stop the run too
        task = asyncio.current_task()
        if task is not None and task.cancelling():
            task.uncancel()
        await client.cancel(execution_id)
        raise
    stored = await client.execution(execution_id)
    return RunResult(
        name=name,
        execution_id=execution_id,
        status=stored["status"],
        result=stored.get("result"),
        error_message=stored.get("error_message"),
        error_type=stored.get("error_type"),
        traceback=stored.get("traceback"),
        duration_ms=stored.get("duration_ms"),
        logs=lines,
    )


async def run(
    workflow: str | Callable[..., Any],
    params: dict[str, Any] | None = None,
    *,
    org: str | None = None,
    echo: bool = True,
) -> RunResult:
    """A workflow defined in the notebook runs in the kernel; any other name runs on the platform."""
    if defined_in_notebook(workflow):
        return await run_workflow(workflow, params, org=org, echo=echo)
    return await run_on_platform(str(workflow), params, org=org, echo=echo)
