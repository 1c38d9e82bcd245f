"""login hardening: failed-login throttling, sign-in sessions with rotating refresh tokens, WebSocket tickets

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-03 19:00:00.000000

- ``login_throttle``: failures per account and per client address, and their lockouts;
- ``login_sessions``: one row per sign-in, holding the SHA-256 of its current refresh token;
- ``ws_tickets``: one-use tickets that open the event WebSocket, seconds long.
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "login_throttle",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kind", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("key", sqlmodel.sql.sqltypes.AutoString(length=128), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("window_start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_failure_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("locked_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("lockouts", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_login_throttle_kind_key", "login_throttle", ["kind", "key"], unique=True)
    op.create_table(
        "login_sessions",
        sa.Column("id", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("username", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("refresh_sha256", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("previous_sha256", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("refreshed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_reason", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("refresh_sha256"),
    )
    op.create_index(op.f("ix_login_sessions_username"), "login_sessions", ["username"], unique=False)
    op.create_index(op.f("ix_login_sessions_previous_sha256"), "login_sessions", ["previous_sha256"], unique=False)
    op.create_table(
        "ws_tickets",
        sa.Column("ticket_sha256", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("username", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("session_id", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=True),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("ticket_sha256"),
    )


def downgrade() -> None:
    op.drop_table("ws_tickets")
    op.drop_index(op.f("ix_login_sessions_previous_sha256"), table_name="login_sessions")
    op.drop_index(op.f("ix_login_sessions_username"), table_name="login_sessions")
    op.drop_table("login_sessions")
    op.drop_index("ix_login_throttle_kind_key", table_name="login_throttle")
    op.drop_table("login_throttle")
