"""``bifrost.testing``: what authors use to unit-test their workflows."""

from __future__ import annotations

import datetime as dt
import uuid

import httpx
import pytest
from pydantic import BaseModel

import bifrost
from bifrost import (
    ConfigType,
    ExecutionContext,
    Organization,
    ValidationError,
    config,
    context,
    data_provider,
    workflow,
)
from bifrost._context import ContextNotAvailableError, current_context
from bifrost.errors import ConfigurationError, NotAvailableError
from bifrost.testing import DEFAULT_CONTEXT, FakeConfig, fake_config, fake_context, make_context, run_workflow


class Customer(BaseModel):
    name: str
    revenue: int = 0


# --- fake_context ---------------------------------------------------------------------------


def test_fake_context_defaults_bind_a_real_execution_context() -> None:
    with fake_context() as ctx:
        assert isinstance(ctx, ExecutionContext)
        assert current_context() is ctx
        assert context.user_id == DEFAULT_CONTEXT["user_id"] == "test-user"
        assert context.email == "test.user@example.com"
        assert context.name == "Test User"
        assert context.org_id == "test-org"
        assert context.org_name == "Test Organization"
        assert context.organization == Organization(
            id="test-org", name="Test Organization", is_active=True, domain=None
        )
        assert context.scope == "test-org"
        assert context.is_global_scope is False
        assert context.is_platform_admin is False
        assert context.is_function_key is False
        assert str(uuid.UUID(context.execution_id)) == context.execution_id
    assert current_context() is None
    with pytest.raises(ContextNotAvailableError):
        context.user_id  # noqa: B018


def test_each_fake_context_gets_a_fresh_execution_id() -> None:
    assert make_context().execution_id != make_context().execution_id


def test_fake_context_overrides_and_derived_fields() -> None:
    with fake_context(org_id="acme", org_name="Acme", email="ops@acme.test", is_platform_admin=True) as ctx:
        assert (context.org_id, context.org_name, context.scope) == ("acme", "Acme", "acme")
        assert context.organization == Organization(id="acme", name="Acme", is_active=True, domain=None)
        assert context.email == "ops@acme.test" and context.is_platform_admin is True
        assert ctx.user_id == "test-user"
    with fake_context(org_id=None):
        assert (context.org_id, context.org_name, context.organization) == (None, None, None)
        assert context.scope == "GLOBAL" and context.is_global_scope is True
    org = Organization(id="o-9", name="Nine", is_active=False, domain="nine.test")
    with fake_context(org_id="o-9", organization=org, scope="GLOBAL", execution_id="exec-1"):
        assert context.organization is not None and context.organization.domain == "nine.test"
        assert context.is_global_scope is True
        assert context.execution_id == "exec-1"


def test_fake_context_refuses_unknown_fields() -> None:
    with pytest.raises(TypeError, match=r"unknown context field.*org_idd"):
        make_context(org_idd="x")
    with pytest.raises(TypeError, match="scope='GLOBAL'"):
        make_context(is_global_scope=True)
    with pytest.raises(Exception, match="is_platform_admin"):
        make_context(is_platform_admin="definitely")


def test_nested_fake_contexts_restore_the_outer_one() -> None:
    with fake_context(user_id="outer"):
        with fake_context(user_id="inner"):
            assert context.user_id == "inner"
        assert context.user_id == "outer"


# --- run_workflow ---------------------------------------------------------------------------


@workflow(category="Testing")
async def onboard(email: str, seats: int, start: dt.date, customer: Customer, notify: bool = False) -> dict:
    """Onboard a customer.

    Args:
        email: Contact email.
        seats: Number of seats.
    """
    return {
        "email": email,
        "seats": seats,
        "start": start,
        "customer": customer,
        "notify": notify,
        "org": context.org_id,
        "by": context.user_id,
    }


