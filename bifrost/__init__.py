"""The Bifrost author SDK.

``from bifrost import workflow, context, config, tables, ...`` is everything an
author needs; see ``spec/bifrost-module-reference.md`` for the contract.
Attributes are loaded lazily so that ``import bifrost`` stays fast.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_MODULES = (
    "ai",
    "knowledge",
    "config",
    "integrations",
    "files",
    "tables",
    "organizations",
    "users",
    "roles",
    "forms",
    "executions",
    "workflows",
)
_TYPES = (
    "ExecutionContext",
    "Organization",
    "Role",
    "UserPublic",
    "FormPublic",
    "WorkflowMetadata",
    "WorkflowExecution",
    "IntegrationData",
    "OAuthCredentials",
    "ConfigData",
    "AIResponse",
    "AIStreamChunk",
    "KnowledgeDocument",
    "NamespaceInfo",
    "TableInfo",
    "DocumentData",
    "DocumentList",
)
_ENUMS = ("ExecutionStatus", "ConfigType", "FormFieldType")
_ERRORS = ("UserError", "WorkflowError", "ValidationError", "IntegrationError", "ConfigurationError")
# Submodules beyond the spec: reachable as ``bifrost.testing`` without an explicit
# import, but not part of ``__all__`` (which is exactly the spec's import list).
_EXTRA_MODULES = ("testing",)

# name -> module that defines it
_LAZY: dict[str, str] = {
    "workflow": "bifrost.decorators",
    "data_provider": "bifrost.decorators",
    "context": "bifrost._context",
    "configure": "bifrost._client",
    # `%load_ext bifrost`: IPython's hooks, which hand over to the notebooks package when called.
    "load_ipython_extension": "bifrost._ipython",
    "unload_ipython_extension": "bifrost._ipython",
    **{name: "bifrost.types" for name in _TYPES},
    **{name: "bifrost.enums" for name in _ENUMS},
    **{name: "bifrost.errors" for name in _ERRORS},
}

__all__ = [
    "workflow",
    "data_provider",
    "context",
    *_MODULES,
    *_TYPES,
    *_ENUMS,
    *_ERRORS,
]


def __getattr__(name: str) -> Any:
    if name in _MODULES or name in _EXTRA_MODULES:
        module = importlib.import_module(f"bifrost.{name}")
        globals()[name] = module
        return module
    source = _LAZY.get(name)
    if source is None:
        raise AttributeError(f"module 'bifrost' has no attribute {name!r}")
    value = getattr(importlib.import_module(source), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(
        set(globals())
        | set(__all__)
        | set(_EXTRA_MODULES)
        | {"configure", "load_ipython_extension", "unload_ipython_extension"}
    )


if TYPE_CHECKING:  # static view of the lazy attributes
    from bifrost import (  # noqa: F401
        ai,
        config,
        executions,
        files,
        forms,
        integrations,
        knowledge,
        organizations,
        roles,
        tables,
        users,
        workflows,
    )
    from bifrost import testing  # noqa: F401
    from bifrost._client import configure  # noqa: F401
    from bifrost._context import context
    from bifrost.decorators import data_provider, workflow
    from bifrost.enums import ConfigType, ExecutionStatus, FormFieldType  # noqa: F401
    from bifrost.errors import (  # noqa: F401
        ConfigurationError,
        IntegrationError,
        UserError,
        ValidationError,
        WorkflowError,
    )
    from bifrost.types import (  # noqa: F401
        AIResponse,
        AIStreamChunk,
        ConfigData,
        DocumentData,
        DocumentList,
        ExecutionContext,
        FormPublic,
        IntegrationData,
        KnowledgeDocument,
        NamespaceInfo,
        OAuthCredentials,
        Organization,
        Role,
        TableInfo,
        UserPublic,
        WorkflowExecution,
        WorkflowMetadata,
    )
