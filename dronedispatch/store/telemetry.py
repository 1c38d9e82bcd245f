"""Flown tracks: the telemetry samples kept for each mission (about one a second)."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import Engine, insert
from sqlmodel import Session, col, select

from dronedispatch.store.models import TelemetrySample

#: rows per INSERT: large enough to amortise the round trip, small enough for SQLite's variable limit
BATCH_ROWS = 2000
_COLUMNS = ("mission_id", "drone_id", "at", "lat", "lon", "alt_m", "battery_pct", "speed_ms")


class TelemetryStore:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def add_samples(self, samples: Sequence[TelemetrySample]) -> None:
        """Insert ``samples`` in one transaction, as multi-row INSERTs (no ORM unit of work per row)."""
        if not samples:
            return
        rows = [{c: getattr(s, c) for c in _COLUMNS} for s in samples]
        with self._engine.begin() as conn:
            for start in range(0, len(rows), BATCH_ROWS):
                conn.execute(insert(TelemetrySample), rows[start : start + BATCH_ROWS])

    def track(self, mission_id: int) -> list[TelemetrySample]:
        """The mission's samples in time order."""
        with Session(self._engine) as s:
            query = (
                select(TelemetrySample)
                .where(TelemetrySample.mission_id == mission_id)
                .order_by(col(TelemetrySample.at), col(TelemetrySample.id))
            )
            return list(s.exec(query).all())

    def tracks(self, mission_ids: Sequence[int]) -> dict[int, list[TelemetrySample]]:
        """Several missions' samples at once, each in time order (missions without samples are absent)."""
        out: dict[int, list[TelemetrySample]] = {}
        if not mission_ids:
            return out
        with Session(self._engine) as s:
            query = (
                select(TelemetrySample)
                .where(col(TelemetrySample.mission_id).in_(list(mission_ids)))
                .order_by(col(TelemetrySample.mission_id), col(TelemetrySample.at), col(TelemetrySample.id))
            )
            for sample in s.exec(query).all():
                out.setdefault(sample.mission_id, []).append(sample)
        return out
