"""Routes an API key with a scope may reach (the scope is set when the key is created).

A ``notebook`` key is what ``bifrost notebook`` creates for an author's kernel: it runs, trials and
publishes workflows, reads executions and uses the SDK, and nothing else. Even when its user is a
platform admin, a leaked notebook key cannot manage users, roles, organizations, keys, integrations,
schedules, access policies, approvals or settings.
"""

from __future__ import annotations

import re

from app.services.actor import Actor
from app.services.errors import PermissionDeniedError

_NOTEBOOK_ROUTES: tuple[tuple[frozenset[str], re.Pattern[str]], ...] = tuple(
    (frozenset(methods.split()), re.compile(pattern))
    for methods, pattern in (
        ("GET POST PUT PATCH DELETE", r"^/api/sdk/v1/"),  # the SDK, as the key's user
        ("GET POST PUT PATCH DELETE", r"^/api/notebook-runs(/|$)"),  # trial runs from the kernel
        ("POST", r"^/api/publish(/|$)"),  # %bifrost publish
        ("GET", r"^/api/workflows/?$"),
        ("GET", r"^/api/workflows/[^/]+$"),
        ("POST", r"^/api/workflows/[^/]+/execute$"),  # %bifrost run of a platform workflow
        ("GET", r"^/api/data-providers(/|$)"),
        ("GET", r"^/api/executions(/|$)"),
        ("POST", r"^/api/executions/[^/]+/cancel$"),
        ("GET", r"^/api/auth/me$"),
    )
)


def check_key_scope(actor: Actor, method: str, path: str) -> None:
    """Refuse a request its API key's scope does not cover.

    Raises:
        PermissionDeniedError: Naming the scope and what it allows.
    """
    if actor.api_key_scope is None or actor.execution_id is not None:
        return
    if actor.api_key_scope == "notebook" and any(
        method in methods and pattern.match(path) for methods, pattern in _NOTEBOOK_ROUTES
    ):
        return
    raise PermissionDeniedError(
        f"This API key is scoped to {actor.api_key_scope}s: it may run, trial and publish workflows, read "
        f"executions and use the SDK, not {method} {path}. Use a key without a scope (API keys page)."
    )
