"""structured incident close, battery used per mission, statistics indexes

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-03 17:30:00.000000

For the statistics (``dronedispatch/store/stats.py``) to answer within 300 ms on a year of data:
- ``ix_incidents_district_created_at`` (district, created_at): a district's incidents of a period
  without reading the other districts' (the unfiltered period uses ``ix_incidents_created_at``);
- ``ix_missions_launched_at``: the flights of a period for flight hours and utilisation;
- ``ix_missions_incident_times`` (incident_id, created_at, launched_at, on_scene_at): an incident's
  first dispatch, launch and arrival read from the index alone, for the response times;
- ``incidents.dispatch_s``, ``airborne_s``, ``on_scene_s``: a summary of the missions, seconds from
  the report to the first dispatch, launch and arrival, refreshed by the statistics for the missions
  changed since (``ix_missions_updated_at``), with ``ix_incidents_response_times`` (created_at,
  district, category and the three) so the response times of a period are read from one index,
  with no join and no date arithmetic per row;
- ``missions.battery_used_pct``: a summary column, the battery a mission used, so battery cycles
  never scan ``telemetry_samples`` (filled when the service starts, for missions that ended, and by
  ``dronedispatch seed-history``; the query falls back to the samples for a mission without it).
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # plain ADD COLUMN: a batch rebuild of ``incidents`` would trip the foreign keys pointing at it on SQLite
    op.add_column("incidents", sa.Column("outcome_code", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=True))
    op.add_column("incidents", sa.Column("first_on_scene", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=True))
    op.add_column("missions", sa.Column("battery_used_pct", sa.Float(), nullable=True))
    for column in ("dispatch_s", "airborne_s", "on_scene_s"):
        op.add_column("incidents", sa.Column(column, sa.Float(), nullable=True))
    op.create_index(
        "ix_incidents_response_times",
        "incidents",
        ["created_at", "district", "category", "dispatch_s", "airborne_s", "on_scene_s"],
        unique=False,
    )
    op.create_index("ix_missions_updated_at", "missions", ["updated_at"], unique=False)
    op.create_index("ix_incidents_district_created_at", "incidents", ["district", "created_at"], unique=False)
    op.create_index("ix_missions_launched_at", "missions", ["launched_at"], unique=False)
    op.create_index(
        "ix_missions_incident_times",
        "missions",
        ["incident_id", "created_at", "launched_at", "on_scene_at"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index("ix_missions_updated_at", table_name="missions")
    op.drop_index("ix_incidents_response_times", table_name="incidents")
    for column in ("on_scene_s", "airborne_s", "dispatch_s"):
        op.drop_column("incidents", column)
    op.drop_index("ix_missions_incident_times", table_name="missions")
    op.drop_index("ix_missions_launched_at", table_name="missions")
    op.drop_index("ix_incidents_district_created_at", table_name="incidents")
    op.drop_column("missions", "battery_used_pct")  # SQLite 3.35+ drops a plain column in place
    op.drop_column("incidents", "first_on_scene")
    op.drop_column("incidents", "outcome_code")
