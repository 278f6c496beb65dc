"""Pydantic models of the SDK contract (``spec/bifrost-module-reference.md``).

Every model keeps exactly the spec's fields (extra fields sent by a newer
platform are ignored, so an older SDK keeps working).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class _SDKModel(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)


class Organization(_SDKModel):
    """A client organization (tenant)."""

    id: str
    name: str
    is_active: bool
    domain: str | None


class Role(_SDKModel):
    """A role inside one organization."""

    id: str
    name: str
    description: str
    organization_id: str
    is_active: bool


class UserPublic(_SDKModel):
    """A user as other users may see it (no password hash)."""

    id: str
    email: str
    name: str
    organization_id: str | None
    is_active: bool
    is_superuser: bool


class FormPublic(_SDKModel):
    """A form that runs a workflow."""

    id: str
    name: str
    description: str | None
    workflow_id: str | None
    form_schema: dict | None
    access_level: str
    organization_id: str | None
    is_active: bool


class WorkflowMetadata(_SDKModel):
    """What the platform knows about one workflow."""

    id: str
    name: str
    description: str | None
    category: str
    tags: list[str]
    execution_mode: str
    timeout_seconds: int
    schedule: str | None
    endpoint_enabled: bool
    is_tool: bool
    time_saved: int


class WorkflowExecution(_SDKModel):
    """One run of a workflow."""

    execution_id: str
    workflow_name: str
    org_id: str | None
    executed_by: str
    status: str
    input_data: dict
    result: Any
    error_message: str | None
    duration_ms: int | None
    started_at: datetime | None
    completed_at: datetime | None


class OAuthCredentials(_SDKModel):
    """Decrypted OAuth tokens of an integration connection."""

    model_config = ConfigDict(extra="allow")

    access_token: str
    refresh_token: str | None = None
    expires_at: str | None = None
    token_type: str = "Bearer"
    scopes: list[str] = Field(default_factory=list)


class IntegrationData(_SDKModel):
    """An integration as seen from one organization."""

    integration_id: str
    entity_id: str | None = None
    entity_name: str | None = None
    config: dict = Field(default_factory=dict)
    oauth: OAuthCredentials | None = None


class ConfigData(_SDKModel):
    """One configuration entry (secret values are masked in listings)."""

    key: str
    value: Any
    type: str
    organization_id: str | None = None
    description: str | None = None


class AIResponse(_SDKModel):
    """The answer of ``ai.complete``."""

    content: str
    model: str | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    sources: list[dict] = Field(default_factory=list)


class AIStreamChunk(_SDKModel):
    """One piece of ``ai.stream`` output."""

    content: str
    done: bool = False


class KnowledgeDocument(_SDKModel):
    """A stored or retrieved knowledge document."""

    id: str
    namespace: str
    content: str
    key: str | None = None
    metadata: dict = Field(default_factory=dict)
    score: float | None = None
    organization_id: str | None = None
    created_at: datetime | None = None


class NamespaceInfo(_SDKModel):
    """A knowledge namespace and how many documents it holds."""

    name: str
    document_count: int = 0
    organization_id: str | None = None


class TableInfo(_SDKModel):
    """A document table."""

    id: str
    name: str
    description: str | None
    table_schema: dict | None
    organization_id: str | None
    created_at: datetime


class DocumentData(_SDKModel):
    """One document of a table."""

    id: str
    table_id: str
    data: dict
    created_at: datetime
    updated_at: datetime


class DocumentList(_SDKModel):
    """A page of documents returned by ``tables.query``."""

    documents: list[DocumentData]
    total: int
    limit: int | None
    offset: int


class ExecutionContext(_SDKModel):
    """Who is running what, bound for the duration of one execution."""

    user_id: str
    email: str
    name: str
    org_id: str | None = None
    org_name: str | None = None
    organization: Organization | None = None
    scope: str = "GLOBAL"
    execution_id: str
    is_platform_admin: bool = False
    is_function_key: bool = False

    @property
    def is_global_scope(self) -> bool:
        """True when the execution runs in the global scope (no organization)."""
        return self.scope == "GLOBAL"
