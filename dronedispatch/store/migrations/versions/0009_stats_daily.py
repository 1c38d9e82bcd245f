"""statistics summary: a packed row per local day (stats_daily) and a reduced row per incident (stats_incidents)

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-03 20:30:00.000000

For the statistics to answer within 300 ms over a year (100,000 incidents): ``stats_daily`` holds, per
local day, packed as arrays, what each of its incidents adds to the statistics (district and category
codes, local hour, outcome and first-on-scene classes, response times, position): a year is 365 rows
read whole and computed on with numpy, and the days of a period only partly inside are read from
``stats_incidents``, which holds,
per incident, what every statistics query reads, already reduced (the city's local day and hour as
integers, the district, category, source and camera, closed or not and the outcome, who was first on
scene, the four response times in seconds, the position), so a period is one range read with no join,
no date arithmetic per row and no look-up of the first mission. On SQLite the table is clustered by
(created_at, incident_id) (WITHOUT ROWID): a period's incidents lie together; on PostgreSQL the
primary key is that index.
``stats_state`` (one row) records the local offset the days were computed for and when the summary
was last brought up to date with the incidents and missions changed since (``ix_incidents_updated_at``).
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

#: ``stats_daily``'s packed arrays, in order (dronedispatch/store/stats.py ``PACKED``)
PACKED_COLUMNS = (
    "district_codes", "category_codes", "source_codes", "hours", "outcomes", "firsts", "false_alarms",
    "report_to_dispatch", "dispatch_to_airborne", "airborne_to_on_scene", "report_to_on_scene", "lats", "lons",
)  # fmt: skip


def upgrade() -> None:
    text = sqlmodel.sql.sqltypes.AutoString
    op.create_table(
        "stats_incidents",
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("incident_id", sa.Integer(), nullable=False),
        sa.Column("day", sa.Integer(), nullable=False),
        sa.Column("hour", sa.Integer(), nullable=False),
        sa.Column("district", text(length=32), nullable=True),
        sa.Column("category", text(length=32), nullable=False),
        sa.Column("source", text(length=32), nullable=False),
        sa.Column("camera_id", text(length=64), nullable=True),
        sa.Column("closed", sa.Boolean(), nullable=False),
        sa.Column("outcome_code", text(length=32), nullable=True),
        sa.Column("first_on_scene", text(length=16), nullable=True),
        sa.Column("report_to_dispatch", sa.Float(), nullable=True),
        sa.Column("dispatch_to_airborne", sa.Float(), nullable=True),
        sa.Column("airborne_to_on_scene", sa.Float(), nullable=True),
        sa.Column("report_to_on_scene", sa.Float(), nullable=True),
        sa.Column("lat", sa.Float(), nullable=False),
        sa.Column("lon", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("created_at", "incident_id"),
        sqlite_with_rowid=False,
    )
    op.create_index("ix_stats_incidents_incident_id", "stats_incidents", ["incident_id"], unique=True)
    op.create_index("ix_stats_incidents_day", "stats_incidents", ["day"], unique=False)
    # one row per local day: its district, category and (source, camera) names (JSON lists) and, per
    # incident of the day (packed arrays, in the order of their creation), its codes into those names,
    # local hour, outcome class, first on scene class, false alarm or not, the four response times
    # (float64, NaN for none) and the position
    op.create_table(
        "stats_daily",
        sa.Column("day", sa.Integer(), nullable=False),
        sa.Column("incidents", sa.Integer(), nullable=False),
        sa.Column("districts", sa.Text(), nullable=False),
        sa.Column("categories", sa.Text(), nullable=False),
        sa.Column("sources", sa.Text(), nullable=False),
        *(sa.Column(name, sa.LargeBinary(), nullable=False) for name in PACKED_COLUMNS),
        sa.PrimaryKeyConstraint("day"),
    )
    if op.get_bind().dialect.name == "postgresql":
        # the packed arrays are read whole and barely compress: stored out of line uncompressed, a year's
        # read skips pglz decompression of megabytes
        for column in PACKED_COLUMNS:
            op.execute(f"ALTER TABLE stats_daily ALTER COLUMN {column} SET STORAGE EXTERNAL")
    op.create_table(
        "stats_state",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("offset_min", sa.Integer(), nullable=True),
        sa.Column("refreshed_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    # the one row every refresh locks first (serialising refreshes on both databases); no offset: built on first use
    op.execute("INSERT INTO stats_state (id, offset_min, refreshed_at) VALUES (1, NULL, NULL)")
    op.create_index("ix_incidents_updated_at", "incidents", ["updated_at"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_incidents_updated_at", table_name="incidents")
    op.drop_table("stats_state")
    op.drop_table("stats_daily")
    op.drop_index("ix_stats_incidents_day", table_name="stats_incidents")
    op.drop_index("ix_stats_incidents_incident_id", table_name="stats_incidents")
    op.drop_table("stats_incidents")
