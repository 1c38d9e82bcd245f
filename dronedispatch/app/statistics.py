"""Statistics for the centre: response times, who was first on scene, outcomes, sources, drones,
volume and a heat map, for a period and optionally one district and one category.

Every table is a list of flat-ish rows (``Table``) that the API returns as JSON or CSV and the
monthly report renders. The store does the aggregation (:mod:`dronedispatch.store.stats`); this
service settles the period, the shares, the units and the district backfill. Its calls block:
callers on the event loop run them in a worker thread.

Battery cycles: the battery percentage points each mission used (its first telemetry sample's
``battery_pct`` minus its last), summed per drone, / 100. The figure is kept on the mission
(``missions.battery_used_pct``) once it ended: :meth:`StatisticsService.backfill` fills it at
start for missions that have samples but no figure; until then the query reads the samples.

The store keeps a summary of the incidents (``stats_incidents``) up to date itself before each query;
:meth:`StatisticsService.rebuild` builds it again from scratch (``dronedispatch stats rebuild``).
"""

from __future__ import annotations

import csv
import io
import logging
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta, timezone
from typing import Any, Protocol
from zoneinfo import ZoneInfo

from dronedispatch.app.errors import Unprocessable
from dronedispatch.domain.districts import DistrictIndex
from dronedispatch.store.stats import DURATIONS, Filter, Percentiles

log = logging.getLogger(__name__)

#: The period when none is asked for: the last 30 days.
DEFAULT_PERIOD = timedelta(days=30)
#: bounds a period may take: local-time grouping and the default period must stay inside the calendar
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(9000, 1, 1, tzinfo=UTC)
#: Incidents given their district per batch by the backfill.
BACKFILL_BATCH = 2000
_M_PER_DEG_LAT = 111_320.0


class StatsRepository(Protocol):
    """What the statistics read (:class:`dronedispatch.store.stats.StatsStore` implements it)."""

    def response_times(self, f: Filter, group_by: str) -> list[dict[str, Any]]: ...
    def first_on_scene(self, f: Filter, group_by: str) -> list[tuple[str, int, int]]: ...
    def outcomes(self, f: Filter, group_by: str) -> list[dict[str, Any]]: ...
    def sources(self, f: Filter) -> list[tuple[str, str | None, int, int]]: ...
    def volume(self, f: Filter, group_by: str) -> list[tuple[str, int]]: ...
    def heatmap(self, f: Filter, cell_lat_deg: float, cell_lon_deg: float) -> list[tuple[float, float, int]]: ...
    def drones(self, f: Filter) -> list[tuple[str, int, float, float]]: ...
    def maintenance_flags(self) -> dict[str, bool]: ...
    def fill_battery_used(self, batch: int = ...) -> int: ...
    def refresh(self, batch: int = ...) -> int: ...
    def rebuild(self) -> int: ...
    def incidents_without_district(self, after_id: int, limit: int) -> list[tuple[int, float, float]]: ...
    def set_districts(self, districts: dict[int, str]) -> None: ...


@dataclass
class Table:
    """One statistics table: the period it covers, its filters, and its rows."""

    start: datetime
    end: datetime
    district: str | None
    category: str | None
    rows: list[dict[str, Any]] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return {
            "from": self.start.isoformat(),
            "to": self.end.isoformat(),
            "district": self.district,
            "category": self.category,
            "rows": self.rows,
        }

    def as_csv(self) -> str:
        """The rows as CSV, nested objects flattened (``report_to_dispatch_p50``); empty cells for null."""
        flat = [_flatten(r) for r in self.rows]
        out = io.StringIO()
        columns: list[str] = []
        for r in flat:
            columns += [c for c in r if c not in columns]
        writer = csv.DictWriter(out, fieldnames=columns, lineterminator="\n")
        writer.writeheader()
        writer.writerows(flat)
        return out.getvalue()


