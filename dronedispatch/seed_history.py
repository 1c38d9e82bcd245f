"""``dronedispatch seed-history``: fill the configured database with a realistic past.

Incidents arrive by hour of day (few at night, most in the evening) and by district (the IFEZ
districts busier than the wider municipalities), with categories, sources and the cameras of the
city's files; a camera-raised incident lies within that camera's range, and a few cameras raise
far more false alarms than the others. The nearest free drone flies each reachable incident: its
mission is dispatched, launched, on scene and back at its dock, with a track of telemetry samples
along a straight flight dock -> scene -> hover -> dock (1 Hz, or ``samples_per_mission`` evenly
spread), its battery falling with flight time. Incidents are closed with an outcome code and who
was first on scene; those of the last hours stay open.

The same random seed and end date give the same history. Rows are written through
:class:`dronedispatch.store.history.HistoryStore` (bulk inserts into the service's tables), a
day at a time.
"""

from __future__ import annotations

import math
import random
from bisect import bisect
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from itertools import accumulate
from typing import Any

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from shapely.geometry import Point, shape
from shapely.prepared import prep

from dronedispatch import cityfiles
from dronedispatch.app.statistics import utc_offset_min
from dronedispatch.domain.assets import AssetRegistry, load_assets
from dronedispatch.domain.districts import DistrictIndex
from dronedispatch.domain.fleet import FleetConfig
from dronedispatch.domain.geo import distance_m
from dronedispatch.settings import Settings
from dronedispatch.store.db import make_engine, migrate
from dronedispatch.store.history import HistoryStore
from dronedispatch.store.repo import Store
from dronedispatch.store.stats import StatsStore

#: Relative incident rate per hour of the city's day: quiet nights, an evening peak.
HOUR_WEIGHTS = (
    0.25,
    0.18,
    0.15,
    0.12,
    0.12,
    0.2,
    0.45,
    0.8,
    1.0,
    1.0,
    1.0,
    1.05,
    1.1,
    1.05,
    1.0,
    1.05,
    1.15,
    1.35,
    1.7,
    1.9,
    1.8,
    1.4,
    0.9,
    0.5,
)
CATEGORY_WEIGHTS = {
    "fire": 0.16,
    "traffic_accident": 0.24,
    "crime": 0.14,
    "missing_person": 0.06,
    "flood": 0.05,
    "environment": 0.12,
    "facility": 0.13,
    "other": 0.10,
}
#: Of every incident: raised by a camera (frigate, onvif) or reported otherwise.
SOURCE_WEIGHTS = {"frigate": 0.42, "onvif": 0.06, "webhook": 0.15, "cap": 0.05, "operator": 0.32}
#: Escalated to police or fire, by category (of incidents that were not false alarms).
ESCALATION = {
    "fire": 0.45,
    "traffic_accident": 0.35,
    "crime": 0.4,
    "missing_person": 0.3,
    "flood": 0.3,
    "environment": 0.1,
    "facility": 0.15,
    "other": 0.1,
}
#: Districts of the IFEZ are busier, per area, than the municipalities around them.
DISTRICT_KIND_WEIGHT = {"ifez_district": 4.0, "municipality": 1.0}
#: Farther than this from every dock, no drone is sent (patrols go).
MAX_RANGE_M = 8_000.0
CRUISE_ALT_M = 60.0
#: Incidents of the last hours before the end stay open.
OPEN_TAIL = timedelta(hours=3)
STEP_S = 1.0


@dataclass
class SeedOptions:
    days: int = 365
    incidents_per_day: float = 30.0
    samples_per_mission: int | None = None  # None: one a second
    seed: int = 1
    until: date | None = None  # the day after the last; default today (UTC)
    tz_offset_min: int = 540


@dataclass
class SeedResult:
    incidents: int = 0
    missions: int = 0
    samples: int = 0
    start: datetime | None = None
    end: datetime | None = None
    by_source: dict[str, int] = field(default_factory=dict)


@dataclass
class _DroneSlot:
    id: str
    sysid: int
    dock_lat: float
    dock_lon: float
    speed: float
    launch_delay_s: float
    endurance_s: float
    busy_until: datetime


