"""Organizations, users, roles and API keys (JSON API and SDK API)."""

from __future__ import annotations

from typing import Annotated, Any, TypedDict

from litestar import Controller, Request, delete, get, patch, post
from pydantic import BaseModel, Field

from app.services.actor import Actor
from app.services.identity.auth import ApiKeyService
from app.services.identity.organizations import OrganizationService, organization_public
from app.services.identity.roles import RoleService, role_public
from app.services.identity.users import UserService, user_public
from app.web.api.schemas import Deleted, OrganizationUpdate, RoleUpdate, UserUpdate, documented_body
from app.web.deps import db
from bifrost.types import Organization, Role, UserPublic


class OrganizationCreate(BaseModel):
    """Body of ``POST /organizations``."""

    name: str
    domain: str | None = None
    is_active: bool = True


class UserCreate(BaseModel):
    """Body of ``POST /users``."""

    email: str
    name: str
    is_superuser: bool = False
    org_id: str | None = None
    is_active: bool = True
    password: str | None = None


class RoleCreate(BaseModel):
    """Body of ``POST /roles``."""

    name: str
    description: str = ""
    can_author: bool = Field(default=False, description="Holders may start notebook runs (docs/jupyter.md)")


class UserIds(BaseModel):
    """Body of ``POST /roles/{id}/users``."""

    user_ids: list[str]


class FormIds(BaseModel):
    """Body of ``POST /roles/{id}/forms``."""

    form_ids: list[str]


class ApiKeyCreate(BaseModel):
    """Body of ``POST /api-keys``."""

    name: str
    organization_id: str | None = Field(default=None, description="Limit the key to this organization")
    workflow_id: str | None = Field(default=None, description="Limit the key to this workflow (id or name)")


class OrganizationController(Controller):
    """Organizations (platform admins)."""

    path = "/organizations"
    tags = ["admin"]

    @post("/", status_code=201)
    async def create(self, request: Request[Any, Any, Any], actor: Actor, data: OrganizationCreate) -> Organization:
        """Create an organization."""
        async with db(request) as session:
            org = await OrganizationService(session).create(actor, data.name, data.domain, data.is_active)
            return organization_public(org)

    @get("/")
    async def list_orgs(self, request: Request[Any, Any, Any], actor: Actor) -> list[Organization]:
        """List organizations."""
        async with db(request) as session:
            return [organization_public(o) for o in await OrganizationService(session).list(actor)]

    @get("/{org_id:str}")
    async def get_org(self, request: Request[Any, Any, Any], actor: Actor, org_id: str) -> Organization:
        """One organization."""
        async with db(request) as session:
            return organization_public(await OrganizationService(session).get(actor, org_id))

    @patch("/{org_id:str}")
    async def update(
        self,
        request: Request[Any, Any, Any],
        actor: Actor,
        org_id: str,
        data: Annotated[dict[str, Any], documented_body(OrganizationUpdate, closed=True)],
    ) -> Organization:
        """Update an organization."""
        async with db(request) as session:
            return organization_public(await OrganizationService(session).update(actor, org_id, **data))

    @delete("/{org_id:str}", status_code=200)
    async def remove(self, request: Request[Any, Any, Any], actor: Actor, org_id: str) -> Deleted:
        """Soft-delete an organization."""
        async with db(request) as session:
            return {"deleted": await OrganizationService(session).delete(actor, org_id)}


class UserController(Controller):
    """Users (platform admins)."""

    path = "/users"
    tags = ["admin"]

    @post("/", status_code=201)
    async def create(self, request: Request[Any, Any, Any], actor: Actor, data: UserCreate) -> UserPublic:
        """Create a user."""
        async with db(request) as session:
            user = await UserService(session).create(actor, **data.model_dump())
            return user_public(user)

    @get("/")
    async def list_users(
        self, request: Request[Any, Any, Any], actor: Actor, org_id: str | None = None
    ) -> list[UserPublic]:
        """List users, optionally of one organization."""
        async with db(request) as session:
            return [user_public(u) for u in await UserService(session).list(actor, org_id)]

    @get("/{user_id:str}")
    async def get_user(self, request: Request[Any, Any, Any], actor: Actor, user_id: str) -> UserPublic:
        """One user."""
        async with db(request) as session:
            return user_public(await UserService(session).get(actor, user_id))

    @patch("/{user_id:str}")
    async def update(
        self,
        request: Request[Any, Any, Any],
        actor: Actor,
        user_id: str,
        data: Annotated[dict[str, Any], documented_body(UserUpdate, closed=True)],
    ) -> UserPublic:
        """Update a user."""
        async with db(request) as session:
            return user_public(await UserService(session).update(actor, user_id, **data))

    @delete("/{user_id:str}", status_code=200)
    async def remove(self, request: Request[Any, Any, Any], actor: Actor, user_id: str) -> Deleted:
        """Soft-delete a user."""
        async with db(request) as session:
            return {"deleted": await UserService(session).delete(actor, user_id)}


