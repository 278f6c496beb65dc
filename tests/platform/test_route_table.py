"""The route table of the JSON API (``/api``) and of the SDK API (``/api/sdk/v1``), read from the built app.

The SDK API accepts per-execution tokens, so what it serves is a security boundary: the controllers of
``SHARED_CONTROLLERS`` under both prefixes, alike; the API-only ones (API keys, sign-in, workspace,
schedules...) never under ``/api/sdk/v1``; the SDK's own routes (``/context``, the modules not served
yet) never under ``/api``; and nothing of the SDK API in the OpenAPI document. These tests read the routes
of the app ``create_app`` builds (the lists in ``app.web.app`` only say which controller is which), so that
a mistake in how it registers them is caught as well as a controller in the wrong list.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest
from litestar import Litestar
from litestar.handlers import HTTPRouteHandler
from litestar.routes import HTTPRoute

from tests.conftest import make_settings

SDK = "/api/sdk/v1"
PENDING = "later_module"  # an SDK module not served yet (its routes answer 501), only under /api/sdk/v1
Table = dict[tuple[str, str], HTTPRouteHandler]  # (path below the prefix, method) -> handler


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Litestar:
    """The app of a platform that is not started, with one SDK module listed as not served yet."""
    from app.web import app as web_app
    from app.web.api.unavailable import _handler_for

    settings = make_settings(tmp_path_factory.mktemp("route-table"))
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(web_app, "UNAVAILABLE_HANDLERS", [_handler_for(PENDING)])
        return web_app.create_app(settings, start_platform=False)


def _tables(app: Litestar) -> tuple[Table, Table]:
    """The JSON API's routes and the SDK API's, each by path below its prefix (less the OPTIONS answers)."""
    api: Table = {}
    sdk: Table = {}
    for route in app.routes:
        if not isinstance(route, HTTPRoute):
            continue
        for method, (handler, _) in route.route_handler_map.items():
            if method == "OPTIONS":
                continue
            if route.path.startswith(SDK + "/"):
                sdk[(route.path[len(SDK) :], method)] = handler
            elif route.path.startswith("/api/"):
                api[(route.path[len("/api") :], method)] = handler
    return api, sdk


def _function(handler: HTTPRouteHandler) -> Callable[..., Any]:
    """The function that answers (a controller method unbound)."""
    fn = handler.fn
    return getattr(fn, "__func__", fn)  # type: ignore[no-any-return]


def _controller(handler: HTTPRouteHandler) -> type | None:
    """The controller class of a controller method's handler; None for a plain function's."""
    owner = getattr(handler.fn, "__self__", None)
    return type(owner) if owner is not None else None


def _callable(guard: Any) -> Any:
    # Litestar wraps each resolved guard; the wrapper is the handler's own, the function is what matters.
    return getattr(guard, "func", guard)


def _profile(handler: HTTPRouteHandler) -> dict[str, Any]:
    """What a request to ``handler`` goes through, besides the path."""
    return {
        "function": _function(handler),
        "guards": [_callable(g) for g in handler.resolve_guards()],
        "dependencies": {k: v.dependency for k, v in handler.resolve_dependencies().items()},
        "middleware": handler.resolve_middleware(),
        "request_max_body_size": handler.resolve_request_max_body_size(),
        "opt": handler.opt,
    }


def test_shared_controllers_are_served_alike_under_both_prefixes(app: Litestar) -> None:
    from app.web.app import SHARED_CONTROLLERS

    api, sdk = _tables(app)
    shared_api = {key: h for key, h in api.items() if _controller(h) in SHARED_CONTROLLERS}
    shared_sdk = {key: h for key, h in sdk.items() if _controller(h) in SHARED_CONTROLLERS}
    assert ("/workflows", "GET") in shared_api and ("/files/content", "PUT") in shared_api
    assert sorted(set(shared_api) ^ set(shared_sdk)) == []
    different = [key for key in shared_api if _profile(shared_api[key]) != _profile(shared_sdk[key])]
    assert different == []
    # Not vacuous: the uploads without a body limit, and the forms' writes closed to the SDK by a guard.
    assert shared_sdk[("/files/content", "PUT")].resolve_request_max_body_size() is None
    assert _profile(shared_sdk[("/forms", "POST")])["guards"]


def test_the_sdk_api_serves_no_api_only_route_and_the_api_no_sdk_only_route(app: Litestar) -> None:
    from app.web.api.auth import SdkContextController
    from app.web.app import API_ONLY_CONTROLLERS, SHARED_CONTROLLERS

    api, sdk = _tables(app)
    api_only_functions = {h.fn for h in API_ONLY_CONTROLLERS if isinstance(h, HTTPRouteHandler)}

    def api_only(handler: HTTPRouteHandler) -> bool:
        return _controller(handler) in API_ONLY_CONTROLLERS or _function(handler) in api_only_functions

    def sdk_only(handler: HTTPRouteHandler) -> bool:
        return _controller(handler) is SdkContextController or (handler.name or "").startswith("sdk-unavailable-")

    api_only_paths = {path for (path, _), handler in api.items() if api_only(handler)}
    assert {"/api-keys", "/workspace/sync", "/endpoints/{name:str}"} <= api_only_paths
    strays = sorted(
        f"{method} {SDK}{path}"
        for (path, method), handler in sdk.items()
        if path in api_only_paths or not (_controller(handler) in SHARED_CONTROLLERS or sdk_only(handler))
    )
    assert strays == []
    assert ("/context", "GET") in sdk and (f"/{PENDING}", "GET") in sdk
    assert sorted(f"{method} /api{path}" for (path, method), handler in api.items() if sdk_only(handler)) == []
    assert ("/context", "GET") not in api and (f"/{PENDING}", "GET") not in api


def test_the_sdk_api_stays_out_of_the_openapi_document(app: Litestar) -> None:
    api, sdk = _tables(app)
    paths = set(app.openapi_schema.to_schema()["paths"])
    assert "/api/workflows" in paths
    assert sorted(p for p in paths if p.startswith(SDK)) == []
    assert sorted(f"{m} {SDK}{p}" for (p, m), h in sdk.items() if h.resolve_include_in_schema()) == []
    documented = {
        "/api" + re.sub(r"\{(\w+):[^}]+\}", r"{\1}", p) for (p, _), h in api.items() if h.resolve_include_in_schema()
    }
    assert sorted(documented - paths) == []
