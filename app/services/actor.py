"""Who is acting, and in which organization: resolved once per request."""

from __future__ import annotations

from dataclasses import dataclass

from app.services.errors import PermissionDeniedError


@dataclass(frozen=True)
class Actor:
    """The authenticated caller of a service.

    Attributes:
        user_id: The user (an API key acts as the user who created it).
        email: The user's email.
        name: Display name.
        organization_id: The user's own organization (None for platform admins without one).
        is_superuser: Platform admin.
        acting_org_id: Organization this request acts in. Regular users always
            act in their own; platform admins choose one explicitly (None = global).
        api_key_id: Set when authenticated with an API key.
        api_key_workflow_id: The only workflow the API key may run, if limited.
        api_key_scope: The API key's scope (``"notebook"``), limiting the routes it reaches; None: all.
        execution_id: Set when authenticated with a per-execution SDK token.
        external_run: The token's execution runs its code outside the platform (a notebook kernel):
            the code is the user's own, not a workflow of the workspace (see :attr:`may_read_secrets`).
    """

    user_id: str
    email: str
    name: str
    organization_id: str | None
    is_superuser: bool
    acting_org_id: str | None
    api_key_id: str | None = None
    api_key_workflow_id: str | None = None
    api_key_scope: str | None = None
    execution_id: str | None = None
    external_run: bool = False

    @property
    def is_function_key(self) -> bool:
        """True when the caller authenticated with an API key."""
        return self.api_key_id is not None

    @property
    def may_read_secrets(self) -> bool:
        """True when secrets (config secrets, integration secrets and OAuth tokens) may be returned in clear.

        Only to an execution token, never to an API key or a session (docs/config-and-secrets.md): to a
        workflow the platform runs (workspace code, trusted), and to a notebook run only when its user
        is a platform admin; other notebook users get the mask, as with their API key.
        """
        return self.execution_id is not None and (not self.external_run or self.is_superuser)

    def require_admin(self, what: str) -> None:
        """Raise PermissionDeniedError unless the actor is a platform admin.

        Args:
            what: What was attempted, for the message (e.g. "list users").
        """
        if not self.is_superuser:
            raise PermissionDeniedError(f"Only platform admins may {what}.")

    def can_see_org(self, organization_id: str | None) -> bool:
        """True when an item of ``organization_id`` is visible (own org, global, or admin)."""
        return self.is_superuser or organization_id is None or organization_id == self.acting_org_id
