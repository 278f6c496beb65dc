"""The public surface pinned against spec/bifrost-module-reference.md.

The expected tables below are copied from the spec; a change here is a change
of the public contract.
"""

from __future__ import annotations

import importlib
import inspect
import subprocess
import sys
import types
from datetime import datetime
from typing import Any

import pytest

import bifrost
from bifrost import errors as sdk_errors

# "Import Structure" of the spec, in its order.
SPEC_DECORATORS_AND_CONTEXT = ["workflow", "data_provider", "context"]
SPEC_MODULES = [
    "ai", "knowledge", "config", "integrations", "files", "tables",
    "organizations", "users", "roles", "forms", "executions", "workflows",
]  # fmt: skip
SPEC_TYPES = [
    "ExecutionContext", "Organization", "Role", "UserPublic", "FormPublic",
    "WorkflowMetadata", "WorkflowExecution", "IntegrationData", "OAuthCredentials",
    "ConfigData", "AIResponse", "AIStreamChunk", "KnowledgeDocument", "NamespaceInfo",
    "TableInfo", "DocumentData", "DocumentList",
]  # fmt: skip
SPEC_ENUMS = ["ExecutionStatus", "ConfigType", "FormFieldType"]
SPEC_ERRORS = ["UserError", "WorkflowError", "ValidationError", "IntegrationError", "ConfigurationError"]
SPEC_NAMES = SPEC_DECORATORS_AND_CONTEXT + SPEC_MODULES + SPEC_TYPES + SPEC_ENUMS + SPEC_ERRORS


def test_all_is_exactly_the_spec_import_structure() -> None:
    assert sorted(bifrost.__all__) == sorted(SPEC_NAMES)
    assert len(bifrost.__all__) == len(set(bifrost.__all__))


@pytest.mark.parametrize("name", SPEC_NAMES)
def test_every_spec_name_imports_from_bifrost(name: str) -> None:
    namespace: dict[str, Any] = {}
    exec(f"from bifrost import {name}", namespace)
    assert namespace[name] is getattr(bifrost, name)


def test_star_import_gives_every_spec_name() -> None:
    namespace: dict[str, Any] = {}
    exec("from bifrost import *", namespace)
    assert set(SPEC_NAMES) <= set(namespace)


@pytest.mark.parametrize("name", SPEC_MODULES)
def test_sdk_modules_are_the_submodules(name: str) -> None:
    module = getattr(bifrost, name)
    assert isinstance(module, types.ModuleType)
    assert module is importlib.import_module(f"bifrost.{name}")


def test_unknown_attribute_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        bifrost.nope  # noqa: B018
    assert not hasattr(bifrost, "nope")


def test_testing_and_configure_are_reachable_beyond_the_spec() -> None:
    assert bifrost.testing.fake_context is importlib.import_module("bifrost.testing").fake_context
    assert callable(bifrost.configure)
    assert {"testing", "configure"} <= set(dir(bifrost))


# --- Type definitions -------------------------------------------------------------------------

SPEC_TYPE_FIELDS: dict[str, dict[str, Any]] = {
    "Organization": {"id": str, "name": str, "is_active": bool, "domain": str | None},
    "Role": {"id": str, "name": str, "description": str, "organization_id": str, "is_active": bool},
    "UserPublic": {
        "id": str, "email": str, "name": str, "organization_id": str | None,
        "is_active": bool, "is_superuser": bool,
    },
    "FormPublic": {
        "id": str, "name": str, "description": str | None, "workflow_id": str | None,
        "form_schema": dict | None, "access_level": str, "organization_id": str | None, "is_active": bool,
    },
    "WorkflowMetadata": {
        "id": str, "name": str, "description": str | None, "category": str, "tags": list[str],
        "execution_mode": str, "timeout_seconds": int, "schedule": str | None, "endpoint_enabled": bool,
        "is_tool": bool, "time_saved": int,
    },
    "WorkflowExecution": {
        "execution_id": str, "workflow_name": str, "org_id": str | None, "executed_by": str, "status": str,
        "input_data": dict, "result": Any, "error_message": str | None, "duration_ms": int | None,
        "started_at": datetime | None, "completed_at": datetime | None,
    },
}  # fmt: skip


@pytest.mark.parametrize("type_name", sorted(SPEC_TYPE_FIELDS))
def test_type_fields_match_the_spec(type_name: str) -> None:
    model = getattr(bifrost, type_name)
    actual = {name: info.annotation for name, info in model.model_fields.items()}
    assert actual == SPEC_TYPE_FIELDS[type_name]
    assert list(actual) == list(SPEC_TYPE_FIELDS[type_name]), "field order follows the spec"


