"""Users, roles and their assignments, API keys."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Column, UniqueConstraint, false
from sqlmodel import Field, SQLModel

from app.models.base import UTCDateTime, new_id, utcnow


class User(SQLModel, table=True):
    """A person who logs in. Platform admins have ``is_superuser``; others belong to one organization."""

    id: str = Field(default_factory=new_id, primary_key=True, max_length=36)
    email: str = Field(index=True, unique=True, max_length=320)
    name: str = Field(max_length=200)
    password_hash: str | None = Field(default=None, max_length=255)
    organization_id: str | None = Field(default=None, foreign_key="organization.id", index=True, max_length=36)
    is_superuser: bool = False
    is_active: bool = True
    # Sessions carry the version they started with; raising it ends every session of the user at once
    # (logout, password, role or organization change, deactivation): cookies are signed, not stored.
    session_version: int = Field(default=0, sa_column_kwargs={"server_default": "0"})
    created_at: datetime = Field(default_factory=utcnow, sa_column=Column(UTCDateTime, nullable=False))
    last_login_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime, nullable=True))


class Role(SQLModel, table=True):
    """A role inside one organization."""

    __table_args__ = (UniqueConstraint("organization_id", "name", name="uq_role_org_name"),)

    id: str = Field(default_factory=new_id, primary_key=True, max_length=36)
    name: str = Field(max_length=200)
    description: str = Field(default="", max_length=2000)
    organization_id: str = Field(foreign_key="organization.id", index=True, max_length=36)
    is_active: bool = True
    # Holders may start notebook runs: their own code as an execution of the organization (docs/jupyter.md).
    can_author: bool = Field(default=False, sa_column_kwargs={"server_default": false()})
    created_at: datetime = Field(default_factory=utcnow, sa_column=Column(UTCDateTime, nullable=False))


class UserRole(SQLModel, table=True):
    """Assignment of a user to a role."""

    __tablename__ = "user_role"

    role_id: str = Field(foreign_key="role.id", primary_key=True, max_length=36)
    user_id: str = Field(foreign_key="user.id", primary_key=True, max_length=36, index=True)


class RoleForm(SQLModel, table=True):
    """Assignment of a form to a role."""

    __tablename__ = "role_form"

    role_id: str = Field(foreign_key="role.id", primary_key=True, max_length=36)
    form_id: str = Field(foreign_key="form.id", primary_key=True, max_length=36, index=True)


class ApiKey(SQLModel, table=True):
    """An API key. Only a SHA-256 hash of the secret is stored; the key is shown once.

    A key acts as the user who created it, limited to ``organization_id`` and,
    when set, to one workflow.
    """

    __tablename__ = "api_key"

    id: str = Field(default_factory=new_id, primary_key=True, max_length=36)
    name: str = Field(max_length=200)
    prefix: str = Field(index=True, max_length=32)
    key_hash: str = Field(unique=True, max_length=64)
    user_id: str = Field(foreign_key="user.id", index=True, max_length=36)
    organization_id: str | None = Field(default=None, foreign_key="organization.id", index=True, max_length=36)
    workflow_id: str | None = Field(default=None, max_length=36)
    # None: everything its user may do; "notebook": only what a notebook needs (app/web/key_scopes.py).
    scope: str | None = Field(default=None, max_length=20)
    created_at: datetime = Field(default_factory=utcnow, sa_column=Column(UTCDateTime, nullable=False))
    last_used_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime, nullable=True))
    revoked_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime, nullable=True))
