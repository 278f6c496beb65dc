"""Unit-test your own workflows without a platform (``bifrost.testing``).

Three helpers:

* :func:`fake_context` binds a real :class:`~bifrost.types.ExecutionContext`
  so that ``bifrost.context.org_id`` and friends work in a plain test;
* :func:`run_workflow` validates parameters exactly as the platform does
  (``"5"`` becomes ``5``, an ISO string becomes a ``date``, unknown or missing
  parameters raise :class:`~bifrost.errors.ValidationError`) and runs the
  workflow under a fake context;
* :func:`fake_config` makes ``bifrost.config.get/set/list/delete`` work on an
  in-memory store. It answers the SDK's real HTTP calls through an
  ``httpx.MockTransport``, so your code runs the same SDK path as on the
  platform; any other SDK call made inside it raises
  :class:`~bifrost.errors.NotAvailableError`.

Example::

    from bifrost import config, context, workflow
    from bifrost.testing import fake_config, run_workflow


    @workflow
    async def greet(name: str, times: int = 1) -> str:
        greeting = await config.get("greeting", default="Hello")
        return " ".join([f"{greeting} {name} of {context.org_name}"] * times)


    async def test_greet():  # pytest with asyncio_mode = "auto"
        with fake_config({"greeting": "Hi"}):
            result = await run_workflow(greet, {"name": "Ada", "times": "2"}, org_name="Acme")
        assert result == "Hi Ada of Acme Hi Ada of Acme"

The fakes are process-wide while active (not per asyncio task), like the
platform's own per-execution binding is per worker process.
"""

from __future__ import annotations

import contextlib
import json
import uuid
from collections.abc import Callable, Iterator, Mapping
from typing import Any
from urllib.parse import unquote

import httpx

from bifrost import _client, _registry
from bifrost._context import bind_context, current_context
from bifrost._schema import validate_parameters
from bifrost.types import ExecutionContext, Organization

__all__ = ["DEFAULT_CONTEXT", "FakeConfig", "fake_config", "fake_context", "make_context", "run_workflow"]

#: Values :func:`make_context` uses for whatever is not overridden
#: (``execution_id`` is a fresh UUID each time; ``organization`` and ``scope``
#: follow ``org_id``/``org_name``).
DEFAULT_CONTEXT: dict[str, Any] = {
    "user_id": "test-user",
    "email": "test.user@example.com",
    "name": "Test User",
    "org_id": "test-org",
    "org_name": "Test Organization",
    "is_platform_admin": False,
    "is_function_key": False,
}


def make_context(**overrides: Any) -> ExecutionContext:
    """Build an :class:`ExecutionContext` from test defaults and ``overrides``.

    ``scope`` defaults to the ``org_id`` (``"GLOBAL"`` when ``org_id=None``),
    ``organization`` to an active :class:`Organization` made of ``org_id`` and
    ``org_name``, and ``execution_id`` to a fresh UUID.

    Args:
        **overrides: Any field of :class:`ExecutionContext` (``user_id``,
            ``email``, ``name``, ``org_id``, ``org_name``, ``organization``,
            ``scope``, ``execution_id``, ``is_platform_admin``, ``is_function_key``).

    Returns:
        The validated context.

    Raises:
        TypeError: For a name that is not a context field (a typo would
            otherwise be silently ignored).
    """
    fields = set(ExecutionContext.model_fields)
    unknown = sorted(set(overrides) - fields)
    if unknown:
        hint = " (is_global_scope follows scope: pass scope='GLOBAL')" if "is_global_scope" in unknown else ""
        raise TypeError(f"unknown context field(s) {', '.join(unknown)}{hint}; use {', '.join(sorted(fields))}")
    org_id = overrides.get("org_id", DEFAULT_CONTEXT["org_id"])
    default_org_name = DEFAULT_CONTEXT["org_name"] if org_id is not None else None
    org_name = overrides.get("org_name", default_org_name)
    values: dict[str, Any] = {
        **DEFAULT_CONTEXT,
        "org_id": org_id,
        "org_name": org_name,
        "organization": (
            Organization(id=org_id, name=org_name or org_id, is_active=True, domain=None)
            if org_id is not None
            else None
        ),
        "scope": org_id if org_id is not None else "GLOBAL",
        "execution_id": str(uuid.uuid4()),
    }
    values.update(overrides)
    return ExecutionContext.model_validate(values)


@contextlib.contextmanager
def fake_context(**overrides: Any) -> Iterator[ExecutionContext]:
    """Bind a test execution context for the code run inside the block.

    Nested blocks restore the outer context on exit.

    Args:
        **overrides: Context fields to change, see :func:`make_context`.

    Yields:
        The bound :class:`ExecutionContext`.

    Example::

        with fake_context(org_id="acme", is_platform_admin=True) as ctx:
            assert context.org_id == "acme" and ctx.scope == "acme"
    """
    with bind_context(make_context(**overrides)) as ctx:
        yield ctx


def _definition(func_or_name: Callable[..., Any] | str) -> Any:
    if isinstance(func_or_name, str):
        definition = _registry.get(func_or_name, "workflow") or _registry.get(func_or_name, "data_provider")
        if definition is None:
            raise LookupError(
                f"no workflow or data provider named {func_or_name!r} is registered; "
                "import the module that defines it first"
            )
        return definition
    definition = getattr(func_or_name, "__bifrost_definition__", None)
    if definition is None:
        raise TypeError(f"{func_or_name!r} is not decorated with @workflow or @data_provider")
    return definition


