"""``@workflow`` and ``@data_provider``.

Both register the function in :mod:`bifrost._registry` and return it
unchanged, so ``await create_user(...)`` still works in a plain test. All the
metadata comes from the signature and the Google-style docstring; errors in a
definition are raised at decoration time, naming the function and parameter.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any, TypeVar, overload

from bifrost import _registry
from bifrost._definitions import WorkflowDefinition
from bifrost._docstrings import parse_docstring
from bifrost._schema import infer_parameters
from bifrost.errors import WorkflowDefinitionError

F = TypeVar("F", bound=Callable[..., Any])

HTTP_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
ACCESS_LEVELS = ("everyone", "admins")
EXECUTION_MODES = ("sync", "async")


def _source_file(func: Callable[..., Any]) -> str | None:
    try:
        return inspect.getsourcefile(func)
    except TypeError:
        return None


def _require_async(func: Any, kind: str) -> None:
    if not callable(func):
        raise WorkflowDefinitionError(f"@{kind} must decorate a function, got {func!r}")
    if not inspect.iscoroutinefunction(func):
        raise WorkflowDefinitionError(
            f"@{kind} {getattr(func, '__qualname__', func)!r} must be an async function: write `async def`"
        )


def _check_options(qualname: str, opts: dict[str, Any]) -> None:
    where = f"@workflow {qualname!r}"
    mode = opts["execution_mode"]
    if mode is not None and mode not in EXECUTION_MODES:
        raise WorkflowDefinitionError(f"{where}: execution_mode must be 'sync' or 'async', got {mode!r}")
    timeout = opts["timeout_seconds"]
    if not isinstance(timeout, int) or isinstance(timeout, bool) or timeout <= 0:
        raise WorkflowDefinitionError(f"{where}: timeout_seconds must be a positive integer, got {timeout!r}")
    tags = opts["tags"]
    if not isinstance(tags, (list, tuple)) or not all(isinstance(t, str) for t in tags):
        raise WorkflowDefinitionError(f"{where}: tags must be a list of strings")
    methods = opts["allowed_methods"]
    if not isinstance(methods, (list, tuple)) or not methods:
        raise WorkflowDefinitionError(f"{where}: allowed_methods must be a non-empty list such as ['POST']")
    for method in methods:
        if not isinstance(method, str) or method.upper() not in HTTP_METHODS:
            raise WorkflowDefinitionError(f"{where}: allowed_methods has {method!r}; use {', '.join(HTTP_METHODS)}")
    schedule = opts["schedule"]
    if schedule is not None and (not isinstance(schedule, str) or len(schedule.split()) not in (5, 6)):
        raise WorkflowDefinitionError(
            f"{where}: schedule must be a cron expression such as '0 9 * * *', got {schedule!r}"
        )
    time_saved = opts["time_saved"]
    if not isinstance(time_saved, int) or time_saved < 0:
        raise WorkflowDefinitionError(f"{where}: time_saved must be a whole number of minutes >= 0")
    name = opts["name"]
    if name is not None and (not isinstance(name, str) or not name.strip()):
        raise WorkflowDefinitionError(f"{where}: name must be a non-empty string")
    if not isinstance(opts["needs_approval"], bool):
        raise WorkflowDefinitionError(f"{where}: needs_approval must be True or False")


def _access(qualname: str, access: Any) -> tuple[str, list[str]]:
    """``access=`` as ``(level, role names)``: "everyone", "admins", or a list of role names."""
    if isinstance(access, str):
        if access not in ACCESS_LEVELS:
            raise WorkflowDefinitionError(
                f"@workflow {qualname!r}: access must be 'everyone', 'admins' or a list of role names, got {access!r}"
            )
        return access, []
    if isinstance(access, (list, tuple)) and access and all(isinstance(r, str) and r.strip() for r in access):
        return "roles", list(dict.fromkeys(r.strip() for r in access))
    raise WorkflowDefinitionError(
        f"@workflow {qualname!r}: access must be 'everyone', 'admins' or a non-empty list of role names"
    )


@overload
def workflow(func: F, /) -> F: ...
@overload
def workflow(
    func: None = None,
    /,
    *,
    name: str | None = None,
    description: str | None = None,
    category: str = "General",
    tags: list[str] | None = None,
    execution_mode: str | None = None,
    timeout_seconds: int = 1800,
    schedule: str | None = None,
    endpoint_enabled: bool = False,
    allowed_methods: list[str] | None = None,
    public_endpoint: bool = False,
    is_tool: bool = False,
    tool_description: str | None = None,
    time_saved: int = 0,
    access: str | list[str] = "everyone",
    needs_approval: bool = False,
) -> Callable[[F], F]: ...


def workflow(
    func: Any = None,
    /,
    *,
    name: str | None = None,
    description: str | None = None,
    category: str = "General",
    tags: list[str] | None = None,
    execution_mode: str | None = None,
    timeout_seconds: int = 1800,
    schedule: str | None = None,
    endpoint_enabled: bool = False,
    allowed_methods: list[str] | None = None,
    public_endpoint: bool = False,
    is_tool: bool = False,
    tool_description: str | None = None,
    time_saved: int = 0,
    access: str | list[str] = "everyone",
    needs_approval: bool = False,
) -> Any:
    """Register an async function as an executable workflow.

    Usable bare (``@workflow``) or with options (``@workflow(category=...)``).

    Args:
        func: The function, when used bare.
        name: Unique name; defaults to the function name.
        description: Defaults to the docstring's description.
        category: Category shown in the catalogue.
        tags: Tags for filtering.
        execution_mode: ``"sync"`` or ``"async"``; None (auto) means sync when
            ``endpoint_enabled`` else async.
        timeout_seconds: Hard limit; the worker is killed past it.
        schedule: Cron expression.
        endpoint_enabled: Expose as ``/api/endpoints/<name>``.
        allowed_methods: HTTP methods of the endpoint.
        public_endpoint: Skip authentication on the endpoint.
        is_tool: Offer the workflow to the chat assistant as a tool.
        tool_description: Description given to the LLM (defaults to description).
        time_saved: Minutes of manual work one run saves.
        access: Beyond the spec: who may see and run it by default: ``"everyone"`` of an
            organization, ``"admins"`` (platform admins only) or a list of role names. A platform
            admin can override it on the workflow page (docs/access.md).
        needs_approval: Beyond the spec: each run waits for an approver before any code runs.

    Returns:
        The function itself (unchanged), or a decorator when called with options.
    """
    # Checked as given (a bare string is not a list of tags), copied once valid.
    opts: dict[str, Any] = {
        "name": name,
        "execution_mode": execution_mode,
        "timeout_seconds": timeout_seconds,
        "tags": tags if tags is not None else [],
        "allowed_methods": allowed_methods if allowed_methods is not None else ["POST"],
        "schedule": schedule,
        "time_saved": time_saved,
        "needs_approval": needs_approval,
    }

    def decorate(fn: F) -> F:
        _require_async(fn, "workflow")
        _check_options(fn.__qualname__, opts)
        level, roles = _access(fn.__qualname__, access)
        doc_description, _ = parse_docstring(fn.__doc__)
        model, specs, schema = infer_parameters(fn, kind="workflow")
        definition = WorkflowDefinition(
            kind="workflow",
            name=(name or fn.__name__).strip(),
            description=description or doc_description,
            func=fn,
            params_model=model,
            parameters=specs,
            params_schema=schema,
            module=fn.__module__,
            source_file=_source_file(fn),
            category=category or "General",
            tags=list(opts["tags"]),
            execution_mode=execution_mode or ("sync" if endpoint_enabled else "async"),
            execution_mode_explicit=execution_mode is not None,
            timeout_seconds=timeout_seconds,
            schedule=schedule,
            endpoint_enabled=bool(endpoint_enabled),
            allowed_methods=[m.upper() for m in opts["allowed_methods"]],
            public_endpoint=bool(public_endpoint),
            is_tool=bool(is_tool),
            tool_description=tool_description,
            time_saved=time_saved,
            access=level,
            access_roles=roles,
            needs_approval=needs_approval,
        )
        fn.__bifrost_definition__ = definition  # type: ignore[attr-defined]
        _registry.register(definition)
        return fn

    if func is not None:
        return decorate(func)
    return decorate


@overload
def data_provider(func: F, /) -> F: ...
@overload
def data_provider(
    func: None = None,
    /,
    *,
    name: str | None = None,
    description: str | None = None,
    cache_ttl_seconds: int = 300,
) -> Callable[[F], F]: ...


def data_provider(
    func: Any = None,
    /,
    *,
    name: str | None = None,
    description: str | None = None,
    cache_ttl_seconds: int = 300,
) -> Any:
    """Register an async function that returns options for form fields.

    The function returns a list of ``{"label", "value", "metadata"?}``
    dicts. It may take parameters (other fields' values, for cascading
    dropdowns).

    Args:
        func: The function, when used bare.
        name: Unique identifier; defaults to the function name.
        description: Defaults to the docstring's description.
        cache_ttl_seconds: How long forms may cache the options, per
            organization and inputs.

    Returns:
        The function itself (unchanged), or a decorator.
    """
    if not isinstance(cache_ttl_seconds, int) or cache_ttl_seconds < 0:
        raise WorkflowDefinitionError(
            f"@data_provider: cache_ttl_seconds must be an integer >= 0, got {cache_ttl_seconds!r}"
        )

    def decorate(fn: F) -> F:
        _require_async(fn, "data_provider")
        doc_description, _ = parse_docstring(fn.__doc__)
        model, specs, schema = infer_parameters(fn, kind="data provider")
        definition = WorkflowDefinition(
            kind="data_provider",
            name=(name or fn.__name__).strip(),
            description=description or doc_description,
            func=fn,
            params_model=model,
            parameters=specs,
            params_schema=schema,
            module=fn.__module__,
            source_file=_source_file(fn),
            category="Data Providers",
            timeout_seconds=60,
            cache_ttl_seconds=cache_ttl_seconds,
        )
        fn.__bifrost_definition__ = definition  # type: ignore[attr-defined]
        _registry.register(definition)
        return fn

    if func is not None:
        return decorate(func)
    return decorate
