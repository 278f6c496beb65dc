"""single sign-on providers, linked identities, TOTP factors, sign-in policy

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-07

OIDC providers (client secret as a Fernet token), the accounts users linked at them, pending sign-ins
(``state`` hashed, deleted at the callback), TOTP factors (secret as a Fernet token) and hashed recovery
codes, the install's sign-in policy (one row) and ``organization.sso_only`` (issue 22, docs/sign-in.md).
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

import app.models.base

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None

_JSON = sa.JSON().with_variant(sa.JSON(none_as_null=True), "postgresql")
_WHEN = app.models.base.UTCDateTime(timezone=True)


def _text(length: int | None = None) -> sqlmodel.sql.sqltypes.AutoString:
    return sqlmodel.sql.sqltypes.AutoString(length=length)


def upgrade() -> None:
    op.create_table(
        "sign_in_policy",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("require_totp", _text(20), nullable=False),
        sa.Column("updated_by", _text(36), nullable=True),
        sa.Column("updated_at", _WHEN, nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "sso_provider",
        sa.Column("id", _text(36), nullable=False),
        sa.Column("slug", _text(60), nullable=False),
        sa.Column("display_name", _text(100), nullable=False),
        sa.Column("kind", _text(20), nullable=False),
        sa.Column("tenant", _text(100), nullable=True),
        sa.Column("issuer", _text(500), nullable=False),
        sa.Column("client_id", _text(500), nullable=False),
        sa.Column("client_secret", _text(), nullable=True),
        sa.Column("scopes", _text(1000), nullable=False),
        sa.Column("is_active", sa.Boolean(), nullable=False),
        sa.Column("create_users", sa.Boolean(), nullable=False),
        sa.Column("organization_id", _text(36), nullable=True),
        sa.Column("domain_map", _JSON, nullable=False),
        sa.Column("default_role", _text(200), nullable=True),
        sa.Column("created_at", _WHEN, nullable=False),
        sa.Column("updated_at", _WHEN, nullable=False),
        sa.ForeignKeyConstraint(["organization_id"], ["organization.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("sso_provider", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_sso_provider_slug"), ["slug"], unique=True)

    op.create_table(
        "recovery_code",
        sa.Column("id", _text(36), nullable=False),
        sa.Column("user_id", sa.String(length=36), nullable=False),
        sa.Column("code_hash", _text(64), nullable=False),
        sa.Column("used_at", _WHEN, nullable=True),
        sa.ForeignKeyConstraint(["user_id"], ["user.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("recovery_code", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_recovery_code_user_id"), ["user_id"], unique=False)

    op.create_table(
        "sso_identity",
        sa.Column("id", _text(36), nullable=False),
        sa.Column("provider_id", sa.String(length=36), nullable=False),
        sa.Column("subject", _text(255), nullable=False),
        sa.Column("user_id", sa.String(length=36), nullable=False),
        sa.Column("email", _text(320), nullable=True),
        sa.Column("created_at", _WHEN, nullable=False),
        sa.Column("last_login_at", _WHEN, nullable=True),
        sa.ForeignKeyConstraint(["provider_id"], ["sso_provider.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["user_id"], ["user.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("provider_id", "subject", name="uq_sso_identity_subject"),
    )
    with op.batch_alter_table("sso_identity", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_sso_identity_user_id"), ["user_id"], unique=False)

    op.create_table(
        "sso_login_state",
        sa.Column("state_hash", _text(64), nullable=False),
        sa.Column("provider_id", sa.String(length=36), nullable=False),
        sa.Column("nonce", _text(100), nullable=False),
        sa.Column("code_verifier", _text(200), nullable=False),
        sa.Column("redirect_uri", _text(2000), nullable=False),
        sa.Column("next_url", _text(2000), nullable=False),
        sa.Column("expires_at", _WHEN, nullable=False),
        sa.ForeignKeyConstraint(["provider_id"], ["sso_provider.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("state_hash"),
    )
    op.create_table(
        "user_totp",
        sa.Column("user_id", sa.String(length=36), nullable=False),
        sa.Column("secret", _text(), nullable=False),
        sa.Column("confirmed_at", _WHEN, nullable=True),
        sa.Column("last_step", sa.Integer(), nullable=False),
        sa.Column("failed_attempts", sa.Integer(), nullable=False),
        sa.Column("last_failed_at", _WHEN, nullable=True),
        sa.Column("created_at", _WHEN, nullable=False),
        sa.ForeignKeyConstraint(["user_id"], ["user.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("user_id"),
    )
    with op.batch_alter_table("organization", schema=None) as batch_op:
        batch_op.add_column(sa.Column("sso_only", sa.Boolean(), server_default=sa.false(), nullable=False))


def downgrade() -> None:
    with op.batch_alter_table("organization", schema=None) as batch_op:
        batch_op.drop_column("sso_only")
    op.drop_table("user_totp")
    op.drop_table("sso_login_state")
    with op.batch_alter_table("sso_identity", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_sso_identity_user_id"))
    op.drop_table("sso_identity")
    with op.batch_alter_table("recovery_code", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_recovery_code_user_id"))
    op.drop_table("recovery_code")
    with op.batch_alter_table("sso_provider", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_sso_provider_slug"))
    op.drop_table("sso_provider")
    op.drop_table("sign_in_policy")
