"""The ``context`` proxy and the binding of an execution to the running code.

Inside an execution the platform binds an :class:`ExecutionContext` with
:func:`bind_context`. ``context.org_id`` and friends read it. Outside any
execution, reading a property raises :class:`ContextNotAvailableError` that
says what to do.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from bifrost.errors import ContextNotAvailableError
from bifrost.types import ExecutionContext

__all__ = [
    "ContextNotAvailableError",
    "PlatformConnection",
    "bind_context",
    "context",
    "current_connection",
    "current_context",
    "set_process_context",
]


@dataclass(frozen=True)
class PlatformConnection:
    """How SDK modules reach the platform: base URL of the server and a bearer token."""

    base_url: str
    token: str | None = None


@dataclass(frozen=True)
class _Binding:
    context: ExecutionContext
    connection: PlatformConnection | None


_current: ContextVar[_Binding | None] = ContextVar("bifrost_execution", default=None)
# Kernel-wide fallback: some hosts (IPython kernels) run each cell in a fresh
# contextvars.Context, which drops ContextVar values between cells.
_fallback: _Binding | None = None

_PROPERTIES = (
    "user_id",
    "email",
    "name",
    "org_id",
    "org_name",
    "organization",
    "scope",
    "execution_id",
    "is_platform_admin",
    "is_function_key",
    "is_global_scope",
)


def _binding() -> _Binding | None:
    return _current.get() or _fallback


def current_context() -> ExecutionContext | None:
    """Return the bound execution context, or None outside an execution."""
    binding = _binding()
    return binding.context if binding else None


def current_connection() -> PlatformConnection | None:
    """Return the platform connection bound with the current execution, if any."""
    binding = _binding()
    return binding.connection if binding else None


@contextlib.contextmanager
def bind_context(
    ctx: ExecutionContext,
    connection: PlatformConnection | None = None,
    *,
    process_wide: bool = False,
) -> Iterator[ExecutionContext]:
    """Bind ``ctx`` (and how to reach the platform) for the code run inside the block.

    Args:
        ctx: The execution context to expose through ``context``.
        connection: Base URL and token the SDK modules use; None keeps the
            connection configured from the environment.
        process_wide: Also install it as the process-wide fallback (used by
            notebooks, where ContextVar values may not survive between cells).

    Yields:
        The bound context.
    """
    global _fallback
    binding = _Binding(ctx, connection)
    token = _current.set(binding)
    previous_fallback = _fallback
    if process_wide:
        _fallback = binding
    try:
        yield ctx
    finally:
        _current.reset(token)
        if process_wide:
            _fallback = previous_fallback


def set_process_context(ctx: ExecutionContext | None, connection: PlatformConnection | None = None) -> None:
    """Install (or clear with None) a process-wide context, for interactive sessions."""
    global _fallback
    _fallback = _Binding(ctx, connection) if ctx is not None else None


class _ContextProxy:
    """Reads attributes of the execution context bound to the running code."""

    __slots__ = ()

    def __getattr__(self, item: str) -> Any:
        # Unknown names are an AttributeError even outside an execution, so that
        # hasattr()/getattr(default) probes (IPython display hooks, mocks, copy)
        # behave normally instead of seeing ContextNotAvailableError.
        if item not in _PROPERTIES:
            raise AttributeError(f"bifrost.context has no property {item!r}; available: {', '.join(_PROPERTIES)}")
        ctx = current_context()
        if ctx is None:
            raise ContextNotAvailableError(
                f"bifrost.context.{item} is only available while a workflow runs on the platform. "
                "Run the workflow through the platform (form, API, `bifrost run`, `%bifrost run`), "
                "or wrap your test in `bifrost.testing.fake_context(...)`."
            )
        return getattr(ctx, item)

    def __setattr__(self, item: str, value: Any) -> None:
        raise AttributeError("bifrost.context is read-only; the platform binds it for each execution")

    def __repr__(self) -> str:
        ctx = current_context()
        return f"<bifrost.context {ctx!r}>" if ctx else "<bifrost.context (no execution bound)>"

    def __dir__(self) -> list[str]:
        return list(_PROPERTIES)


context = _ContextProxy()
