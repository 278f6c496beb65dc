"""integrations

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-29

Integrations (OAuth settings, config schema and defaults), per-organization mappings, their OAuth
connections (Fernet-encrypted tokens, refresh guard) and pending browser authorizations.
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

import app.models.base

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

_JSON = sa.JSON().with_variant(sa.JSON(none_as_null=True), "postgresql")


def upgrade() -> None:
    op.create_table(
        "integration",
        sa.Column("id", sqlmodel.sql.sqltypes.AutoString(length=36), nullable=False),
        sa.Column("name", sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
        sa.Column("description", sqlmodel.sql.sqltypes.AutoString(length=2000), nullable=True),
        sa.Column("oauth_flow", sqlmodel.sql.sqltypes.AutoString(length=30), nullable=False),
        sa.Column("authorization_url", sqlmodel.sql.sqltypes.AutoString(length=2000), nullable=True),
        sa.Column("token_url", sqlmodel.sql.sqltypes.AutoString(length=2000), nullable=True),
        sa.Column("client_id", sqlmodel.sql.sqltypes.AutoString(length=500), nullable=True),
        sa.Column("client_secret", sqlmodel.sql.sqltypes.AutoString(), nullable=True),
        sa.Column("token_auth_method", sqlmodel.sql.sqltypes.AutoString(length=30), nullable=False),
        sa.Column("scopes", sqlmodel.sql.sqltypes.AutoString(length=2000), nullable=False),
        sa.Column("config_schema", _JSON, nullable=False),
        sa.Column("config_defaults", _JSON, nullable=False),
        sa.Column("updated_by", sqlmodel.sql.sqltypes.AutoString(length=36), nullable=True),
        sa.Column("created_at", app.models.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", app.models.base.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("integration", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_integration_name"), ["name"], unique=True)

    op.create_table(
        "integration_mapping",
        sa.Column("id", sqlmodel.sql.sqltypes.AutoString(length=36), nullable=False),
        sa.Column("integration_id", sa.String(length=36), nullable=False),
        sa.Column("organization_id", sqlmodel.sql.sqltypes.AutoString(length=36), nullable=False),
        sa.Column("entity_id", sqlmodel.sql.sqltypes.AutoString(length=255), nullable=True),
        sa.Column("entity_name", sqlmodel.sql.sqltypes.AutoString(length=255), nullable=True),
        sa.Column("config_values", _JSON, nullable=False),
        sa.Column("updated_by", sqlmodel.sql.sqltypes.AutoString(length=36), nullable=True),
        sa.Column("created_at", app.models.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", app.models.base.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["integration_id"], ["integration.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["organization_id"], ["organization.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("integration_id", "organization_id", name="uq_integration_mapping_org"),
    )
    with op.batch_alter_table("integration_mapping", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_integration_mapping_organization_id"), ["organization_id"], unique=False)

    op.create_table(
        "integration_connection",
        sa.Column("id", sqlmodel.sql.sqltypes.AutoString(length=36), nullable=False),
        sa.Column("mapping_id", sa.String(length=36), nullable=False),
        sa.Column("status", sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
        sa.Column("access_token", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("refresh_token", sqlmodel.sql.sqltypes.AutoString(), nullable=True),
        sa.Column("token_type", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.Column("scopes", sqlmodel.sql.sqltypes.AutoString(length=2000), nullable=False),
        sa.Column("expires_at", app.models.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("connected_at", app.models.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("connected_by", sqlmodel.sql.sqltypes.AutoString(length=36), nullable=True),
        sa.Column("last_refreshed_at", app.models.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("refresh_count", sa.Integer(), nullable=False),
        sa.Column("last_error", sqlmodel.sql.sqltypes.AutoString(length=2000), nullable=True),
        sa.Column("last_error_at", app.models.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("refresh_claim", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
        sa.Column("refresh_claim_until", app.models.base.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["mapping_id"], ["integration_mapping.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("mapping_id"),
    )

    op.create_table(
        "integration_oauth_state",
        sa.Column("state_hash", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("mapping_id", sa.String(length=36), nullable=False),
        sa.Column("user_id", sqlmodel.sql.sqltypes.AutoString(length=36), nullable=False),
        sa.Column("code_verifier", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("redirect_uri", sqlmodel.sql.sqltypes.AutoString(length=2000), nullable=False),
        sa.Column("expires_at", app.models.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("created_at", app.models.base.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["mapping_id"], ["integration_mapping.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("state_hash"),
    )


def downgrade() -> None:
    op.drop_table("integration_oauth_state")
    op.drop_table("integration_connection")
    with op.batch_alter_table("integration_mapping", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_integration_mapping_organization_id"))
    op.drop_table("integration_mapping")
    with op.batch_alter_table("integration", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_integration_name"))
    op.drop_table("integration")