# Types the spec describes by attribute only (tables "Return Types", integrations structure, examples).
SPEC_TYPE_ATTRIBUTES: dict[str, set[str]] = {
    "TableInfo": {"id", "name", "description", "table_schema", "organization_id", "created_at"},
    "DocumentData": {"id", "table_id", "data", "created_at", "updated_at"},
    "DocumentList": {"documents", "total", "limit", "offset"},
    "IntegrationData": {"integration_id", "entity_id", "entity_name", "config", "oauth"},
    "OAuthCredentials": {"access_token", "refresh_token", "expires_at"},
    "AIResponse": {"content"},
    "AIStreamChunk": {"content"},
    "KnowledgeDocument": {"content", "score"},
}


@pytest.mark.parametrize("type_name", sorted(SPEC_TYPE_ATTRIBUTES))
def test_described_types_have_the_spec_attributes(type_name: str) -> None:
    model = getattr(bifrost, type_name)
    assert SPEC_TYPE_ATTRIBUTES[type_name] <= set(model.model_fields)


def test_described_field_types() -> None:
    assert bifrost.DocumentList.model_fields["documents"].annotation == list[bifrost.DocumentData]
    integration = bifrost.IntegrationData.model_fields
    assert integration["integration_id"].annotation is str
    assert integration["entity_id"].annotation == str | None
    assert integration["entity_name"].annotation == str | None
    assert integration["config"].annotation is dict
    assert integration["oauth"].annotation == bifrost.OAuthCredentials | None
    assert bifrost.OAuthCredentials.model_fields["access_token"].annotation is str


def test_spec_models_ignore_fields_a_newer_platform_adds() -> None:
    org = bifrost.Organization.model_validate(
        {"id": "o1", "name": "Acme", "is_active": True, "domain": None, "created_at": "2024-01-01"}
    )
    assert org.model_dump() == {"id": "o1", "name": "Acme", "is_active": True, "domain": None}


def test_spec_models_use_attribute_access() -> None:
    doc = bifrost.DocumentData.model_validate(
        {"id": "d1", "table_id": "t1", "data": {"name": "Acme"}, "created_at": "2024-05-01T10:00:00Z",
         "updated_at": "2024-05-01T10:00:00Z"}
    )  # fmt: skip
    assert doc.data["name"] == "Acme"
    assert doc.created_at.year == 2024


SPEC_CONTEXT_FIELDS = {
    "user_id": str, "email": str, "name": str, "org_id": str | None, "org_name": str | None,
    "organization": bifrost.Organization | None, "scope": str, "execution_id": str,
    "is_platform_admin": bool, "is_function_key": bool,
}  # fmt: skip


def test_execution_context_has_the_context_table() -> None:
    actual = {name: info.annotation for name, info in bifrost.ExecutionContext.model_fields.items()}
    assert actual == SPEC_CONTEXT_FIELDS
    ctx = bifrost.ExecutionContext(user_id="u", email="e", name="n", execution_id="x", scope="GLOBAL")
    assert ctx.is_global_scope is True
    assert ctx.model_copy(update={"scope": "org-1"}).is_global_scope is False


# --- Enums and errors -----------------------------------------------------------------------

SPEC_ENUM_MEMBERS = {
    "ExecutionStatus": ["PENDING", "RUNNING", "COMPLETED", "FAILED", "CANCELLED"],
    "ConfigType": ["STRING", "SECRET", "JSON", "BOOL", "INT"],
    "FormFieldType": ["TEXT", "NUMBER", "SELECT", "CHECKBOX", "DATE"],
}


# Members beyond the spec (extensions are welcome, narrowing is not), each documented where it is used.
EXTENSION_ENUM_MEMBERS = {
    "ExecutionStatus": ["AWAITING_APPROVAL"],  # docs/access.md: runs of workflows that need approval
}


@pytest.mark.parametrize("enum_name", sorted(SPEC_ENUM_MEMBERS))
def test_enum_members_match_the_spec(enum_name: str) -> None:
    enum_cls = getattr(bifrost, enum_name)
    names = [member.name for member in enum_cls]
    # The spec's members come first, in the spec's order; only the listed extensions follow.
    assert names == SPEC_ENUM_MEMBERS[enum_name] + EXTENSION_ENUM_MEMBERS.get(enum_name, [])


def test_enum_values_are_strings_that_format_as_their_value() -> None:
    # The spec filters executions with status="Failed".
    assert bifrost.ExecutionStatus.FAILED == "Failed"
    assert bifrost.ExecutionStatus("Failed") is bifrost.ExecutionStatus.FAILED
    assert f"{bifrost.ExecutionStatus.COMPLETED}" == "Completed"
    assert str(bifrost.ConfigType.SECRET) == "secret"
    assert bifrost.FormFieldType.DATE == "date"