@data_provider(name="seat_options")
async def seat_sizes(maximum: int = 3) -> list[dict]:
    """Seat counts to choose from."""
    return [{"label": str(n), "value": n, "org": context.org_id} for n in range(1, maximum + 1)]


VALID = {"email": "a@b.c", "seats": "5", "start": "2024-03-01", "customer": {"name": "Acme", "revenue": "10"}}


async def test_run_workflow_coerces_params_like_the_platform() -> None:
    result = await run_workflow(onboard, VALID)
    assert result["seats"] == 5
    assert result["start"] == dt.date(2024, 3, 1)
    # Nested models arrive as model instances, not dicts.
    assert result["customer"] == Customer(name="Acme", revenue=10)
    assert result["notify"] is False
    assert (result["org"], result["by"]) == ("test-org", "test-user")
    assert current_context() is None


async def test_run_workflow_with_context_overrides() -> None:
    result = await run_workflow(onboard, {**VALID, "notify": "true"}, org_id="acme", user_id="u-7")
    assert (result["org"], result["by"], result["notify"]) == ("acme", "u-7", True)


async def test_run_workflow_keeps_an_enclosing_fake_context() -> None:
    with fake_context(org_id="outer-org"):
        assert (await run_workflow(onboard, VALID))["org"] == "outer-org"
        assert (await run_workflow(onboard, VALID, org_id="other"))["org"] == "other"
        assert context.org_id == "outer-org"


async def test_run_workflow_by_name_and_data_providers() -> None:
    assert (await run_workflow("onboard", VALID, org_id="by-name"))["org"] == "by-name"
    options = await run_workflow("seat_options", {"maximum": "2"})
    assert options == [{"label": "1", "value": 1, "org": "test-org"}, {"label": "2", "value": 2, "org": "test-org"}]
    assert len(await run_workflow(seat_sizes)) == 3


async def test_run_workflow_reports_invalid_params_per_field() -> None:
    with pytest.raises(ValidationError) as info:
        await run_workflow(onboard, {"email": "a@b.c", "seats": "many", "start": "someday", "customer": {}, "x": 1})
    messages = {e["field"]: e["message"] for e in info.value.errors}
    assert set(messages) == {"seats", "start", "customer.name", "x"}
    assert "valid integer" in messages["seats"]
    assert "valid date" in messages["start"]
    assert messages["customer.name"] == "this parameter is required"
    assert messages["x"] == "unknown parameter"
    with pytest.raises(ValidationError, match="email: this parameter is required"):
        await run_workflow(onboard)


async def test_run_workflow_refuses_what_is_not_a_workflow() -> None:
    async def plain() -> None: ...

    with pytest.raises(TypeError, match="not decorated with @workflow"):
        await run_workflow(plain)
    with pytest.raises(LookupError, match="'no_such_workflow'"):
        await run_workflow("no_such_workflow")


async def test_exceptions_of_the_workflow_propagate_and_unbind() -> None:
    @workflow
    async def failing() -> None:
        raise bifrost.UserError("Customer already exists")

    with pytest.raises(bifrost.UserError, match="Customer already exists"):
        await run_workflow(failing)
    assert current_context() is None


# --- fake_config ----------------------------------------------------------------------------


async def test_fake_config_get_set_list_delete() -> None:
    with fake_config({"api_url": "https://api.test"}, secrets={"api_key": "sk_test"}) as store:
        assert isinstance(store, FakeConfig)
        assert await config.get("api_url") == "https://api.test"
        assert await config.get("api_key") == "sk_test"
        assert await config.get("missing") is None
        assert await config.get("missing", default=42) == 42
        await config.set("retries", 3)
        await config.set("token", "t0k", is_secret=True)
        await config.set("mapping", {"a": [1, 2]})
        assert await config.get("retries") == 3
        assert await config.get("mapping") == {"a": [1, 2]}
        assert await config.list() == {
            "api_url": "https://api.test",
            "api_key": FakeConfig.SECRET_MASK,
            "retries": 3,
            "token": FakeConfig.SECRET_MASK,
            "mapping": {"a": [1, 2]},
        }
        assert await config.delete("retries") is True
        assert await config.delete("retries") is False
        assert await config.get("retries", default="gone") == "gone"
        # Overwriting a secret as plain makes it plain.
        await config.set("token", "public")
        assert (await config.list())["token"] == "public"
    assert store.values == {
        "api_url": "https://api.test",
        "api_key": "sk_test",
        "token": "public",
        "mapping": {"a": [1, 2]},
    }
    assert store.secrets == {"api_key"}