async def run_workflow(
    func_or_name: Callable[..., Any] | str,
    params: dict[str, Any] | None = None,
    **ctx_overrides: Any,
) -> Any:
    """Validate ``params`` like the platform, then run the workflow under a fake context.

    Works for data providers too.

    Args:
        func_or_name: The decorated function, or its registered name.
        params: Raw parameters, as a form or the API would send them.
        **ctx_overrides: Context fields for :func:`fake_context`. Without any,
            an already bound context (e.g. an enclosing ``fake_context``) is
            kept; otherwise a default test context is bound.

    Returns:
        Whatever the function returns (not serialised).

    Raises:
        ValidationError: When ``params`` do not match the signature; ``.errors``
            lists ``{"field", "message"}`` per problem, as the platform reports them.
        LookupError: When no workflow is registered under that name.
        TypeError: When the function is not decorated.
    """
    definition = _definition(func_or_name)
    validated = validate_parameters(definition.params_model, params)
    # Pass attributes, not model_dump(): nested pydantic parameters stay model instances.
    kwargs = {name: getattr(validated, name) for name in type(validated).model_fields}
    if not ctx_overrides and current_context() is not None:
        return await definition.func(**kwargs)
    with fake_context(**ctx_overrides):
        return await definition.func(**kwargs)


class FakeConfig:
    """In-memory config store answering the SDK's ``/config`` HTTP calls.

    Attributes:
        values: Current values by key (secrets in clear, for your assertions).
        secrets: Keys stored with ``is_secret=True``.
    """

    #: What ``config.list()`` shows instead of a secret's value.
    SECRET_MASK = "********"

    def __init__(self, values: Mapping[str, Any] | None = None, secrets: Mapping[str, Any] | None = None) -> None:
        self.values: dict[str, Any] = {}
        self.secrets: set[str] = set()
        for key, value in (values or {}).items():
            self.values[key] = _json_value(key, value)
        for key, value in (secrets or {}).items():
            self.values[key] = _json_value(key, value)
            self.secrets.add(key)

    def handle(self, request: httpx.Request) -> httpx.Response:
        """Answer one SDK request (the ``httpx.MockTransport`` handler)."""
        prefix = _client.SDK_PREFIX + "/config"
        path = request.url.raw_path.decode("ascii").split("?", 1)[0]
        if path == prefix and request.method == "GET":
            return httpx.Response(
                200, json={k: self.SECRET_MASK if k in self.secrets else v for k, v in self.values.items()}
            )
        if path.startswith(prefix + "/") and "/" not in path[len(prefix) + 1 :]:
            key = unquote(path[len(prefix) + 1 :])
            if request.method == "GET":
                if key not in self.values:
                    return httpx.Response(404, json={"detail": f"config key {key!r} is not set"})
                return httpx.Response(200, json=self._entry(key))
            if request.method == "PUT":
                body = json.loads(request.content or b"{}")
                self.values[key] = body.get("value")
                if body.get("is_secret"):
                    self.secrets.add(key)
                else:
                    self.secrets.discard(key)
                return httpx.Response(200, json=self._entry(key, masked=True))
            if request.method == "DELETE":
                if key not in self.values:
                    return httpx.Response(404, json={"detail": f"config key {key!r} is not set"})
                del self.values[key]
                self.secrets.discard(key)
                return httpx.Response(200, json={"deleted": True})
        return httpx.Response(
            501,
            json={
                "detail": f"bifrost.testing.fake_config only fakes bifrost.config; {request.method} {request.url.path} "
                "is not available in this test"
            },
        )

    def _entry(self, key: str, masked: bool = False) -> dict[str, Any]:
        secret = key in self.secrets
        value = self.values[key]
        return {
            "key": key,
            "value": self.SECRET_MASK if masked and secret else value,
            "type": _config_type(value, secret),
            "is_secret": secret,
        }


def _json_value(key: str, value: Any) -> Any:
    try:
        return json.loads(json.dumps(value))
    except (TypeError, ValueError) as exc:
        raise TypeError(f"config value of {key!r} must be JSON-serialisable like on the platform: {exc}") from None


def _config_type(value: Any, secret: bool) -> str:
    if secret:
        return "secret"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, (dict, list)):
        return "json"
    return "string"


@contextlib.contextmanager
def fake_config(
    values: Mapping[str, Any] | None = None,
    *,
    secrets: Mapping[str, Any] | None = None,
) -> Iterator[FakeConfig]:
    """Make ``bifrost.config`` work in memory inside the block.

    Every SDK call is routed to an in-process ``httpx.MockTransport`` (even
    inside a bound execution); calls to other SDK modules raise
    :class:`~bifrost.errors.NotAvailableError`. The previous routing is
    restored on exit.

    Args:
        values: Initial plain values.
        secrets: Initial secrets (read back in clear by ``config.get``, masked
            by ``config.list``).

    Yields:
        The :class:`FakeConfig`, to inspect what the code under test stored.

    Example::

        with fake_config({"api_url": "https://api.test"}, secrets={"api_key": "sk"}) as store:
            await my_workflow()
        assert store.values["last_sync"] == "2024-01-01"
    """
    store = FakeConfig(values, secrets)
    with _client.use_transport(httpx.MockTransport(store.handle)):
        yield store