@pytest.mark.parametrize("name", SPEC_ERRORS)
def test_spec_errors_are_exceptions(name: str) -> None:
    error_cls = getattr(bifrost, name)
    assert issubclass(error_cls, Exception)
    assert str(error_cls("boom")) == "boom"


def test_validation_error_carries_field_errors() -> None:
    error = bifrost.ValidationError("bad", [{"field": "x", "message": "required"}])
    assert error.errors == [{"field": "x", "message": "required"}]
    assert bifrost.ValidationError("bad").errors == []


def test_sdk_specific_errors_are_workflow_errors() -> None:
    for error_cls in (sdk_errors.PermissionDeniedError, sdk_errors.NotFoundError, sdk_errors.NotAvailableError):
        assert issubclass(error_cls, bifrost.WorkflowError)
    assert issubclass(sdk_errors.NoSuchFileError, sdk_errors.NotFoundError)
    assert issubclass(sdk_errors.NoSuchFileError, FileNotFoundError)


# --- SDK module functions -------------------------------------------------------------------

REQUIRED = inspect.Parameter.empty
VAR_KEYWORD = "**"

# module -> function -> [(parameter, default)], from the spec's tables and examples.
SPEC_FUNCTIONS: dict[str, dict[str, list[tuple[str, Any]]]] = {
    "config": {
        "get": [("key", REQUIRED), ("default", None)],
        "set": [("key", REQUIRED), ("value", REQUIRED), ("is_secret", False)],
        "list": [],
        "delete": [("key", REQUIRED)],
    },
    "integrations": {"get": [("name", REQUIRED), ("org_id", None)]},
    "files": {
        "read": [("path", REQUIRED), ("location", "workspace"), ("mode", "cloud")],
        "read_bytes": [("path", REQUIRED), ("location", "workspace"), ("mode", "cloud")],
        "write": [("path", REQUIRED), ("content", REQUIRED), ("location", "workspace"), ("mode", "cloud")],
        "write_bytes": [("path", REQUIRED), ("content", REQUIRED), ("location", "workspace"), ("mode", "cloud")],
        "list": [("directory", ""), ("location", "workspace"), ("mode", "cloud")],
        "delete": [("path", REQUIRED), ("location", "workspace"), ("mode", "cloud")],
        "exists": [("path", REQUIRED), ("location", "workspace"), ("mode", "cloud")],
    },
    "tables": {
        "create": [("name", REQUIRED), ("description", None), ("table_schema", None), ("scope", None), ("app", None)],
        "list": [("scope", None), ("app", None)],
        "delete": [("name", REQUIRED), ("scope", None), ("app", None)],
        "insert": [("table", REQUIRED), ("data", REQUIRED), ("id", None), ("scope", None), ("app", None)],
        "upsert": [("table", REQUIRED), ("id", REQUIRED), ("data", REQUIRED), ("scope", None), ("app", None)],
        "get": [("table", REQUIRED), ("doc_id", REQUIRED), ("scope", None), ("app", None)],
        "update": [("table", REQUIRED), ("doc_id", REQUIRED), ("data", REQUIRED), ("scope", None), ("app", None)],
        "delete_document": [("table", REQUIRED), ("doc_id", REQUIRED), ("scope", None), ("app", None)],
        "query": [
            ("table", REQUIRED), ("where", None), ("order_by", None), ("order_dir", "asc"),
            ("limit", None), ("offset", 0), ("scope", None), ("app", None),
        ],
        "count": [("table", REQUIRED), ("where", None), ("scope", None), ("app", None)],
    },
    "organizations": {
        "create": [("name", REQUIRED), ("domain", None), ("is_active", True)],
        "get": [("org_id", REQUIRED)],
        "list": [],
        "update": [("org_id", REQUIRED), ("updates", VAR_KEYWORD)],
        "delete": [("org_id", REQUIRED)],
    },
    "users": {
        "create": [("email", REQUIRED), ("name", REQUIRED), ("is_superuser", False), ("org_id", None), ("is_active", True)],
        "get": [("user_id", REQUIRED)],
        "list": [("org_id", None)],
        "update": [("user_id", REQUIRED), ("updates", VAR_KEYWORD)],
        "delete": [("user_id", REQUIRED)],
    },
    "roles": {
        "create": [("name", REQUIRED), ("description", "")],
        "get": [("role_id", REQUIRED)],
        "list": [],
        "update": [("role_id", REQUIRED), ("updates", VAR_KEYWORD)],
        "delete": [("role_id", REQUIRED)],
        "list_users": [("role_id", REQUIRED)],
        "list_forms": [("role_id", REQUIRED)],
        "assign_users": [("role_id", REQUIRED), ("user_ids", REQUIRED)],
        "assign_forms": [("role_id", REQUIRED), ("form_ids", REQUIRED)],
    },
    "forms": {"list": [], "get": [("form_id", REQUIRED)]},
    "executions": {
        "list": [("workflow_name", None), ("status", None), ("start_date", None), ("end_date", None), ("limit", 50)],
        "get": [("execution_id", REQUIRED)],
    },
    "workflows": {"list": [], "get": [("execution_id", REQUIRED)]},
    "knowledge": {
        "store": [("content", REQUIRED), ("namespace", "default"), ("key", None)],
        "search": [("query", REQUIRED), ("namespace", "default"), ("limit", 5)],
    },
    "ai": {"complete": [("prompt", REQUIRED)], "stream": [("prompt", REQUIRED)]},
}  # fmt: skip

