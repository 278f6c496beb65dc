"""The ``bifrost.context`` proxy and the binding of an execution."""

from __future__ import annotations

import asyncio
import contextvars

import pytest

from bifrost import ExecutionContext, Organization, context
from bifrost._context import (
    ContextNotAvailableError,
    PlatformConnection,
    bind_context,
    current_connection,
    current_context,
    set_process_context,
)
from bifrost.testing import fake_context

SPEC_PROPERTIES = [
    "user_id", "email", "name", "org_id", "org_name", "organization", "scope",
    "execution_id", "is_platform_admin", "is_function_key", "is_global_scope",
]  # fmt: skip


def make(**overrides: object) -> ExecutionContext:
    values: dict[str, object] = {
        "user_id": "u-1",
        "email": "ada@acme.test",
        "name": "Ada",
        "org_id": "org-1",
        "org_name": "Acme",
        "organization": Organization(id="org-1", name="Acme", is_active=True, domain="acme.test"),
        "scope": "org-1",
        "execution_id": "exec-1",
        "is_platform_admin": True,
        "is_function_key": True,
    }
    values.update(overrides)
    return ExecutionContext.model_validate(values)


def test_every_spec_property_reads_the_bound_context() -> None:
    ctx = make()
    with bind_context(ctx) as bound:
        assert bound is ctx
        assert context.user_id == "u-1"
        assert context.email == "ada@acme.test"
        assert context.name == "Ada"
        assert context.org_id == "org-1"
        assert context.org_name == "Acme"
        assert context.organization == Organization(id="org-1", name="Acme", is_active=True, domain="acme.test")
        assert context.scope == "org-1"
        assert context.execution_id == "exec-1"
        assert context.is_platform_admin is True
        assert context.is_function_key is True
        assert context.is_global_scope is False
        assert sorted(dir(context)) == sorted(SPEC_PROPERTIES)


def test_global_scope() -> None:
    with bind_context(make(org_id=None, org_name=None, organization=None, scope="GLOBAL")):
        assert context.is_global_scope is True
        assert context.org_id is None
        assert context.organization is None


@pytest.mark.parametrize("prop", SPEC_PROPERTIES)
def test_reading_outside_an_execution_raises_a_clear_error(prop: str) -> None:
    with pytest.raises(ContextNotAvailableError) as info:
        getattr(context, prop)
    message = str(info.value)
    assert f"bifrost.context.{prop}" in message
    assert "fake_context" in message
    assert current_context() is None


def test_unknown_property_is_an_attribute_error_inside_and_outside() -> None:
    with pytest.raises(AttributeError, match=r"no property 'org'.*org_id"):
        context.org  # noqa: B018
    # Probes such as IPython's display hooks must see a plain AttributeError.
    assert not hasattr(context, "_repr_html_")
    with fake_context():
        with pytest.raises(AttributeError, match="no property 'tenant'"):
            context.tenant  # noqa: B018


def test_context_is_read_only() -> None:
    with fake_context(), pytest.raises(AttributeError, match="read-only"):
        context.org_id = "other"  # type: ignore[misc]


def test_repr_says_whether_something_is_bound() -> None:
    assert repr(context) == "<bifrost.context (no execution bound)>"
    with fake_context(user_id="u-42"):
        assert "u-42" in repr(context)


def test_nested_binding_restores_the_outer_one() -> None:
    with bind_context(make(execution_id="outer")):
        with bind_context(make(execution_id="inner", org_id="org-2")):
            assert (context.execution_id, context.org_id) == ("inner", "org-2")
        assert (context.execution_id, context.org_id) == ("outer", "org-1")
    assert current_context() is None


def test_binding_is_restored_when_the_block_raises() -> None:
    with pytest.raises(RuntimeError, match="boom"), bind_context(make()):
        raise RuntimeError("boom")
    assert current_context() is None


async def test_concurrent_tasks_see_their_own_context() -> None:
    seen: dict[str, list[str]] = {}

    async def run(execution_id: str) -> None:
        with bind_context(make(execution_id=execution_id)):
            seen[execution_id] = []
            for _ in range(3):
                seen[execution_id].append(context.execution_id)
                await asyncio.sleep(0)

    await asyncio.gather(run("a"), run("b"))
    assert seen == {"a": ["a", "a", "a"], "b": ["b", "b", "b"]}


def test_connection_is_bound_with_the_context() -> None:
    connection = PlatformConnection("http://worker.test", "tok")
    assert current_connection() is None
    with bind_context(make(), connection):
        assert current_connection() is connection
    assert current_connection() is None


def test_process_wide_fallback_survives_a_fresh_contextvars_context() -> None:
    def read_in_fresh_context() -> str | None:
        # IPython kernels run each cell in a fresh contextvars.Context.
        ctx = contextvars.Context().run(current_context)
        return ctx.execution_id if ctx else None

    with bind_context(make(execution_id="cell-1")):
        assert read_in_fresh_context() is None, "a normal binding is per context"
    with bind_context(make(execution_id="kernel"), process_wide=True):
        assert read_in_fresh_context() == "kernel"
        # A per-context binding wins over the process-wide fallback.
        with bind_context(make(execution_id="inner")):
            assert context.execution_id == "inner"
            assert read_in_fresh_context() == "kernel"
    assert read_in_fresh_context() is None


def test_set_process_context_installs_and_clears_the_fallback() -> None:
    connection = PlatformConnection("http://127.0.0.1:9")
    set_process_context(make(execution_id="nb"), connection)
    try:
        assert contextvars.Context().run(lambda: context.execution_id) == "nb"
        assert contextvars.Context().run(current_connection) is connection
    finally:
        set_process_context(None)
    with pytest.raises(ContextNotAvailableError):
        context.execution_id  # noqa: B018