class StatisticsService:
    def __init__(
        self,
        store: StatsRepository,
        *,
        districts: DistrictIndex | None = None,
        drone_ids: Iterable[str] = (),
        reference_lat: float = 37.45,
        offset_min: int = 0,
    ) -> None:
        self._store = store
        self._districts = districts
        self._drone_ids = list(drone_ids)
        # the heat map's cells are square metres at this latitude (the city's)
        self._reference_lat = reference_lat
        # a date given as a bound is the city's midnight
        self._zone = timezone(timedelta(minutes=offset_min))

    # -- the period ----------------------------------------------------------------------------
    def filter(
        self,
        start: datetime | date | None = None,
        end: datetime | date | None = None,
        district: str | None = None,
        category: str | None = None,
        *,
        now: datetime | None = None,
    ) -> Filter:
        """A period [start, end): a date (or a datetime without a zone) is the city's local time;
        by default the last 30 days."""
        try:
            end_dt = self._as_datetime(end) if end is not None else (now or datetime.now(UTC))
            start_dt = self._as_datetime(start) if start is not None else end_dt - DEFAULT_PERIOD
        except OverflowError:  # a bound at the edge of the calendar, moved by the city's zone or the default
            start_dt = end_dt = EARLIEST - timedelta(days=1)
        if not (EARLIEST <= start_dt <= LATEST and EARLIEST <= end_dt <= LATEST):
            raise Unprocessable(
                f"the period must lie between {EARLIEST:%Y-%m-%d} and {LATEST:%Y-%m-%d}", "period_out_of_range"
            )
        if start_dt >= end_dt:
            raise Unprocessable("the period is empty: 'from' must lie before 'to'", "empty_period")
        return Filter(start_dt, end_dt, district or None, category or None)

    def _as_datetime(self, v: datetime | date) -> datetime:
        if isinstance(v, datetime):
            return (v if v.tzinfo else v.replace(tzinfo=self._zone)).astimezone(UTC)
        return datetime.combine(v, time(0), tzinfo=self._zone).astimezone(UTC)

    def _table(self, f: Filter, rows: list[dict[str, Any]]) -> Table:
        return Table(f.start, f.end, f.district, f.category, rows)

    # -- tables --------------------------------------------------------------------------------
    def response_times(self, f: Filter, group_by: str = "none") -> Table:
        rows = []
        for r in self._store.response_times(f, _group(group_by, ("district", "category", "hour", "week", "none"))):
            row: dict[str, Any] = {"key": r["key"], "incidents": r["incidents"]}
            for d in DURATIONS:
                p: Percentiles = r[d]
                row[d] = {"p50": p.p50, "p90": p.p90, "n": p.n}
            rows.append(row)
        return self._table(f, rows)

    def first_on_scene(self, f: Filter, group_by: str = "none") -> Table:
        rows = [
            {"key": k, "incidents": n, "drone_first": drone, "share": _share(drone, n)}
            for k, n, drone in self._store.first_on_scene(f, _group(group_by))
        ]
        return self._table(f, rows)

    def outcomes(self, f: Filter, group_by: str = "none") -> Table:
        return self._table(f, self._store.outcomes(f, _group(group_by)))

    def sources(self, f: Filter) -> Table:
        rows = [
            {"source": s, "camera_id": cam, "incidents": n, "false_alarms": fa, "false_alarm_share": _share(fa, n)}
            for s, cam, n, fa in self._store.sources(f)
        ]
        return self._table(f, rows)

    def drones(self, f: Filter) -> Table:
        """Per drone of the fleet (and any other that flew): missions launched in the period, flight
        hours, battery cycles, utilisation (flight time / the period's length) and maintenance now."""
        period_s = (f.end - f.start).total_seconds()
        flown = {d: (n, secs, used) for d, n, secs, used in self._store.drones(f)}
        maintenance = self._store.maintenance_flags()
        rows = []
        for drone_id in sorted(set(self._drone_ids) | set(flown)):
            n, secs, used = flown.get(drone_id, (0, 0.0, 0.0))
            rows.append(
                {
                    "drone_id": drone_id,
                    "missions": n,
                    "flight_hours": round(secs / 3600.0, 3),
                    "battery_cycles": round(used / 100.0, 3),
                    "utilisation": round(secs / period_s, 4),
                    "maintenance": maintenance.get(drone_id, False),
                }
            )
        return self._table(f, rows)

    def volume(self, f: Filter, group_by: str = "day") -> Table:
        rows = [{"key": k, "incidents": n} for k, n in self._store.volume(f, _group(group_by, ("hour", "day", "week")))]
        return self._table(f, rows)

    def heatmap(self, f: Filter, cell_m: float = 500.0) -> Table:
        if not 10.0 <= cell_m <= 50_000.0:
            raise Unprocessable("cell_m must lie between 10 and 50000 metres", "bad_cell")
        dlat = cell_m / _M_PER_DEG_LAT
        dlon = cell_m / (_M_PER_DEG_LAT * math.cos(math.radians(self._reference_lat)))
        rows = [
            {"lat": round(lat, 6), "lon": round(lon, 6), "incidents": n}
            for lat, lon, n in self._store.heatmap(f, dlat, dlon)
        ]
        return self._table(f, rows)

    # -- upkeep --------------------------------------------------------------------------------
    def district_of(self, lat: float, lon: float) -> str | None:
        return self._districts.district_at(lat, lon) if self._districts is not None else None

    def backfill(self, batch: int = BACKFILL_BATCH) -> tuple[int, int]:
        """Give incidents stored without a district theirs, ended missions their battery use, and the
        statistics summary its missing or changed incidents, a batch per transaction; (incidents
        given a district, missions given their battery use)."""
        located = 0
        if self._districts is not None:
            after = 0
            while rows := self._store.incidents_without_district(after, batch):
                found = {i: d for i, lat, lon in rows if (d := self._districts.district_at(lat, lon)) is not None}
                self._store.set_districts(found)
                located += len(found)
                after = rows[-1][0]
        filled = self._store.fill_battery_used()
        # a summary built for another local offset (or never) is rebuilt whole: here, not in a request
        refreshed = self._store.refresh()
        if located or filled:
            log.info("statistics: %d incidents given their district, %d missions their battery use", located, filled)
        log.info("statistics: summary of %d incidents refreshed", refreshed)
        return located, filled

    def rebuild(self) -> int:
        """Build the statistics summary again from every incident and mission; the incidents written."""
        return self._store.rebuild()


def utc_offset_min(timezone: str, at: datetime | None = None) -> int:
    """The zone's offset from UTC in minutes (now, or ``at``): statistics use one fixed offset."""
    offset = (at or datetime.now(UTC)).astimezone(ZoneInfo(timezone)).utcoffset()
    return int(offset.total_seconds() // 60) if offset is not None else 0


def _group(group_by: str, allowed: Sequence[str] = ("district", "category", "hour", "week", "none")) -> str:
    if group_by not in allowed:
        raise Unprocessable(f"group_by must be one of {', '.join(allowed)}", "bad_group")
    return group_by


def _share(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def _flatten(row: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in row.items():
        if isinstance(v, dict):
            out |= {f"{k}_{sub}": ("" if sv is None else sv) for sub, sv in v.items()}
        else:
            out[k] = "" if v is None else v
    return out