SPEC_FUNCTION_CASES = [(module, function) for module, functions in SPEC_FUNCTIONS.items() for function in functions]


@pytest.mark.parametrize(("module_name", "function_name"), SPEC_FUNCTION_CASES)
def test_module_function_signature_matches_the_spec(module_name: str, function_name: str) -> None:
    func = getattr(getattr(bifrost, module_name), function_name)
    params = list(inspect.signature(func).parameters.values())
    expected = SPEC_FUNCTIONS[module_name][function_name]
    # The spec's parameters come first, in order, with the spec's defaults; extras may follow.
    assert [p.name for p in params[: len(expected)]] == [name for name, _ in expected]
    for param, (name, default) in zip(params, expected, strict=False):
        if default == VAR_KEYWORD:
            assert param.kind is inspect.Parameter.VAR_KEYWORD, name
        else:
            assert param.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY), name
            assert param.default == default, name
            assert type(param.default) is type(default), name
    # Anything beyond the spec is optional, so spec-shaped calls keep working.
    for extra in params[len(expected) :]:
        assert extra.default is not REQUIRED or extra.kind is inspect.Parameter.VAR_KEYWORD, extra.name


@pytest.mark.parametrize(("module_name", "function_name"), SPEC_FUNCTION_CASES)
def test_module_functions_are_async(module_name: str, function_name: str) -> None:
    func = getattr(getattr(bifrost, module_name), function_name)
    if (module_name, function_name) == ("ai", "stream"):
        assert inspect.isasyncgenfunction(func)
    else:
        assert inspect.iscoroutinefunction(func)


def test_spec_keyword_arguments_of_examples_exist() -> None:
    complete = inspect.signature(bifrost.ai.complete).parameters
    assert complete["response_format"].default is None
    assert complete["knowledge"].default is None
    assert "knowledge" in inspect.signature(bifrost.ai.stream).parameters


def test_decorator_signatures_match_the_spec() -> None:
    workflow_params = inspect.signature(bifrost.workflow).parameters
    expected = {
        "name": None, "description": None, "category": "General", "tags": None, "execution_mode": None,
        "timeout_seconds": 1800, "schedule": None, "endpoint_enabled": False, "allowed_methods": None,
        "public_endpoint": False, "is_tool": False, "tool_description": None, "time_saved": 0,
    }  # fmt: skip
    assert {name: workflow_params[name].default for name in expected} == expected
    provider_params = inspect.signature(bifrost.data_provider).parameters
    assert {name: provider_params[name].default for name in ("name", "description", "cache_ttl_seconds")} == {
        "name": None,
        "description": None,
        "cache_ttl_seconds": 300,
    }


# --- Import weight and dependency rules -----------------------------------------------------


def _python(code: str) -> str:
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    return result.stdout.strip()


def test_import_bifrost_is_lazy() -> None:
    out = _python(
        "import sys, bifrost\n"
        "heavy = ['pydantic', 'httpx', 'bifrost.types', 'bifrost._schema', 'bifrost.decorators']\n"
        "print(','.join(m for m in heavy if m in sys.modules))"
    )
    assert out == ""


def test_sdk_never_imports_the_platform() -> None:
    modules = ["bifrost." + m for m in SPEC_MODULES] + ["bifrost.testing", "bifrost.decorators", "bifrost._schema"]
    out = _python(
        "import importlib, sys\n"
        f"for m in {modules!r}: importlib.import_module(m)\n"
        "import bifrost\n"
        f"for n in {SPEC_NAMES!r}: getattr(bifrost, n)\n"
        "bad = ['app', 'agents', 'notebooks', 'litestar', 'sqlmodel', 'sqlalchemy']\n"
        "print(','.join(sorted(m for m in sys.modules if m.split('.')[0] in bad)))"
    )
    assert out == ""