class RoleController(Controller):
    """Roles of the acting organization (platform admins)."""

    path = "/roles"
    tags = ["admin"]

    @post("/", status_code=201)
    async def create(self, request: Request[Any, Any, Any], actor: Actor, data: RoleCreate) -> Role:
        """Create a role."""
        async with db(request) as session:
            return role_public(await RoleService(session).create(actor, data.name, data.description, data.can_author))

    @get("/")
    async def list_roles(self, request: Request[Any, Any, Any], actor: Actor) -> list[Role]:
        """List roles."""
        async with db(request) as session:
            return [role_public(r) for r in await RoleService(session).list(actor)]

    @get("/{role_id:str}")
    async def get_role(self, request: Request[Any, Any, Any], actor: Actor, role_id: str) -> Role:
        """One role."""
        async with db(request) as session:
            return role_public(await RoleService(session).get(actor, role_id))

    @patch("/{role_id:str}")
    async def update(
        self,
        request: Request[Any, Any, Any],
        actor: Actor,
        role_id: str,
        data: Annotated[dict[str, Any], documented_body(RoleUpdate, closed=True)],
    ) -> Role:
        """Update a role."""
        async with db(request) as session:
            return role_public(await RoleService(session).update(actor, role_id, **data))

    @delete("/{role_id:str}", status_code=204)
    async def remove(self, request: Request[Any, Any, Any], actor: Actor, role_id: str) -> None:
        """Soft-delete a role."""
        async with db(request) as session:
            await RoleService(session).delete(actor, role_id)

    @get("/{role_id:str}/users")
    async def users(self, request: Request[Any, Any, Any], actor: Actor, role_id: str) -> list[str]:
        """User ids of the role."""
        async with db(request) as session:
            return await RoleService(session).list_users(actor, role_id)

    @post("/{role_id:str}/users", status_code=204)
    async def assign_users(self, request: Request[Any, Any, Any], actor: Actor, role_id: str, data: UserIds) -> None:
        """Assign users."""
        async with db(request) as session:
            await RoleService(session).assign_users(actor, role_id, data.user_ids)

    @get("/{role_id:str}/forms")
    async def forms(self, request: Request[Any, Any, Any], actor: Actor, role_id: str) -> list[str]:
        """Form ids of the role."""
        async with db(request) as session:
            return await RoleService(session).list_forms(actor, role_id)

    @post("/{role_id:str}/forms", status_code=204)
    async def assign_forms(self, request: Request[Any, Any, Any], actor: Actor, role_id: str, data: FormIds) -> None:
        """Assign forms."""
        async with db(request) as session:
            await RoleService(session).assign_forms(actor, role_id, data.form_ids)


class ApiKeyView(TypedDict):
    """An API key without its secret."""

    id: str
    name: str
    prefix: str
    organization_id: str | None
    workflow_id: str | None
    scope: str | None
    created_at: str
    last_used_at: str | None
    revoked: bool


class ApiKeyCreated(ApiKeyView):
    """A new API key with its secret (shown only in this response)."""

    key: str


def api_key_view(key: Any) -> ApiKeyView:
    """An API key without its secret."""
    return {
        "id": key.id,
        "name": key.name,
        "prefix": key.prefix,
        "organization_id": key.organization_id,
        "workflow_id": key.workflow_id,
        "scope": key.scope,
        "created_at": key.created_at.isoformat(),
        "last_used_at": key.last_used_at.isoformat() if key.last_used_at else None,
        "revoked": key.revoked_at is not None,
    }


class ApiKeyController(Controller):
    """API keys of the caller (admins: all)."""

    path = "/api-keys"
    tags = ["admin"]

    @post("/", status_code=201)
    async def create(self, request: Request[Any, Any, Any], actor: Actor, data: ApiKeyCreate) -> ApiKeyCreated:
        """Create a key; the response is the only time the full key is shown."""
        async with db(request) as session:
            key, secret = await ApiKeyService(session).create(actor, data.name, data.organization_id, data.workflow_id)
            return {**api_key_view(key), "key": secret}

    @get("/")
    async def list_keys(self, request: Request[Any, Any, Any], actor: Actor) -> list[ApiKeyView]:
        """List keys (never their secrets)."""
        async with db(request) as session:
            return [api_key_view(k) for k in await ApiKeyService(session).list(actor)]

    @delete("/{key_id:str}", status_code=200)
    async def revoke(self, request: Request[Any, Any, Any], actor: Actor, key_id: str) -> ApiKeyView:
        """Revoke a key."""
        async with db(request) as session:
            return api_key_view(await ApiKeyService(session).revoke(actor, key_id))
