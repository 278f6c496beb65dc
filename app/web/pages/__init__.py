"""HTML pages (Jinja2 + htmx): one module per area; each area's handlers are registered here."""

from litestar.types import ControllerRouterHandler

from app.web.pages.account import AccountPages, UserPasswordPages
from app.web.pages.admin import OrganizationPages, RolePages, UserPages
from app.web.pages.ai_admin import AI_ADMIN_PAGE_HANDLERS
from app.web.pages.api_keys import ApiKeyPages
from app.web.pages.approvals import APPROVAL_PAGE_HANDLERS
from app.web.pages.audit import AUDIT_PAGE_HANDLERS
from app.web.pages.chat import CHAT_PAGE_HANDLERS
from app.web.pages.config_admin import CONFIG_PAGE_HANDLERS
from app.web.pages.data_admin import DATA_PAGE_HANDLERS
from app.web.pages.executions import ExecutionPages
from app.web.pages.files import FilePages
from app.web.pages.form_builder import FORM_BUILDER_PAGE_HANDLERS
from app.web.pages.forms import FORM_PAGE_HANDLERS
from app.web.pages.home import HomePages, login_form, login_submit, logout
from app.web.pages.integrations import INTEGRATION_PAGE_HANDLERS
from app.web.pages.knowledge import KnowledgePages
from app.web.pages.public_forms import PUBLIC_FORM_PAGE_HANDLERS
from app.web.pages.schedules import SCHEDULE_PAGE_HANDLERS
from app.web.pages.workflow_access import WORKFLOW_ACCESS_PAGE_HANDLERS
from app.web.pages.workflows import WorkflowPages

PAGE_HANDLERS: list[ControllerRouterHandler] = [
    HomePages,
    login_form,
    login_submit,
    logout,
    WorkflowPages,
    ExecutionPages,
    OrganizationPages,
    UserPages,
    RolePages,
    ApiKeyPages,
    KnowledgePages,
    *SCHEDULE_PAGE_HANDLERS,
    *INTEGRATION_PAGE_HANDLERS,
    *FORM_PAGE_HANDLERS,
    *PUBLIC_FORM_PAGE_HANDLERS,
    *FORM_BUILDER_PAGE_HANDLERS,
    *CONFIG_PAGE_HANDLERS,
    *CHAT_PAGE_HANDLERS,
    *AI_ADMIN_PAGE_HANDLERS,
    *AUDIT_PAGE_HANDLERS,
    *DATA_PAGE_HANDLERS,
    *APPROVAL_PAGE_HANDLERS,
    *WORKFLOW_ACCESS_PAGE_HANDLERS,
    FilePages,  # /files (docs/files.md)
    AccountPages,  # /account: profile and password
    UserPasswordPages,  # /admin/users/{id}/password
]
