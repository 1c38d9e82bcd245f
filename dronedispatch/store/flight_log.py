"""Reads for the public flight log: ended flights with their incident's category and district, and
their flown tracks. Only the columns the redaction needs are selected (blocking; call from a thread)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Engine
from sqlalchemy import select as sa_select
from sqlmodel import Session, col, select

from dronedispatch.domain.redaction import Flight
from dronedispatch.store.models import Incident, Mission, TelemetrySample
from dronedispatch.store.repo import as_utc


class FlightLogStore:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def ended_flights(self, since: datetime, until: datetime, limit: int) -> list[Flight]:
        """Flights launched in [since, until) that have ended, newest first, at most ``limit``."""
        with Session(self.engine) as s:
            rows = s.execute(
                sa_select(
                    col(Mission.id),
                    col(Mission.launched_at),
                    col(Mission.ended_at),
                    col(Incident.category),
                    col(Incident.district),
                    col(Incident.lat),
                    col(Incident.lon),
                )
                .join(Incident, col(Incident.id) == col(Mission.incident_id))
                .where(col(Mission.launched_at).is_not(None), col(Mission.ended_at).is_not(None))
                .where(col(Mission.launched_at) >= since, col(Mission.launched_at) < until)
                .order_by(col(Mission.launched_at).desc(), col(Mission.id).desc())
                .limit(limit)
            ).all()
            ids = [r[0] for r in rows]
            tracks: dict[int, list[tuple[float, float]]] = {i: [] for i in ids if i is not None}
            if ids:
                samples = s.exec(
                    select(TelemetrySample.mission_id, TelemetrySample.lat, TelemetrySample.lon)
                    .where(col(TelemetrySample.mission_id).in_(ids))
                    .order_by(col(TelemetrySample.mission_id), col(TelemetrySample.at))
                )
                for mission_id, lat, lon in samples:
                    tracks[mission_id].append((lat, lon))
        return [
            Flight(
                launched_at=as_utc(launched),
                ended_at=as_utc(ended),
                category=category,
                district=district,
                lat=lat,
                lon=lon,
                track=tracks.get(mid or 0, []),
            )
            for mid, launched, ended, category, district, lat, lon in rows
            if launched is not None and ended is not None
        ]
