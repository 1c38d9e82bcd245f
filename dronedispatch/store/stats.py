"""Statistics queries over a summary of the incidents kept in the database (revision 0009).

``stats_daily`` holds one row per local day of the city: the day's district, category and (source,
camera) names, and packed per incident (:data:`PACKED`) its codes into them, local hour, outcome and
first-on-scene classes, false alarm flag, four response times and position. A period reads the rows
of the whole local days inside it, and the incidents of the partial days at either end from
``stats_incidents`` (one reduced row per incident, clustered by ``created_at``), so its bounds are
exact to the microsecond; grouping, counting, percentiles and the heat map are then computed with
numpy, the same way on both databases (a year is 365 rows, not 100,000). The drones' table reads the
missions (``ix_missions_launched_at``, ``missions.battery_used_pct``).

The summary is brought up to date before each query with the incidents and missions changed since
its last refresh (every repository write stamps ``updated_at``; see :meth:`StatsStore.refresh`),
rebuilt whole for another local offset, by ``dronedispatch seed-history`` and by
``dronedispatch stats rebuild``.

Percentiles are continuous (linear interpolation between the two nearest ranks, PostgreSQL's
``percentile_cont``).

Times of day, days and weeks are the city's local time, a fixed offset from UTC (``offset_min``).
Weeks are keyed by their Monday (``YYYY-MM-DD``), hours as ``00``..``23``.

Durations (seconds): report = the incident's ``created_at``; dispatch = its first mission's
``created_at``; airborne = the first ``launched_at``; on scene = the first ``on_scene_at``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from itertools import groupby
from typing import Any

import numpy as np
from sqlalchemy import (
    Connection,
    Engine,
    Integer,
    Table,
    bindparam,
    delete,
    func,
    insert,
    select,
    text,
)
from sqlalchemy.types import DateTime

from dronedispatch.store.models import Incident, Mission, StatsDaily, StatsIncident

#: The durations the response-time table reports, in the order of the flight.
DURATIONS = ("report_to_dispatch", "dispatch_to_airborne", "airborne_to_on_scene", "report_to_on_scene")
GROUPS = ("district", "category", "hour", "week", "day", "none")
OUTCOME_CODES = ("cleared_without_patrol", "escalated", "false_alarm", "other")
FIRST_ON_SCENE = ("drone", "patrol", "none")
PERCENTILES = (0.5, 0.9)

#: Missions whose battery use is filled in per statement when the service starts.
BATTERY_FILL_BATCH = 500
#: Incidents whose summary rows are written per statement.
REFRESH_BATCH = 2000
#: How far before its last start a refresh of the summary looks for changed incidents and missions.
REFRESH_SLACK = timedelta(minutes=5)
_EPOCH_DAY = date(1970, 1, 1)

#: The summary the statistics read (revision 0009; the models declare it).
STATS_INCIDENTS: Table = StatsIncident.__table__  # type: ignore[attr-defined]
STATS_DAILY: Table = StatsDaily.__table__  # type: ignore[attr-defined]

#: The packed arrays of a ``stats_daily`` row, one element per incident of the day, and their types.
PACKED = {
    "district_codes": "<u2", "category_codes": "<u2", "source_codes": "<u2", "hours": "u1", "outcomes": "u1",
    "firsts": "u1", "false_alarms": "u1", **dict.fromkeys(DURATIONS, "<f8"), "lats": "<f8", "lons": "<f8",
}  # fmt: skip
#: The packed array each grouping reads ('' for none: the day is the row's).
GROUP_ARRAYS = {"district": "district_codes", "category": "category_codes", "hour": "hours", "day": "", "week": "",
                "none": ""}  # fmt: skip
#: Days of ``stats_daily`` written per statement.
DAYS_BATCH = 31
#: The outcome class of a closed incident (1 + its index in OUTCOME_CODES; 0: still open).
_OUTCOME_CLASS = {code: 1 + j for j, code in enumerate(OUTCOME_CODES)}


@dataclass(frozen=True)
class Filter:
    """Incidents created in [start, end) (UTC), optionally of one district and one category."""

    start: datetime
    end: datetime
    district: str | None = None
    category: str | None = None


@dataclass(frozen=True)
class Percentiles:
    p50: float | None
    p90: float | None
    n: int


class StatsStore:
    def __init__(self, engine: Engine, *, offset_min: int = 0) -> None:
        self.engine = engine
        self._pg = engine.dialect.name == "postgresql"
        self._offset_min = int(offset_min)

    # -- SQL pieces per dialect ----------------------------------------------------------------
    def _secs(self, later: str, earlier: str) -> str:
        if self._pg:
            return f"CAST(EXTRACT(EPOCH FROM ({later} - {earlier})) AS double precision)"
        return f"((julianday({later}) - julianday({earlier})) * 86400.0)"

    def _where(self, f: Filter, alias: str = "s") -> str:
        where = f"{alias}.created_at >= :start AND {alias}.created_at < :end"
        if f.district is not None:
            where += f" AND {alias}.district = :district"
        if f.category is not None:
            where += f" AND {alias}.category = :category"
        return where

    def _run(self, sql: str, f: Filter | None, **params: Any) -> Sequence[Any]:
        stmt = text(sql)
        if f is not None:
            params |= {"start": _utc(f.start), "end": _utc(f.end), "district": f.district, "category": f.category}
            stmt = stmt.bindparams(
                bindparam("start", type_=DateTime(timezone=True)), bindparam("end", type_=DateTime(timezone=True))
            )
            params = {k: v for k, v in params.items() if f":{k}" in sql}
        with self.engine.connect() as conn:
            return conn.execute(stmt, params).all()

    # -- the summary ---------------------------------------------------------------------------
    def refresh(self, batch: int = REFRESH_BATCH) -> int:
        """Bring ``stats_incidents`` up to date: rebuilt whole when it was built for another local offset
        (or never), else the incidents changed since its last refresh and those whose missions changed;
        the number of incidents written.

        Every change to an incident or a mission stamps its ``updated_at`` (the repositories do), so
        whichever node or process made it, the next statistics query of any node sees it. The refresh
        looks back a little before the last one started (``REFRESH_SLACK``) for a change committed late
        or stamped by a node whose clock runs behind (writing an incident twice does no harm), and takes
        every incident newer than the newest summarised, whatever its stamp (rows written in bulk with
        their past times). Refreshes are serialised by locking the one ``stats_state`` row first."""
        started = datetime.now(UTC)
        with self.engine.connect() as conn:
            offset, since = _state(conn)
            ids = None if offset != self._offset_min else self._changed_ids(conn, _as_utc(since))
        if ids == []:
            return 0
        with self.engine.begin() as conn:
            # the write lock first: a concurrent refresh waits here, then finds what this one wrote
            conn.execute(text("UPDATE stats_state SET id = id WHERE id = 1"))
            offset, since = _state(conn)
            if offset != self._offset_min:
                conn.execute(text("DELETE FROM stats_incidents"))
                ids = [r[0] for r in conn.execute(text("SELECT id FROM incidents ORDER BY created_at, id"))]
            else:
                ids = self._changed_ids(conn, _as_utc(since))
            for start in range(0, len(ids), batch):
                self._write(conn, ids[start : start + batch])
            conn.execute(
                text("UPDATE stats_state SET offset_min = :o, refreshed_at = :t WHERE id = 1").bindparams(
                    bindparam("t", type_=DateTime(timezone=True))
                ),
                {"o": self._offset_min, "t": started},
            )
        return len(ids)

    def rebuild(self) -> int:
        """Build the summary again from every incident and mission (recovery, a new history)."""
        with self.engine.begin() as conn:
            conn.execute(text("UPDATE stats_state SET offset_min = NULL, refreshed_at = NULL WHERE id = 1"))
        return self.refresh()

    def _changed_ids(self, conn: Connection, since: datetime | None) -> list[int]:
        if since is None:
            return [r[0] for r in conn.execute(text("SELECT id FROM incidents ORDER BY created_at, id"))]
        sql = text(
            """SELECT id FROM incidents WHERE updated_at >= :since
               UNION SELECT incident_id FROM missions WHERE updated_at >= :since
               UNION SELECT id FROM incidents WHERE id > (SELECT COALESCE(MAX(incident_id), 0) FROM stats_incidents)"""
        ).bindparams(bindparam("since", type_=DateTime(timezone=True)))
        return sorted(r[0] for r in conn.execute(sql, {"since": since - REFRESH_SLACK}))

    def _write(self, conn: Connection, ids: list[int]) -> None:
        """The summary rows of incidents ``ids``, replacing theirs."""
        i, m = Incident.__table__, Mission.__table__  # type: ignore[attr-defined]
        query = (
            select(
                i.c.id,
                i.c.created_at,
                i.c.district,
                i.c.category,
                i.c.source,
                i.c.camera_id,
                i.c.status,
                i.c.outcome_code,
                i.c.first_on_scene,
                i.c.lat,
                i.c.lon,
                func.min(m.c.created_at),
                func.min(m.c.launched_at),
                func.min(m.c.on_scene_at),
            )
            .select_from(i.outerjoin(m, m.c.incident_id == i.c.id))
            .where(i.c.id.in_(ids))
            .group_by(i.c.id)
        )
        shift = timedelta(minutes=self._offset_min)
        rows = []
        for iid, created, district, category, source, camera, status, code, first, lat, lon, *times in conn.execute(
            query
        ):
            at: datetime = _utc(created)
            dispatch, airborne, on_scene = (_seconds(t, at) for t in times)
            local = at + shift
            rows.append(
                {
                    "created_at": at,
                    "incident_id": iid,
                    "day": (local.date() - _EPOCH_DAY).days,
                    "hour": local.hour,
                    "district": district,
                    "category": category,
                    "source": source,
                    "camera_id": camera,
                    "closed": status == "closed",
                    "outcome_code": code,
                    "first_on_scene": first,
                    "report_to_dispatch": dispatch,
                    "dispatch_to_airborne": _minus(airborne, dispatch),
                    "airborne_to_on_scene": _minus(on_scene, airborne),
                    "report_to_on_scene": on_scene,
                    "lat": lat,
                    "lon": lon,
                }
            )
        old_days = {
            r[0] for r in conn.execute(select(STATS_INCIDENTS.c.day).where(STATS_INCIDENTS.c.incident_id.in_(ids)))
        }
        conn.execute(delete(STATS_INCIDENTS).where(STATS_INCIDENTS.c.incident_id.in_(ids)))
        if rows:
            conn.execute(insert(STATS_INCIDENTS), rows)
        self._write_days(conn, sorted(old_days | {r["day"] for r in rows}))

    def _write_days(self, conn: Connection, days: list[int]) -> None:
        """The ``stats_daily`` rows of local ``days``, from their incidents' rows in ``stats_incidents``."""
        s = STATS_INCIDENTS
        for start in range(0, len(days), DAYS_BATCH):
            some = days[start : start + DAYS_BATCH]
            conn.execute(delete(STATS_DAILY).where(STATS_DAILY.c.day.in_(some)))
            query = (
                select(
                    s.c.day,
                    func.coalesce(s.c.district, ""),
                    s.c.category,
                    s.c.hour,
                    s.c.closed,
                    s.c.outcome_code,
                    s.c.first_on_scene,
                    *(s.c[d] for d in DURATIONS),
                    s.c.lat,
                    s.c.lon,
                    s.c.source,
                    s.c.camera_id,
                )
                .where(s.c.day.in_(some))
                .order_by(s.c.day, s.c.created_at, s.c.incident_id)
            )
            packed = [_pack(day, list(group)) for day, group in groupby(conn.execute(query), key=lambda r: r[0])]
            if packed:
                names = [c.name for c in STATS_DAILY.columns]
                conn.execute(insert(STATS_DAILY), [dict(zip(names, p, strict=True)) for p in packed])

    def _incidents(self, f: Filter, needs: Sequence[str], group_by: str = "none") -> _Incidents:
        """What the statistics need of every incident of the period: the whole local days inside it from
        ``stats_daily``, the parts of days at either end from ``stats_incidents``; of the packed arrays
        only ``needs`` and those the grouping and the filters take (a year's days are megabytes)."""
        self.refresh()
        wanted = set(needs) | {GROUP_ARRAYS.get(group_by, "")} - {""}
        wanted |= {"district_codes"} if f.district is not None else set()
        wanted |= {"category_codes"} if f.category is not None else set()
        packed = [name for name in PACKED if name in wanted]
        shift = timedelta(minutes=self._offset_min)
        epoch = datetime.combine(_EPOCH_DAY, datetime.min.time(), UTC) - shift  # local midnight of day 0, in UTC
        first = math.ceil((_utc(f.start) - epoch) / timedelta(days=1))
        last = math.floor((_utc(f.end) - epoch) / timedelta(days=1))  # exclusive
        daily: Sequence[Any] = []
        edges = [(f.start, f.end)]
        if first < last:
            columns = ", ".join(["day", "incidents", "districts", "categories", "sources", *packed])
            daily = self._run(
                f"SELECT {columns} FROM stats_daily WHERE day >= :first AND day < :last ORDER BY day",
                None,
                first=first,
                last=last,
            )
            edges = [(f.start, epoch + timedelta(days=first)), (epoch + timedelta(days=last), f.end)]
        columns = "day, COALESCE(district, ''), category, hour, closed, outcome_code, first_on_scene, " + ", ".join(
            (*DURATIONS, "lat", "lon", "source", "camera_id")
        )
        raw: list[Any] = []
        for start, end in edges:
            if start < end:
                part = Filter(start, end)
                raw += self._run(f"SELECT {columns} FROM stats_incidents s WHERE {self._where(part)}", part)
        raw.sort(key=lambda r: r[0])
        positions = [5 + list(PACKED).index(name) for name in packed]
        edge_days = [
            (*whole[:5], *(whole[j] for j in positions))
            for whole in (_pack(day, list(group)) for day, group in groupby(raw, key=lambda r: r[0]))
        ]
        return _Incidents.of([*daily, *edge_days], packed, f.district, f.category)

    # -- response times ------------------------------------------------------------------------
    def response_times(self, f: Filter, group_by: str) -> list[dict[str, Any]]:
        """Per group: incidents, and p50/p90/n of each duration (seconds, None without any)."""
        inc = self._incidents(f, DURATIONS, group_by)
        keys, index = inc.groups(group_by)
        order = np.argsort(index, kind="stable")
        bounds = np.cumsum(np.bincount(index, minlength=len(keys)))
        out: list[dict[str, Any]] = []
        for g, key in enumerate(keys):
            members = order[(bounds[g - 1] if g else 0) : bounds[g]]
            entry: dict[str, Any] = {"key": key, "incidents": len(members)}
            for d in DURATIONS:
                values = inc.durations[d][members]
                values = np.sort(values[~np.isnan(values)])
                p50, p90 = (_percentile_cont(values, p) for p in PERCENTILES)
                entry[d] = Percentiles(_rounded(p50), _rounded(p90), len(values))
            out.append(entry)
        return out

    # -- counts --------------------------------------------------------------------------------
    def first_on_scene(self, f: Filter, group_by: str) -> list[tuple[str, int, int]]:
        """Per group: incidents whose first on scene was recorded, and of those the drone's."""
        inc = self._incidents(f, ["firsts"], group_by)
        keys, index = inc.groups(group_by)
        counts = np.bincount(index * 3 + inc.arrays["firsts"], minlength=len(keys) * 3).reshape(-1, 3)
        return [(k, int(c[1] + c[2]), int(c[1])) for k, c in zip(keys, counts, strict=True)]

    def outcomes(self, f: Filter, group_by: str) -> list[dict[str, Any]]:
        """Per group: closed incidents by outcome code (closed without one: "other"), and those still open."""
        inc = self._incidents(f, ["outcomes"], group_by)
        keys, index = inc.groups(group_by)
        counts = np.bincount(index * 5 + inc.arrays["outcomes"], minlength=len(keys) * 5).reshape(-1, 5)
        # classes: 0 open, then OUTCOME_CODES in order
        return [
            {"key": k} | {code: int(c[1 + j]) for j, code in enumerate(OUTCOME_CODES)} | {"open": int(c[0])}
            for k, c in zip(keys, counts, strict=True)
        ]

    def sources(self, f: Filter) -> list[tuple[str, str | None, int, int]]:
        """Per source and camera: incidents, and those closed as false alarms; most incidents first."""
        inc = self._incidents(f, ["source_codes", "false_alarms"])
        n = len(inc.source_names)
        counts = np.bincount(inc.arrays["source_codes"], minlength=n)
        false = np.bincount(inc.arrays["source_codes"], weights=inc.arrays["false_alarms"], minlength=n)
        rows = [(src, cam, int(c), int(fa)) for (src, cam), c, fa in zip(inc.source_names, counts, false, strict=True)]
        # most first; ties in name order (names are sorted: a stable sort keeps it)
        return sorted((r for r in rows if r[2]), key=lambda r: -r[2])

    def volume(self, f: Filter, group_by: str) -> list[tuple[str, int]]:
        inc = self._incidents(f, [], group_by)
        keys, index = inc.groups(group_by)
        return [(k, int(n)) for k, n in zip(keys, np.bincount(index, minlength=len(keys)), strict=True)]

    def heatmap(self, f: Filter, cell_lat_deg: float, cell_lon_deg: float) -> list[tuple[float, float, int]]:
        """Incidents per grid cell (``cell_lat_deg`` x ``cell_lon_deg``), as the cell's centre."""
        inc = self._incidents(f, ["lats", "lons"])
        if not len(inc.arrays["lats"]):
            return []
        cy = np.floor(inc.arrays["lats"] / cell_lat_deg).astype(np.int64)
        cx = np.floor(inc.arrays["lons"] / cell_lon_deg).astype(np.int64)
        # one integer per cell, ordered as (cy, cx) are: a 1-D unique is far cheaper than one over pairs
        y0, x0 = int(cy.min()), int(cx.min())
        width = int(cx.max()) - x0 + 1
        unique, counts = np.unique((cy - y0) * width + (cx - x0), return_counts=True)
        return [
            ((y0 + k // width + 0.5) * cell_lat_deg, (x0 + k % width + 0.5) * cell_lon_deg, n)
            for k, n in zip(unique.tolist(), counts.tolist(), strict=True)
        ]

    # -- drones --------------------------------------------------------------------------------
    def drones(self, f: Filter) -> list[tuple[str, int, float, float]]:
        """Per drone, missions launched in the period (of incidents of the district and category
        when filtered): missions, seconds flown (launch to end, or to the period's end while still
        flying), and battery percentage points used."""
        used = """COALESCE(m.battery_used_pct, (
            (SELECT t.battery_pct FROM telemetry_samples t WHERE t.mission_id = m.id ORDER BY t.at LIMIT 1)
          - (SELECT t.battery_pct FROM telemetry_samples t WHERE t.mission_id = m.id ORDER BY t.at DESC LIMIT 1)))"""
        ended = "COALESCE(m.ended_at, :end)"
        join, where = "", "m.launched_at >= :start AND m.launched_at < :end"
        if f.district is not None or f.category is not None:
            join = "JOIN incidents i ON i.id = m.incident_id"
            where += "".join(
                (
                    " AND i.district = :district" if f.district is not None else "",
                    " AND i.category = :category" if f.category is not None else "",
                )
            )
        sql = f"""SELECT m.drone_id, COUNT(*), SUM({self._secs(ended, "m.launched_at")}), SUM({used})
                  FROM missions m {join} WHERE {where} GROUP BY m.drone_id ORDER BY m.drone_id"""
        return [(d, n, float(s or 0.0), float(b or 0.0)) for d, n, s, b in self._run(sql, f)]

    def maintenance_flags(self) -> dict[str, bool]:
        return {d: bool(m) for d, m in self._run("SELECT id, maintenance FROM drones", None)}

    def fill_battery_used(self, batch: int = BATTERY_FILL_BATCH) -> int:
        """Record the battery used by ended missions that have samples but no figure yet, ``batch``
        at a time (one short transaction each); the number filled."""
        first = "SELECT t.battery_pct FROM telemetry_samples t WHERE t.mission_id = m.id ORDER BY t.at LIMIT 1"
        last = "SELECT t.battery_pct FROM telemetry_samples t WHERE t.mission_id = m.id ORDER BY t.at DESC LIMIT 1"
        todo = """SELECT m.id FROM missions m WHERE m.battery_used_pct IS NULL AND m.ended_at IS NOT NULL
                  AND EXISTS (SELECT 1 FROM telemetry_samples t WHERE t.mission_id = m.id
                              AND t.battery_pct IS NOT NULL) ORDER BY m.id LIMIT :n"""
        filled = 0
        while True:
            with self.engine.begin() as conn:
                ids = [r[0] for r in conn.execute(text(todo), {"n": batch})]
                if not ids:
                    return filled
                update = text(
                    f"UPDATE missions SET battery_used_pct = ({first}) - ({last}) WHERE id IN :ids".replace(
                        "m.id", "missions.id"
                    )
                ).bindparams(bindparam("ids", expanding=True))
                conn.execute(update, {"ids": ids})
                filled += len(ids)

    # -- districts -----------------------------------------------------------------------------
    def incidents_without_district(self, after_id: int, limit: int) -> list[tuple[int, float, float]]:
        rows = self._run(
            "SELECT id, lat, lon FROM incidents WHERE district IS NULL AND id > :after ORDER BY id LIMIT :n",
            None,
            after=after_id,
            n=limit,
        )
        return [(i, lat, lon) for i, lat, lon in rows]

    def set_districts(self, districts: dict[int, str]) -> None:
        if not districts:
            return
        with self.engine.begin() as conn:
            conn.execute(
                text("UPDATE incidents SET district = :d WHERE id = :id"),
                [{"id": i, "d": d} for i, d in districts.items()],
            )
            # the update does not stamp the incidents: their summary rows are rewritten here
            self._write(conn, sorted(districts))


def _utc(dt: datetime) -> datetime:
    return dt.astimezone(UTC) if dt.tzinfo else dt.replace(tzinfo=UTC)


def _rounded(v: float | None) -> float | None:
    return None if v is None else round(float(v), 3)


def _percentile_cont(values: Sequence[float] | np.ndarray, p: float) -> float | None:
    """PostgreSQL's ``percentile_cont(p)`` of sorted ``values``: linear between the nearest ranks."""
    if len(values) == 0:
        return None
    pos = p * (len(values) - 1)
    lo = math.floor(pos)
    frac = pos - lo
    low = float(values[lo])
    return low if frac == 0 else low + frac * (float(values[lo + 1]) - low)


def _pack(day: int, rows: list[Any]) -> tuple[Any, ...]:
    """A ``stats_daily`` row (its columns in order) of one day's incidents given as ``stats_incidents``
    rows (day, district or '', category, hour, closed, outcome code, first on scene, the durations, lat,
    lon, source, camera): the day's district, category and (source, camera) names as JSON lists, and per
    incident (see :data:`PACKED`) its codes into them, local hour, outcome class (0 open, else 1 + the
    index in OUTCOME_CODES), first-on-scene class (0 none recorded, 1 drone, 2 another), whether its
    outcome code is a false alarm, its durations and position (NaN for none)."""
    keys = [(r[1], r[2], (r[13], r[14])) for r in rows]
    names = [sorted({k[j] for k in keys}, key=_name_order) for j in range(3)]
    codes = [{n: i for i, n in enumerate(side)} for side in names]
    columns: dict[str, list[Any]] = {
        "district_codes": [codes[0][k[0]] for k in keys],
        "category_codes": [codes[1][k[1]] for k in keys],
        "source_codes": [codes[2][k[2]] for k in keys],
        "hours": [r[3] for r in rows],
        "outcomes": [_OUTCOME_CLASS.get(r[5], 4) if r[4] else 0 for r in rows],
        "firsts": [0 if r[6] is None else 1 if r[6] == "drone" else 2 for r in rows],
        "false_alarms": [r[5] == "false_alarm" for r in rows],
        **{d: [np.nan if r[7 + j] is None else r[7 + j] for r in rows] for j, d in enumerate(DURATIONS)},
        "lats": [r[7 + len(DURATIONS)] for r in rows],
        "lons": [r[8 + len(DURATIONS)] for r in rows],
    }
    packed = (np.array(columns[name], dtype=dtype).tobytes() for name, dtype in PACKED.items())
    return (day, len(rows), *(json.dumps(side) for side in names), *packed)


def _name_order(name: Any) -> Any:
    # (source, camera) pairs: no camera before a camera, as SQLite orders NULL
    return (name[0], name[1] is not None, name[1] or "") if isinstance(name, tuple) else name


@dataclass
class _Incidents:
    """The incidents of a period as arrays, one element per incident (keys as codes into names)."""

    district_names: list[str]
    category_names: list[str]
    source_names: list[tuple[str, str | None]]
    days: np.ndarray
    arrays: dict[str, np.ndarray]  # PACKED's, the codes into the names above

    @property
    def durations(self) -> dict[str, np.ndarray]:
        return {d: self.arrays[d] for d in DURATIONS}

    @classmethod
    def of(
        cls, rows: Sequence[Any], packed: Sequence[str], district: str | None = None, category: str | None = None
    ) -> _Incidents:
        """From ``stats_daily`` rows (the names, then the ``packed`` arrays), keeping one district's and one
        category's when given."""
        counts = np.array([r[1] for r in rows], dtype=np.int64)
        row_names = [[[tuple(n) if j == 2 else n for n in json.loads(r[2 + j])] for j in range(3)] for r in rows]
        names: list[list[Any]] = [sorted({n for row in row_names for n in row[j]}, key=_name_order) for j in range(3)]
        codes = [{n: i for i, n in enumerate(side)} for side in names]
        arrays: dict[str, np.ndarray] = {}
        for k, name in enumerate(packed):
            values = np.frombuffer(b"".join(r[5 + k] for r in rows), dtype=PACKED[name])
            arrays[name] = values.astype(np.float64 if PACKED[name] == "<f8" else np.int64)
        splits = np.cumsum(counts)[:-1]
        for j, name in enumerate(("district_codes", "category_codes", "source_codes")):
            if name not in arrays:
                continue
            # each day's own codes into the period's names (sorted, so codes order as names do)
            maps = [np.array([codes[j][n] for n in row[j]], dtype=np.int64) for row in row_names]
            local = np.split(arrays[name], splits) if rows else []
            recoded = [m[c] for m, c in zip(maps, local, strict=True)]
            arrays[name] = np.concatenate(recoded) if recoded else np.zeros(0, dtype=np.int64)
        days = np.repeat(np.array([r[0] for r in rows], dtype=np.int64), counts)
        out = cls(names[0], names[1], names[2], days, arrays)
        keep = np.ones(len(out.days), dtype=bool)
        if district is not None:
            keep &= arrays["district_codes"] == codes[0].get(district, -1)
        if category is not None:
            keep &= arrays["category_codes"] == codes[1].get(category, -1)
        if keep.all():
            return out
        return _Incidents(names[0], names[1], names[2], out.days[keep], {k: v[keep] for k, v in arrays.items()})

    def groups(self, group_by: str) -> tuple[list[Any], np.ndarray]:
        """The groups' keys in order, and each incident's group (an index into the keys)."""
        names: list[str] | None = None
        if group_by == "district":
            codes, names = self.arrays["district_codes"], self.district_names
        elif group_by == "category":
            codes, names = self.arrays["category_codes"], self.category_names
        elif group_by == "hour":
            codes = self.arrays["hours"]
        elif group_by == "day":
            codes = self.days
        elif group_by == "week":  # the Monday that starts the week: day 0 (1970-01-01) was a Thursday
            codes = self.days - (self.days + 3) % 7
        elif group_by == "none":
            codes = np.zeros(len(self.days), dtype=np.int64)
        else:
            raise ValueError(f"unknown grouping {group_by!r}")
        unique, index = np.unique(codes, return_inverse=True)
        if names is not None:
            keys: list[Any] = [names[int(u)] for u in unique]
        else:
            keys = [_format_key(group_by, "all" if group_by == "none" else int(u)) for u in unique]
        return keys, index.reshape(-1).astype(np.int64)


def _state(conn: Connection) -> tuple[int | None, datetime | None]:
    """The local offset the summary was built for (None: never) and when it was last refreshed."""
    query = text("SELECT offset_min, refreshed_at FROM stats_state WHERE id = 1").columns(
        offset_min=Integer, refreshed_at=DateTime(timezone=True)
    )
    offset, refreshed = conn.execute(query).one()
    return offset, _as_utc(refreshed)


def _format_key(group_by: str, k: Any) -> Any:
    """A group key as the API gives it: hours ``00``..``23``, days and weeks (their Monday) as dates."""
    if group_by == "hour":
        return f"{int(k):02d}"
    if group_by in ("day", "week"):
        return (_EPOCH_DAY + timedelta(days=int(k))).isoformat()
    return k


def _as_utc(dt: datetime | None) -> datetime | None:
    # SQLite gives back naive UTC
    return None if dt is None else (dt.astimezone(UTC) if dt.tzinfo else dt.replace(tzinfo=UTC))


def _seconds(later: datetime | None, earlier: datetime) -> float | None:
    return None if later is None else (_as_utc(later) - earlier).total_seconds()  # type: ignore[operator]


def _minus(later: float | None, earlier: float | None) -> float | None:
    return None if later is None or earlier is None else later - earlier
