"""Sign-in beyond passwords: OIDC single sign-on providers, linked identities, pending logins, TOTP factors.

Secrets here are stored as Fernet tokens (``app.services.secrets``): the provider's client secret and each
user's TOTP secret. Recovery codes and ``state`` values are stored as SHA-256 hashes of high-entropy
random text (nothing to brute-force, so no slow hash is needed).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Column, ForeignKey, String, UniqueConstraint
from sqlmodel import Field, SQLModel

from app.models.base import JSONType, UTCDateTime, new_id, utcnow


class SsoProvider(SQLModel, table=True):
    """An OpenID Connect provider users may sign in with (Entra ID, Google or any other).

    ``kind`` is ``oidc``, ``entra`` or ``google`` (presets that derive ``issuer``). ``domain_map`` maps
    an email domain to an organization id for users the provider creates; ``organization_id`` is where
    they go otherwise (none: a created user needs a mapped domain). ``default_role`` names the role
    (in that organization) given to created users.
    """

    __tablename__ = "sso_provider"

    id: str = Field(default_factory=new_id, primary_key=True, max_length=36)
    slug: str = Field(index=True, unique=True, max_length=60)
    display_name: str = Field(max_length=100)
    kind: str = Field(default="oidc", max_length=20)
    tenant: str | None = Field(default=None, max_length=100)
    issuer: str = Field(max_length=500)
    client_id: str = Field(max_length=500)
    client_secret: str | None = None
    scopes: str = Field(default="openid email profile", max_length=1000)
    is_active: bool = True
    create_users: bool = False
    organization_id: str | None = Field(default=None, foreign_key="organization.id", max_length=36)
    domain_map: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSONType, nullable=False))
    default_role: str | None = Field(default=None, max_length=200)
    created_at: datetime = Field(default_factory=utcnow, sa_column=Column(UTCDateTime, nullable=False))
    updated_at: datetime = Field(default_factory=utcnow, sa_column=Column(UTCDateTime, nullable=False))


class SsoIdentity(SQLModel, table=True):
    """A user's account at one provider (its ``sub``), linked at the first sign-in."""

    __tablename__ = "sso_identity"
    __table_args__ = (UniqueConstraint("provider_id", "subject", name="uq_sso_identity_subject"),)

    id: str = Field(default_factory=new_id, primary_key=True, max_length=36)
    provider_id: str = Field(
        sa_column=Column(String(36), ForeignKey("sso_provider.id", ondelete="CASCADE"), nullable=False)
    )
    subject: str = Field(max_length=255)
    user_id: str = Field(
        sa_column=Column(String(36), ForeignKey("user.id", ondelete="CASCADE"), nullable=False, index=True)
    )
    email: str | None = Field(default=None, max_length=320)
    created_at: datetime = Field(default_factory=utcnow, sa_column=Column(UTCDateTime, nullable=False))
    last_login_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime, nullable=True))


class SsoLoginState(SQLModel, table=True):
    """One sign-in sent to a provider, kept until its callback (deleted then: a replayed ``state`` finds nothing)."""

    __tablename__ = "sso_login_state"

    state_hash: str = Field(primary_key=True, max_length=64)
    provider_id: str = Field(
        sa_column=Column(String(36), ForeignKey("sso_provider.id", ondelete="CASCADE"), nullable=False)
    )
    nonce: str = Field(max_length=100)
    code_verifier: str = Field(max_length=200)
    redirect_uri: str = Field(max_length=2000)
    next_url: str = Field(default="/", max_length=2000)
    expires_at: datetime = Field(sa_column=Column(UTCDateTime, nullable=False))


class UserTotp(SQLModel, table=True):
    """A user's TOTP factor (RFC 6238). ``confirmed_at`` is None while enrolment waits for a first code.

    ``last_step`` is the time step of the last code accepted (a code is never accepted twice);
    ``failed_attempts`` counts wrong codes in a row (a pause follows too many).
    """

    __tablename__ = "user_totp"

    user_id: str = Field(sa_column=Column(String(36), ForeignKey("user.id", ondelete="CASCADE"), primary_key=True))
    secret: str
    confirmed_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime, nullable=True))
    last_step: int = 0
    failed_attempts: int = 0
    last_failed_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime, nullable=True))
    created_at: datetime = Field(default_factory=utcnow, sa_column=Column(UTCDateTime, nullable=False))


class RecoveryCode(SQLModel, table=True):
    """One single-use recovery code of a user (SHA-256 of a random code shown once)."""

    __tablename__ = "recovery_code"

    id: str = Field(default_factory=new_id, primary_key=True, max_length=36)
    user_id: str = Field(
        sa_column=Column(String(36), ForeignKey("user.id", ondelete="CASCADE"), nullable=False, index=True)
    )
    code_hash: str = Field(max_length=64)
    used_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime, nullable=True))


class SignInPolicy(SQLModel, table=True):
    """The install's sign-in rules (one row, id 1): who must use a second factor with a password.

    ``require_totp`` is ``none``, ``admins`` (platform admins) or ``everyone``.
    """

    __tablename__ = "sign_in_policy"

    id: int = Field(default=1, primary_key=True)
    require_totp: str = Field(default="none", max_length=20)
    updated_by: str | None = Field(default=None, max_length=36)
    updated_at: datetime = Field(default_factory=utcnow, sa_column=Column(UTCDateTime, nullable=False))
