"""Organizations, users, roles and API keys (JSON API and SDK API)."""

from __future__ import annotations

from typing import Any

from litestar import Controller, Request, delete, get, patch, post
from pydantic import BaseModel, Field

from app.services.actor import Actor
from app.services.identity.auth import ApiKeyService
from app.services.identity.organizations import OrganizationService, organization_public
from app.services.identity.roles import RoleService, role_public
from app.services.identity.users import UserService, user_public
from app.web.deps import db


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
    async def create(self, request: Request[Any, Any, Any], actor: Actor, data: OrganizationCreate) -> dict[str, Any]:
        """Create an organization."""
        async with db(request) as session:
            org = await OrganizationService(session).create(actor, data.name, data.domain, data.is_active)
            return organization_public(org).model_dump()

    @get("/")
    async def list_orgs(self, request: Request[Any, Any, Any], actor: Actor) -> list[dict[str, Any]]:
        """List organizations."""
        async with db(request) as session:
            return [organization_public(o).model_dump() for o in await OrganizationService(session).list(actor)]

    @get("/{org_id:str}")
    async def get_org(self, request: Request[Any, Any, Any], actor: Actor, org_id: str) -> dict[str, Any]:
        """One organization."""
        async with db(request) as session:
            return organization_public(await OrganizationService(session).get(actor, org_id)).model_dump()

    @patch("/{org_id:str}")
    async def update(
        self, request: Request[Any, Any, Any], actor: Actor, org_id: str, data: dict[str, Any]
    ) -> dict[str, Any]:
        """Update an organization."""
        async with db(request) as session:
            return organization_public(await OrganizationService(session).update(actor, org_id, **data)).model_dump()

    @delete("/{org_id:str}", status_code=200)
    async def remove(self, request: Request[Any, Any, Any], actor: Actor, org_id: str) -> dict[str, Any]:
        """Soft-delete an organization."""
        async with db(request) as session:
            return {"deleted": await OrganizationService(session).delete(actor, org_id)}


class UserController(Controller):
    """Users (platform admins)."""

    path = "/users"
    tags = ["admin"]

    @post("/", status_code=201)
    async def create(self, request: Request[Any, Any, Any], actor: Actor, data: UserCreate) -> dict[str, Any]:
        """Create a user."""
        async with db(request) as session:
            user = await UserService(session).create(actor, **data.model_dump())
            return user_public(user).model_dump()

    @get("/")
    async def list_users(
        self, request: Request[Any, Any, Any], actor: Actor, org_id: str | None = None
    ) -> list[dict[str, Any]]:
        """List users, optionally of one organization."""
        async with db(request) as session:
            return [user_public(u).model_dump() for u in await UserService(session).list(actor, org_id)]

    @get("/{user_id:str}")
    async def get_user(self, request: Request[Any, Any, Any], actor: Actor, user_id: str) -> dict[str, Any]:
        """One user."""
        async with db(request) as session:
            return user_public(await UserService(session).get(actor, user_id)).model_dump()

    @patch("/{user_id:str}")
    async def update(
        self, request: Request[Any, Any, Any], actor: Actor, user_id: str, data: dict[str, Any]
    ) -> dict[str, Any]:
        """Update a user."""
        async with db(request) as session:
            return user_public(await UserService(session).update(actor, user_id, **data)).model_dump()

    @delete("/{user_id:str}", status_code=200)
    async def remove(self, request: Request[Any, Any, Any], actor: Actor, user_id: str) -> dict[str, Any]:
        """Soft-delete a user."""
        async with db(request) as session:
            return {"deleted": await UserService(session).delete(actor, user_id)}


class RoleController(Controller):
    """Roles of the acting organization (platform admins)."""

    path = "/roles"
    tags = ["admin"]

    @post("/", status_code=201)
    async def create(self, request: Request[Any, Any, Any], actor: Actor, data: RoleCreate) -> dict[str, Any]:
        """Create a role."""
        async with db(request) as session:
            return role_public(await RoleService(session).create(actor, data.name, data.description)).model_dump()

    @get("/")
    async def list_roles(self, request: Request[Any, Any, Any], actor: Actor) -> list[dict[str, Any]]:
        """List roles."""
        async with db(request) as session:
            return [role_public(r).model_dump() for r in await RoleService(session).list(actor)]

    @get("/{role_id:str}")
    async def get_role(self, request: Request[Any, Any, Any], actor: Actor, role_id: str) -> dict[str, Any]:
        """One role."""
        async with db(request) as session:
            return role_public(await RoleService(session).get(actor, role_id)).model_dump()

    @patch("/{role_id:str}")
    async def update(
        self, request: Request[Any, Any, Any], actor: Actor, role_id: str, data: dict[str, Any]
    ) -> dict[str, Any]:
        """Update a role."""
        async with db(request) as session:
            return role_public(await RoleService(session).update(actor, role_id, **data)).model_dump()

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


def api_key_view(key: Any) -> dict[str, Any]:
    """An API key without its secret."""
    return {
        "id": key.id,
        "name": key.name,
        "prefix": key.prefix,
        "organization_id": key.organization_id,
        "workflow_id": key.workflow_id,
        "created_at": key.created_at.isoformat(),
        "last_used_at": key.last_used_at.isoformat() if key.last_used_at else None,
        "revoked": key.revoked_at is not None,
    }


class ApiKeyController(Controller):
    """API keys of the caller (admins: all)."""

    path = "/api-keys"
    tags = ["admin"]

    @post("/", status_code=201)
    async def create(self, request: Request[Any, Any, Any], actor: Actor, data: ApiKeyCreate) -> dict[str, Any]:
        """Create a key; the response is the only time the full key is shown."""
        async with db(request) as session:
            key, secret = await ApiKeyService(session).create(actor, data.name, data.organization_id, data.workflow_id)
            return {**api_key_view(key), "key": secret}

    @get("/")
    async def list_keys(self, request: Request[Any, Any, Any], actor: Actor) -> list[dict[str, Any]]:
        """List keys (never their secrets)."""
        async with db(request) as session:
            return [api_key_view(k) for k in await ApiKeyService(session).list(actor)]

    @delete("/{key_id:str}", status_code=200)
    async def revoke(self, request: Request[Any, Any, Any], actor: Actor, key_id: str) -> dict[str, Any]:
        """Revoke a key."""
        async with db(request) as session:
            return api_key_view(await ApiKeyService(session).revoke(actor, key_id))