class HistoryGenerator:
    """Deterministic rows of a past, day by day (no database involved)."""

    def __init__(
        self, fleet: FleetConfig, cameras: AssetRegistry, districts: dict[str, Any], opts: SeedOptions
    ) -> None:
        self.opts = opts
        self.rng = random.Random(opts.seed)
        self.index = DistrictIndex(districts)
        self.cameras = [c for c in cameras.cameras]
        # a few cameras (every seventh) watch a busy, noisy scene: far more false alarms
        self.camera_false = {c.id: (0.45 if i % 7 == 3 else 0.1) for i, c in enumerate(self.cameras)}
        self.camera_cum = list(accumulate(2.0 if i % 7 == 3 else 1.0 for i in range(len(self.cameras))))
        docks = {d.id: d for d in fleet.docks}
        epoch = datetime(1970, 1, 1, tzinfo=UTC)
        self.drones = [
            _DroneSlot(
                d.id,
                d.sysid,
                docks[d.dock].lat,
                docks[d.dock].lon,
                d.cruise_speed,
                d.launch_delay_s,
                d.endurance_min * 60.0,
                epoch,
            )
            for d in fleet.drones
        ]
        self.areas: list[tuple[str, Any, tuple[float, float, float, float]]] = []
        weights = []
        for feature in districts.get("features", []):
            geom = shape(feature["geometry"])
            kind = (feature.get("properties") or {}).get("kind", "municipality")
            self.areas.append((feature["properties"]["id"], prep(geom), geom.bounds))
            # busier per area, but a large outline is not proportionally busier (it is mostly empty)
            weights.append(DISTRICT_KIND_WEIGHT.get(kind, 1.0) * math.sqrt(geom.area))
        self.area_cum = list(accumulate(weights))
        self.hour_cum = list(accumulate(HOUR_WEIGHTS))
        self.cat_names, self.cat_cum = list(CATEGORY_WEIGHTS), list(accumulate(CATEGORY_WEIGHTS.values()))
        self.src_names, self.src_cum = list(SOURCE_WEIGHTS), list(accumulate(SOURCE_WEIGHTS.values()))

    def _pick(self, cum: list[float]) -> int:
        return min(bisect(cum, self.rng.random() * cum[-1]), len(cum) - 1)

    def _point_in(self, area: int) -> tuple[float, float]:
        _, geom, (x0, y0, x1, y1) = self.areas[area]
        for _ in range(200):
            lon, lat = self.rng.uniform(x0, x1), self.rng.uniform(y0, y1)
            if geom.contains(Point(lon, lat)):
                return lat, lon
        return (y0 + y1) / 2, (x0 + x1) / 2

    def days(self) -> Iterator[tuple[date, datetime, datetime]]:
        until = self.opts.until or datetime.now(UTC).date()
        for n in range(self.opts.days, 0, -1):
            day = until - timedelta(days=n)
            # the city's midnight to midnight, in UTC
            start = datetime.combine(day, time(0), tzinfo=UTC) - timedelta(minutes=self.opts.tz_offset_min)
            yield day, start, start + timedelta(days=1)

    def day_rows(
        self, day_start: datetime, end: datetime, first_incident: int, first_mission: int
    ) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]], list[tuple[Any, ...]]]:
        """One day's incidents, first reports, missions and samples; ids from the given firsts."""
        rng = self.rng
        mean = self.opts.incidents_per_day
        # a day's count varies around the mean (Poisson-like, kept simple: normal, at least 0)
        n = max(0, round(rng.gauss(mean, math.sqrt(mean))))
        times = sorted(
            day_start + timedelta(hours=self._pick(self.hour_cum), seconds=rng.uniform(0, 3600)) for _ in range(n)
        )
        incidents: list[dict[str, Any]] = []
        reports: list[dict[str, Any]] = []
        missions: list[dict[str, Any]] = []
        samples: list[tuple[Any, ...]] = []
        for t0 in times:
            if t0 >= end:
                continue
            inc_id = first_incident + len(incidents)
            category = self.cat_names[self._pick(self.cat_cum)]
            source = self.src_names[self._pick(self.src_cum)]
            camera_id = None
            if source in ("frigate", "onvif") and self.cameras:
                cam = self.cameras[self._pick(self.camera_cum)]
                camera_id = cam.id
                bearing, reach = rng.uniform(0, 2 * math.pi), rng.uniform(0, cam.range_m)
                lat = cam.lat + reach * math.cos(bearing) / 111_320.0
                lon = cam.lon + reach * math.sin(bearing) / (111_320.0 * math.cos(math.radians(cam.lat)))
                false_p = self.camera_false[cam.id]
            else:
                lat, lon = self._point_in(self._pick(self.area_cum))
                false_p = 0.08
            severity = rng.choice((1, 2, 2, 2, 3, 3, 4))
            mission = self._mission(inc_id, first_mission + len(missions), t0, lat, lon, end, samples)
            open_now = t0 > end - OPEN_TAIL
            row: dict[str, Any] = {
                "id": inc_id,
                "category": category,
                "severity": severity,
                "lat": lat,
                "lon": lon,
                "camera_id": camera_id,
                "source": source,
                "description": "",
                "report_count": 1,
                "district": self.index.district_at(lat, lon),
                "created_at": t0,
                "updated_at": t0,
                "status": "open",
                "outcome": None,
                "outcome_code": None,
                "first_on_scene": None,
                "closed_at": None,
                "dispatch_s": None,
                "airborne_s": None,
                "on_scene_s": None,
            }
            if mission is not None:
                missions.append(mission)
                # the mission's times on the incident (revision 0005's columns; the statistics read stats_incidents)
                row |= {
                    "status": "dispatched",
                    "dispatch_s": (mission["created_at"] - t0).total_seconds(),
                    "airborne_s": (mission["launched_at"] - t0).total_seconds(),
                    "on_scene_s": (mission["on_scene_at"] - t0).total_seconds(),
                }
            if not open_now:
                code = self._outcome(category, false_p)
                patrol_at = t0 + timedelta(seconds=rng.uniform(240, 1500))
                if mission is not None and mission["on_scene_at"] <= patrol_at:
                    first = "drone"
                else:
                    first = "patrol" if code != "false_alarm" or rng.random() < 0.5 else "none"
                done = mission["ended_at"] if mission is not None else t0 + timedelta(seconds=rng.uniform(600, 3600))
                closed = done + timedelta(seconds=rng.uniform(60, 900))
                row |= {
                    "status": "closed",
                    "outcome": code.replace("_", " "),
                    "outcome_code": code,
                    "first_on_scene": first,
                    "closed_at": closed,
                    "updated_at": closed,
                }
            incidents.append(row)
            reports.append(
                {
                    "incident_id": inc_id,
                    "source": source,
                    "source_ref": None,
                    "category": category,
                    "severity": severity,
                    "lat": lat,
                    "lon": lon,
                    "camera_id": camera_id,
                    "description": "",
                    "observed_at": t0,
                    "received_at": t0,
                    "raw": None,
                    "distance_m": 0.0,
                }
            )
        return incidents, reports, missions, samples

    def _outcome(self, category: str, false_p: float) -> str:
        r = self.rng.random()
        if r < false_p:
            return "false_alarm"
        if self.rng.random() < ESCALATION[category]:
            return "escalated"
        return "cleared_without_patrol" if self.rng.random() < 0.9 else "other"

    def _mission(
        self,
        inc_id: int,
        mission_id: int,
        t0: datetime,
        lat: float,
        lon: float,
        end: datetime,
        samples: list[tuple[Any, ...]],
    ) -> dict[str, Any] | None:
        rng = self.rng
        dispatched = t0 + timedelta(seconds=min(900.0, max(5.0, rng.lognormvariate(math.log(45.0), 0.6))))
        free = [d for d in self.drones if d.busy_until <= dispatched]
        reachable = [(distance_m(d.dock_lat, d.dock_lon, lat, lon), d) for d in free]
        reachable = [(dist, d) for dist, d in reachable if dist <= MAX_RANGE_M]
        if not reachable:
            return None
        dist, drone = min(reachable, key=lambda x: (x[0], x[1].id))
        launched = dispatched + timedelta(seconds=drone.launch_delay_s + rng.uniform(5, 25))
        leg_s = CRUISE_ALT_M / 3.0 + dist / drone.speed
        on_scene = launched + timedelta(seconds=leg_s)
        hover_s = rng.uniform(240, 900)
        ended = on_scene + timedelta(seconds=hover_s + leg_s + 20.0)
        if ended > end:  # still flying at the end of the history: not written
            return None
        drone.busy_until = ended + timedelta(minutes=10)  # battery swap at the dock
        flight_s = (ended - launched).total_seconds()
        start_pct = rng.uniform(92.0, 100.0)
        drain = 100.0 / drone.endurance_s * rng.uniform(1.0, 1.3)  # cruising costs a little more than hovering
        used = flight_s * drain
        self._track(mission_id, drone, launched, leg_s, hover_s, flight_s, lat, lon, start_pct, drain, samples)
        return {
            "id": mission_id,
            "incident_id": inc_id,
            "drone_id": drone.id,
            "sysid": drone.sysid,
            "state": "completed",
            "reason": None,
            "template": "hover_roi",
            "params": {},
            "items": [],
            "on_scene_seq": 0,
            "created_by": "seed-history",
            "created_at": dispatched,
            "updated_at": ended,
            "launched_at": launched,
            "on_scene_at": on_scene,
            "ended_at": ended,
            "battery_used_pct": round(used, 3),
        }

    def _track(
        self,
        mission_id: int,
        drone: _DroneSlot,
        launched: datetime,
        leg_s: float,
        hover_s: float,
        flight_s: float,
        lat: float,
        lon: float,
        start_pct: float,
        drain: float,
        out: list[tuple[Any, ...]],
    ) -> None:
        m = self.opts.samples_per_mission
        count = int(flight_s // STEP_S) + 1 if m is None else max(2, m)
        step = flight_s / (count - 1)
        back_from = leg_s + hover_s
        for k in range(count):
            s = k * step
            if s < leg_s:
                f, speed = s / leg_s, drone.speed
            elif s < back_from:
                f, speed = 1.0, 0.0
            else:
                f, speed = max(0.0, 1.0 - (s - back_from) / leg_s), drone.speed
            alt = CRUISE_ALT_M if 0 < k < count - 1 else 0.0
            out.append(
                (
                    mission_id,
                    drone.id,
                    launched + timedelta(seconds=s),
                    drone.dock_lat + f * (lat - drone.dock_lat),
                    drone.dock_lon + f * (lon - drone.dock_lon),
                    alt,
                    round(start_pct - s * drain, 2),
                    speed,
                )
            )


def seed_history(settings: Settings, opts: SeedOptions, *, progress: bool = True) -> SeedResult:
    """Write ``opts.days`` days of history into the database of ``settings``."""
    engine = make_engine(settings.database_url)
    try:
        migrate(engine)
        history = HistoryStore(engine)
        gen = HistoryGenerator(
            cityfiles.load_fleet(settings.fleet),
            load_assets(settings.cameras),
            cityfiles.read_structured(settings.districts),
            opts,
        )
        next_incident, next_mission = history.next_ids()
        result = SeedResult()
        columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
        with Progress(*columns, disable=not progress) as bar:
            task = bar.add_task("seeding days", total=opts.days)
            for _day, start, end in gen.days():
                incidents, reports, missions, samples = gen.day_rows(start, end, next_incident, next_mission)
                history.add_incidents(incidents, reports, missions)
                history.add_samples(samples)
                next_incident += len(incidents)
                next_mission += len(missions)
                result.incidents += len(incidents)
                result.missions += len(missions)
                result.samples += len(samples)
                for row in incidents:
                    result.by_source[row["source"]] = result.by_source.get(row["source"], 0) + 1
                result.start = result.start or start
                result.end = end
                bar.update(task, advance=1, description=f"seeding days ({result.incidents} incidents)")
        history.finish()
        # the statistics' summary of every incident, for the city's offset the history was written in
        StatsStore(engine, offset_min=opts.tz_offset_min).rebuild()
        # one drone of the fleet is in maintenance, as the service records it
        if gen.drones:
            Store(engine).set_maintenance(gen.drones[-1].id, True)
        return result
    finally:
        engine.dispose()


def rebuild_statistics(settings: Settings) -> int:
    """``dronedispatch stats rebuild``: the statistics summary built again from every incident and
    mission of the configured database, for the city's offset now; the incidents written."""
    engine = make_engine(settings.database_url)
    try:
        migrate(engine)
        return StatsStore(engine, offset_min=utc_offset_min(settings.timezone)).rebuild()
    finally:
        engine.dispose()
