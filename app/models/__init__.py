"""SQLModel tables, one module per aggregate. Importing this package registers them all."""

from app.models import (  # noqa: F401  (register their tables)
    access,
    ai,
    audit,
    config_entry,
    document_table,
    integration,
    knowledge,
    mcp,
    rate_limit,
    schedule,
    sign_in,
    stored_file,
)
from app.models.execution import Execution, ExecutionLog
from app.models.form import Form
from app.models.organization import Organization
from app.models.user import ApiKey, Role, RoleForm, User, UserRole
from app.models.workflow import Workflow, WorkspaceError, stable_workflow_id

__all__ = [
    "ApiKey",
    "Execution",
    "ExecutionLog",
    "Form",
    "Organization",
    "Role",
    "RoleForm",
    "User",
    "UserRole",
    "Workflow",
    "WorkspaceError",
    "stable_workflow_id",
]