async def test_fake_config_values_inside_a_workflow() -> None:
    @workflow
    async def sync_customers(batch: int = 10) -> str:
        base = await config.get("api_url", default="https://default")
        await config.set("last_batch", batch)
        return f"{base}/customers?limit={batch}&org={context.org_id}"

    with fake_config({"api_url": "https://crm.test"}) as store:
        assert (
            await run_workflow(sync_customers, {"batch": "25"}, org_id="acme")
            == "https://crm.test/customers?limit=25&org=acme"
        )
    assert store.values["last_batch"] == 25


async def test_fake_config_keys_with_special_characters() -> None:
    with fake_config() as store:
        await config.set("halo/api url", "x")
        assert await config.get("halo/api url") == "x"
        assert await config.delete("halo/api url") is True
    assert store.values == {}


async def test_fake_config_types_and_json_values() -> None:
    fake = FakeConfig({"flag": True, "n": 1, "obj": {"a": 1}, "s": "x"}, secrets={"k": "v"})
    types = {key: fake._entry(key)["type"] for key in fake.values}
    assert types == {
        "flag": ConfigType.BOOL,
        "n": ConfigType.INT,
        "obj": ConfigType.JSON,
        "s": ConfigType.STRING,
        "k": ConfigType.SECRET,
    }
    with pytest.raises(TypeError, match="'when' must be JSON-serialisable"):
        FakeConfig({"when": dt.date(2024, 1, 1)})


async def test_other_sdk_calls_inside_fake_config_are_not_available() -> None:
    with fake_config(), pytest.raises(NotAvailableError, match=r"only fakes bifrost.config.*/tables"):
        await bifrost.tables.list()


async def test_fake_config_wins_over_configure_and_restores_routing() -> None:
    calls: list[httpx.Request] = []

    def real_platform(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        return httpx.Response(200, json={"value": "from-platform"})

    bifrost.configure("http://platform.test", "k", transport=httpx.MockTransport(real_platform))
    with fake_config({"x": "from-fake"}):
        assert await config.get("x") == "from-fake"
        with fake_config({"x": "inner"}):
            assert await config.get("x") == "inner"
        assert await config.get("x") == "from-fake"
    assert calls == []
    assert await config.get("x") == "from-platform"
    bifrost.configure()
    with pytest.raises(ConfigurationError):
        await config.get("x")


def test_module_docstring_example_runs() -> None:
    import asyncio

    import bifrost.testing as testing_module

    source = testing_module.__doc__ or ""
    code = source.split("Example::", 1)[1].split("The fakes are process-wide", 1)[0]
    namespace: dict[str, object] = {"__name__": "docstring_example"}
    exec(compile(_dedent(code), "<bifrost.testing example>", "exec"), namespace)
    asyncio.run(namespace["test_greet"]())  # type: ignore[arg-type]


def _dedent(text: str) -> str:
    import textwrap

    return textwrap.dedent(text.strip("\n"))


async def test_fake_config_leaves_no_cached_client_behind() -> None:
    from bifrost import _client

    def cached() -> int:
        return sum(len(per_loop) for per_loop in _client._clients.values())

    before = cached()
    for _ in range(3):
        with fake_config({"x": 1}):
            assert await config.get("x") == 1
            assert cached() == before + 1
    assert cached() == before
