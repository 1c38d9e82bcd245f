"""continuous overwatch: coverage requests on incidents, relief missions

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03 18:00:00.000000

- ``incidents.coverage_mode`` (none | duration | until_closed), ``coverage_s`` (the duration asked)
  and ``coverage_until`` (its end, set once the first drone is on scene), ``on_scene_drone_id``
  (the drone covering the scene now, which the video follows);
- ``missions.relieves_mission_id`` (the mission a relief takes the scene over from) and
  ``left_scene_at`` (when the mission's drone left the scene);
- ``uq_missions_active_incident`` counts only missions that relieve none, so a relief can fly to
  its incident while the mission it relieves is still on scene; a second first mission for one
  incident is still refused, and one drone still flies one mission at a time.
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

_ACTIVE = "state IN ('planned', 'uploading', 'launching', 'enroute', 'on_scene', 'returning')"
_INDEX = "uq_missions_active_incident"


def _incident_index(where: str) -> None:
    clause = sa.text(where)
    op.create_index(_INDEX, "missions", ["incident_id"], unique=True, sqlite_where=clause, postgresql_where=clause)


def upgrade() -> None:
    # plain ADD COLUMN: a batch rebuild of ``incidents`` would trip the foreign keys pointing at it on SQLite
    op.add_column(
        "incidents",
        sa.Column("coverage_mode", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False, server_default="none"),
    )
    op.add_column("incidents", sa.Column("coverage_s", sa.Float(), nullable=True))
    op.add_column("incidents", sa.Column("coverage_until", sa.DateTime(timezone=True), nullable=True))
    op.add_column(
        "incidents", sa.Column("on_scene_drone_id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True)
    )
    op.add_column("missions", sa.Column("relieves_mission_id", sa.Integer(), nullable=True))
    op.add_column("missions", sa.Column("left_scene_at", sa.DateTime(timezone=True), nullable=True))
    op.drop_index(_INDEX, table_name="missions")
    _incident_index(f"{_ACTIVE} AND relieves_mission_id IS NULL")


def downgrade() -> None:
    # two active missions of one incident (a hand-over in progress) cannot both stay active under the
    # old index: the relief keeps the scene, the relieved mission is closed as completed
    op.execute(
        "UPDATE missions SET state = 'completed' WHERE id IN (SELECT relieves_mission_id FROM missions "
        f"WHERE relieves_mission_id IS NOT NULL AND {_ACTIVE}) AND {_ACTIVE}"
    )
    op.drop_index(_INDEX, table_name="missions")
    _incident_index(_ACTIVE)
    op.drop_column("missions", "left_scene_at")
    op.drop_column("missions", "relieves_mission_id")
    op.drop_column("incidents", "on_scene_drone_id")
    op.drop_column("incidents", "coverage_until")
    op.drop_column("incidents", "coverage_s")
    op.drop_column("incidents", "coverage_mode")
