"""Appending audit events: :func:`record`, the action names, and the client address of the current request.

Details describe *what* changed (field names, ids, flags), never a value that could be a secret: keys that
name one (``value``, ``password``, ``secret``, ``token``...) are dropped before the event is written, and long
texts are cut, so a careless caller cannot leak a secret into the log.
"""

from __future__ import annotations

from contextvars import ContextVar
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from app.models.audit import AuditEvent
from app.services.actor import Actor

# ----- action names (docs/audit.md lists them with their details) ---------------------------------------
LOGIN_SUCCEEDED = "auth.login_succeeded"
LOGIN_FAILED = "auth.login_failed"
API_KEY_CREATED = "api_key.created"
API_KEY_REVOKED = "api_key.revoked"
USER_CREATED = "user.created"
USER_UPDATED = "user.updated"
USER_DEACTIVATED = "user.deactivated"
ROLE_CREATED = "role.created"
ROLE_UPDATED = "role.updated"
ROLE_DEACTIVATED = "role.deactivated"
ROLE_USERS_ASSIGNED = "role.users_assigned"
ROLE_FORMS_ASSIGNED = "role.forms_assigned"
ORGANIZATION_CREATED = "organization.created"
ORGANIZATION_UPDATED = "organization.updated"
ORGANIZATION_DEACTIVATED = "organization.deactivated"
CONFIG_SET = "config.set"
CONFIG_DELETED = "config.deleted"
INTEGRATION_CONNECTED = "integration.connected"
INTEGRATION_DISCONNECTED = "integration.disconnected"
SCHEDULE_CREATED = "schedule.created"
SCHEDULE_UPDATED = "schedule.updated"
SCHEDULE_DELETED = "schedule.deleted"
SCHEDULE_RUN_NOW = "schedule.run_now"
WORKSPACE_PUBLISHED = "workspace.published"
AGENT_ROLES_ASSIGNED = "chat_agent.roles_assigned"
# For the access-policy and approval work: workflows and executions record these through record().
ACCESS_POLICY_CHANGED = "workflow.access_policy_changed"
APPROVAL_DECIDED = "execution.approval_decided"
# Sign-in (docs/sign-in.md): SSO and second-factor sign-ins use LOGIN_SUCCEEDED / LOGIN_FAILED with a "method".
SSO_PROVIDER_CREATED = "sso_provider.created"
SSO_PROVIDER_UPDATED = "sso_provider.updated"
SSO_PROVIDER_DELETED = "sso_provider.deleted"
SIGN_IN_POLICY_CHANGED = "sign_in.policy_changed"
TOTP_ENABLED = "user.totp_enabled"
TOTP_RESET = "user.totp_reset"
FILE_UPLOADED = "file.uploaded"
FILE_DELETED = "file.deleted"

# Detail keys never stored, whatever the caller passes (compared lower-cased, also as a suffix: "client_secret").
_FORBIDDEN_KEYS = ("value", "values", "password", "secret", "token", "api_key", "key_text", "access_token")
_MAX_TEXT = 500
_MAX_ITEMS = 100

_client_address: ContextVar[str | None] = ContextVar("bifrost_audit_client_address", default=None)


def set_client_address(address: str | None) -> Any:
    """Remember the address of the request being handled (the web layer calls this once per request).

    Returns:
        A token for :func:`reset_client_address`.
    """
    return _client_address.set(address)


def reset_client_address(token: Any) -> None:
    """Forget the address set by :func:`set_client_address` (end of the request)."""
    _client_address.reset(token)


def client_address() -> str | None:
    """The client address of the current request, or None outside a request (scheduler, CLI)."""
    return _client_address.get()


def _forbidden(key: str) -> bool:
    lowered = key.lower()
    return any(lowered == word or lowered.endswith("_" + word) for word in _FORBIDDEN_KEYS)


def _clean(value: Any, depth: int = 0) -> Any:
    """JSON-safe, bounded details without secret-looking keys."""
    if depth > 4:
        return "…"
    if isinstance(value, dict):
        return {
            str(k)[:100]: _clean(v, depth + 1)
            for k, v in list(value.items())[:_MAX_ITEMS]
            if isinstance(v, bool) or not _forbidden(str(k))  # a flag ("is_secret") cannot leak a value
        }
    if isinstance(value, list | tuple | set | frozenset):
        return [_clean(v, depth + 1) for v in list(value)[:_MAX_ITEMS]]
    if value is None or isinstance(value, bool | int | float):
        return value
    text = str(value)
    return text if len(text) <= _MAX_TEXT else text[:_MAX_TEXT] + "…"


async def record(
    session: AsyncSession,
    actor: Actor | None,
    action: str,
    target_type: str | None = None,
    target_id: str | None = None,
    organization_id: str | None = None,
    details: dict[str, Any] | None = None,
    ip: str | None = None,
    *,
    actor_email: str | None = None,
) -> AuditEvent:
    """Append one audit event in the caller's transaction (it is committed, or rolled back, with the change).

    Args:
        session: The caller's open session.
        actor: Who acted (None: nobody signed in, e.g. a failed sign-in; give ``actor_email`` then).
        action: One of the action names of this module (``user.updated``, ``config.set``...).
        target_type: Kind of the object acted on (``user``, ``config``, ``schedule``...).
        target_id: Its id or key.
        organization_id: Organization the event belongs to (its admins' view); None for platform-wide events.
        details: What changed: field names, ids, flags. Never values: keys naming a secret are dropped.
        ip: Client address; default the address of the request being handled, if any.
        actor_email: The email to record when there is no actor (a failed sign-in's attempted email).

    Returns:
        The event (flushed with the caller's next flush or commit).
    """
    event = AuditEvent(
        actor_id=actor.user_id if actor is not None else None,
        actor_email=(actor.email if actor is not None else actor_email or None),
        action=action,
        target_type=target_type,
        target_id=None if target_id is None else str(target_id)[:255],
        organization_id=organization_id,
        ip=(ip if ip is not None else client_address()),
        details=_clean(details or {}),
    )
    if event.actor_email is not None:
        event.actor_email = event.actor_email[:320]
    if event.ip is not None:
        event.ip = event.ip[:64]
    session.add(event)
    return event
