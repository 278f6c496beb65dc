"""What a decorated workflow or data provider is: the record the registry keeps and the platform reads.

It sits apart from :mod:`bifrost.decorators` so that :mod:`bifrost._registry` can name it without
importing the decorators (which import the registry): no import circle.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel

from bifrost._schema import ParameterSpec


@dataclass
class WorkflowDefinition:
    """Everything the platform needs to know about one workflow or data provider.

    ``kind`` is ``"workflow"`` or ``"data_provider"``; options that only apply
    to workflows keep their defaults on data providers.
    """

    kind: str
    name: str
    description: str | None
    func: Callable[..., Any]
    params_model: type[BaseModel]
    parameters: list[ParameterSpec]
    params_schema: dict[str, Any]
    module: str
    source_file: str | None
    category: str = "General"
    tags: list[str] = field(default_factory=list)
    execution_mode: str = "async"
    execution_mode_explicit: bool = False
    timeout_seconds: int = 1800
    schedule: str | None = None
    endpoint_enabled: bool = False
    allowed_methods: list[str] = field(default_factory=lambda: ["POST"])
    public_endpoint: bool = False
    is_tool: bool = False
    tool_description: str | None = None
    time_saved: int = 0
    cache_ttl_seconds: int = 300
    # Beyond the spec: who may run it by default ("everyone", "roles" with ``access_roles``, "admins")
    # and whether each run waits for an approver. Admins can override both on the platform.
    access: str = "everyone"
    access_roles: list[str] = field(default_factory=list)
    needs_approval: bool = False

    def to_metadata(self) -> dict[str, Any]:
        """Return the JSON-able metadata the platform stores (no function object)."""
        return {
            "kind": self.kind,
            "name": self.name,
            "description": self.description,
            "module": self.module,
            "source_file": self.source_file,
            "category": self.category,
            "tags": list(self.tags),
            "execution_mode": self.execution_mode,
            "execution_mode_explicit": self.execution_mode_explicit,
            "timeout_seconds": self.timeout_seconds,
            "schedule": self.schedule,
            "endpoint_enabled": self.endpoint_enabled,
            "allowed_methods": list(self.allowed_methods),
            "public_endpoint": self.public_endpoint,
            "is_tool": self.is_tool,
            "tool_description": self.tool_description,
            "time_saved": self.time_saved,
            "cache_ttl_seconds": self.cache_ttl_seconds,
            "parameters": [p.to_dict() for p in self.parameters],
            "params_schema": self.params_schema,
            "access": self.access,
            "access_roles": list(self.access_roles),
            "needs_approval": self.needs_approval,
        }
