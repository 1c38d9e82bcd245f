"""Bulk writes of a history of incidents, missions and flown tracks (``dronedispatch seed-history``).

The same tables as the service's repositories, written many rows per statement: a year holds
hundreds of thousands of incidents and millions of telemetry samples, which one short transaction
per row would take hours to store. Rows get their ids here (after the highest present), so missions
can name their incident and samples their mission without reading ids back; PostgreSQL's sequences
are moved past them at the end. Telemetry samples go in by COPY on PostgreSQL and by the driver's
executemany on SQLite (the ORM's per-row work would cost more than the writing).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, func, insert, select

from dronedispatch.store.models import Incident, IncidentReport, Mission, TelemetrySample

#: Columns of a telemetry sample row, in the order :meth:`HistoryStore.add_samples` takes them.
SAMPLE_COLUMNS = ("mission_id", "drone_id", "at", "lat", "lon", "alt_m", "battery_pct", "speed_ms")
#: Rows per INSERT statement (SQLite's bound-variable limit stays far off).
BATCH_ROWS = 2000


class HistoryStore:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._pg = engine.dialect.name == "postgresql"

    def next_ids(self) -> tuple[int, int]:
        """The first free incident id and mission id."""
        with self.engine.connect() as conn:
            inc = conn.execute(select(func.max(Incident.id))).scalar() or 0  # type: ignore[arg-type]
            mis = conn.execute(select(func.max(Mission.id))).scalar() or 0  # type: ignore[arg-type]
        return int(inc) + 1, int(mis) + 1

    def add_incidents(
        self, incidents: Sequence[dict[str, Any]], reports: Sequence[dict[str, Any]], missions: Sequence[dict[str, Any]]
    ) -> None:
        """Incidents with their first reports and their missions, in one transaction."""
        with self.engine.begin() as conn:
            for table, rows in ((Incident, incidents), (IncidentReport, reports), (Mission, missions)):
                for start in range(0, len(rows), BATCH_ROWS):
                    conn.execute(insert(table), list(rows[start : start + BATCH_ROWS]))

    def add_samples(self, rows: Sequence[tuple[Any, ...]]) -> None:
        """Telemetry samples as tuples of :data:`SAMPLE_COLUMNS` (``at`` an aware UTC datetime)."""
        if not rows:
            return
        columns = ", ".join(SAMPLE_COLUMNS)
        raw = self.engine.raw_connection()
        try:
            cur = raw.cursor()
            if self._pg:
                with cur.copy(f"COPY {TelemetrySample.__tablename__} ({columns}) FROM STDIN") as copy:  # type: ignore[attr-defined]
                    for row in rows:
                        copy.write_row(row)
            else:
                # the text SQLAlchemy's SQLite DateTime writes and reads: naive UTC with microseconds
                marks = ", ".join("?" for _ in SAMPLE_COLUMNS)
                cur.executemany(
                    f"INSERT INTO {TelemetrySample.__tablename__} ({columns}) VALUES ({marks})",
                    [(r[0], r[1], _sqlite_time(r[2]), *r[3:]) for r in rows],
                )
            cur.close()
            raw.commit()
        finally:
            raw.close()

    def finish(self) -> None:
        """Move PostgreSQL's id sequences past the ids given here; refresh the planner's statistics."""
        if not self._pg:
            with self.engine.begin() as conn:
                conn.exec_driver_sql("ANALYZE")
            return
        with self.engine.begin() as conn:
            for table in ("incidents", "incident_reports", "missions"):
                highest = f"GREATEST((SELECT MAX(id) FROM {table}), 1)"
                conn.exec_driver_sql(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), {highest})")
        # VACUUM as well: index-only scans need the visibility map it writes (outside a transaction)
        with self.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql("VACUUM ANALYZE")


def _sqlite_time(at: datetime) -> str:
    return f"{at.astimezone(UTC):%Y-%m-%d %H:%M:%S.%f}"
