"""A workflow that attacks another organization from inside an execution (isolation tests)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from bifrost import config, executions, files, forms, roles, tables, workflow


async def _outcome(call: Callable[[], Awaitable[Any]]) -> str:
    """``denied:<Error>`` when the platform refused, else what leaked (or ``empty``)."""
    try:
        value = await call()
    except Exception as exc:  # the refusal is the expected outcome
        return f"denied:{type(exc).__name__}"
    if value in (None, False, 0, [], {}, "default"):
        return "empty"
    if hasattr(value, "documents") and not value.documents:
        return "empty"
    return f"LEAK:{value!r}"


@workflow
async def probe_other_org(org_b: str, execution_id: str, form_id: str, role_id: str) -> dict[str, str]:
    """Try to reach another organization's data with this execution's own SDK token."""
    probes: dict[str, Callable[[], Awaitable[Any]]] = {
        "config.get": lambda: config.get("b_plain", default="default"),
        "config.get secret": lambda: config.get("b_secret", default="default"),
        "config.list": lambda: _only_leaks(config.list()),
        "config.delete": lambda: config.delete("b_plain"),
        "tables.query own scope": lambda: tables.query("b_table"),
        "tables.query scope=B": lambda: tables.query("b_table", scope=org_b),
        "tables.get scope=B": lambda: tables.get("b_table", "b-doc", scope=org_b),
        "tables.count scope=B": lambda: tables.count("b_table", scope=org_b),
        "tables.insert scope=B": lambda: tables.insert("b_table", {"x": 1}, scope=org_b),
        "tables.delete scope=B": lambda: tables.delete("b_table", scope=org_b),
        "tables.list scope=B": lambda: tables.list(scope=org_b),
        "files.read": lambda: files.read("b/file.txt"),
        "files.read traversal": lambda: files.read(f"../../{org_b}/workspace/b/file.txt"),
        "files.exists": lambda: files.exists("b/file.txt"),
        "files.delete": lambda: files.delete("b/file.txt"),
        "executions.get": lambda: executions.get(execution_id),
        "forms.get": lambda: forms.get(form_id),
        "roles.list_forms": lambda: roles.list_forms(role_id),
        "roles.assign_forms": lambda: roles.assign_forms(role_id, [form_id]),
    }
    return {name: await _outcome(call) for name, call in probes.items()}


async def _only_leaks(values: Awaitable[dict[str, Any]]) -> dict[str, Any]:
    return {k: v for k, v in (await values).items() if k.startswith("b_")}
