"""flown tracks, incident districts and splits, report distances, share links

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-03 17:10:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # plain ADD COLUMN: a batch rebuild of ``incidents`` would trip the foreign keys pointing at it on SQLite
    op.add_column("incidents", sa.Column("district", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=True))
    op.add_column("incidents", sa.Column("split_from_id", sa.Integer(), nullable=True))
    op.create_index(op.f("ix_incidents_district"), "incidents", ["district"], unique=False)
    op.add_column("incident_reports", sa.Column("distance_m", sa.Float(), nullable=True))
    op.create_table(
        "telemetry_samples",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("mission_id", sa.Integer(), nullable=False),
        sa.Column("drone_id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("lat", sa.Float(), nullable=False),
        sa.Column("lon", sa.Float(), nullable=False),
        sa.Column("alt_m", sa.Float(), nullable=False),
        sa.Column("battery_pct", sa.Float(), nullable=True),
        sa.Column("speed_ms", sa.Float(), nullable=True),
        sa.ForeignKeyConstraint(["mission_id"], ["missions.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_telemetry_samples_mission_at", "telemetry_samples", ["mission_id", "at"], unique=False)
    op.create_table(
        "shares",
        sa.Column("id", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("incident_id", sa.Integer(), nullable=False),
        sa.Column("token_sha256", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("created_by", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_by", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
        sa.ForeignKeyConstraint(["incident_id"], ["incidents.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("token_sha256"),
    )
    op.create_index(op.f("ix_shares_incident_id"), "shares", ["incident_id"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_shares_incident_id"), table_name="shares")
    op.drop_table("shares")
    op.drop_index("ix_telemetry_samples_mission_at", table_name="telemetry_samples")
    op.drop_table("telemetry_samples")
    op.drop_index(op.f("ix_incidents_district"), table_name="incidents")
    op.drop_column("incident_reports", "distance_m")  # SQLite 3.35+ drops a plain column in place
    op.drop_column("incidents", "split_from_id")
    op.drop_column("incidents", "district")
