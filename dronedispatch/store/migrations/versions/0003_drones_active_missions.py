"""drones table, one active mission per drone and incident, 64-bit opaque_id, recording path

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26 09:12:40.318204

Upgrading repairs what the new rules would refuse instead of failing on it: a drone or an incident
holding more than one active mission keeps only its newest; the older ones become failed.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

# Frozen copies: this revision must keep doing what it did when the application's lists change.
ACTIVE_STATES = ("planned", "uploading", "launching", "enroute", "on_scene", "returning")
ACTIVE_WHERE = "state IN ({})".format(", ".join(f"'{s}'" for s in ACTIVE_STATES))
SUPERSEDED = "superseded by mission {} when at most one active mission per drone/incident became a rule"

missions = sa.table(
    "missions",
    sa.column("id", sa.Integer),
    sa.column("drone_id", sa.String),
    sa.column("incident_id", sa.Integer),
    sa.column("state", sa.String),
    sa.column("reason", sa.String),
    sa.column("updated_at", sa.DateTime(timezone=True)),
    sa.column("ended_at", sa.DateTime(timezone=True)),
)
audit_log = sa.table(
    "audit_log",
    sa.column("id", sa.Integer),
    sa.column("at", sa.DateTime(timezone=True)),
    sa.column("actor", sa.String),
    sa.column("action", sa.String),
    sa.column("target_type", sa.String),
    sa.column("target_id", sa.String),
    sa.column("detail", sa.JSON),
)
drones = sa.table(
    "drones",
    sa.column("id", sa.String),
    sa.column("maintenance", sa.Boolean),
    sa.column("updated_at", sa.DateTime(timezone=True)),
)


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name != "sqlite":
        # SQLite's INTEGER is 64-bit already (the model keeps it there, so no table rebuild)
        op.alter_column(
            "missions", "opaque_id", existing_type=sa.Integer(), type_=sa.BigInteger(), existing_nullable=True
        )
    # plain ALTER TABLE on both databases: a SQLite table rebuild would trip over the evidence rows'
    # foreign keys to missions
    op.add_column("missions", sa.Column("recording_path", sqlmodel.sql.sqltypes.AutoString(), nullable=True))

    op.create_table(
        "drones",
        sa.Column("id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("maintenance", sa.Boolean(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    _backfill_maintenance(bind)

    now = datetime.now(UTC)
    _supersede_duplicates(bind, missions.c.drone_id, now)
    _supersede_duplicates(bind, missions.c.incident_id, now)
    where = sa.text(ACTIVE_WHERE)
    for name, column in (("uq_missions_active_drone", "drone_id"), ("uq_missions_active_incident", "incident_id")):
        op.create_index(name, "missions", [column], unique=True, sqlite_where=where, postgresql_where=where)


def _backfill_maintenance(bind: sa.Connection) -> None:
    """The flag used to live only in the audit log: the newest ``drone.maintenance`` entry per drone."""
    q = (
        sa.select(audit_log.c.target_id, audit_log.c.detail, audit_log.c.at)
        .where(audit_log.c.action == "drone.maintenance", audit_log.c.target_type == "drone")
        .order_by(audit_log.c.id)
    )
    newest: dict[str, dict[str, Any]] = {}
    for target_id, detail, at in bind.execute(q):
        # read the way the service read it on start-up: bool(detail.get("maintenance"))
        flag = bool(detail.get("maintenance")) if isinstance(detail, dict) else False
        newest[target_id] = {"id": target_id, "maintenance": flag, "updated_at": at}
    if newest:
        bind.execute(drones.insert(), list(newest.values()))


def _supersede_duplicates(bind: sa.Connection, key: sa.ColumnClause[Any], now: datetime) -> None:
    """Every active mission but the newest of each ``key`` value becomes failed (and audited)."""
    active = missions.c.state.in_(ACTIVE_STATES)
    rows = bind.execute(sa.select(missions.c.id, key, missions.c.state).where(active).order_by(missions.c.id.desc()))
    keeper: dict[Any, int] = {}
    for mission_id, value, state in rows.all():
        if value not in keeper:
            keeper[value] = mission_id  # highest id: the newest
            continue
        reason = SUPERSEDED.format(keeper[value])
        bind.execute(
            missions.update()
            .where(missions.c.id == mission_id)
            .values(state="failed", reason=reason, updated_at=now, ended_at=now)
        )
        bind.execute(
            audit_log.insert().values(
                at=now,
                actor="system",
                action="mission.state",
                target_type="mission",
                target_id=str(mission_id),
                detail={"old": state, "new": "failed", "reason": reason, "migration": revision},
            )
        )


def downgrade() -> None:
    # Missions marked failed by the upgrade stay failed: nothing records which were active before.
    for name in ("uq_missions_active_incident", "uq_missions_active_drone"):
        op.drop_index(name, table_name="missions")
    op.drop_table("drones")
    op.drop_column("missions", "recording_path")  # SQLite >= 3.35 drops a column in place
    if op.get_bind().dialect.name != "sqlite":
        op.alter_column(
            "missions", "opaque_id", existing_type=sa.BigInteger(), type_=sa.Integer(), existing_nullable=True
        )
