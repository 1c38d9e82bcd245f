"""Statistics queries: aggregation in the database, one statement per table where it can be.

Every query but the drones' reads the summary ``stats_incidents`` (revision 0009): one row per
incident with what the statistics need already reduced - its local day and hour as integers, its
district, category, source and camera, closed or not and the outcome code, who was first on scene,
the four response times in seconds and its position. A period is one range of that table (clustered
by ``created_at`` on SQLite, its primary key on PostgreSQL), with no join and no date function per
row; the period's bounds are exact to the microsecond (no rounding to whole days). The summary is
brought up to date before each query with the incidents and missions changed since its last refresh
(every repository write stamps ``updated_at``), rebuilt whole for another local offset, by
``dronedispatch seed-history`` and by ``dronedispatch stats rebuild``.

Both databases give the same numbers. Percentiles are continuous (linear interpolation between the
two nearest ranks, PostgreSQL's ``percentile_cont``): PostgreSQL computes them itself; on SQLite the
durations of the period are sorted here and interpolated exactly as ``percentile_cont`` does.

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
    Boolean,
    Column,
    Connection,
    Engine,
    Float,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    bindparam,
    delete,
    func,
    insert,
    select,
    text,
)
from sqlalchemy.types import DateTime

from dronedispatch.store.models import Incident, Mission

#: The durations the response-time table reports, in the order of the flight.
DURATIONS = ("report_to_dispatch", "dispatch_to_airborne", "airborne_to_on_scene", "report_to_on_scene")
GROUPS = ("district", "category", "hour", "week", "day", "none")
OUTCOME_CODES = ("cleared_without_patrol", "escalated", "false_alarm", "other")
FIRST_ON_SCENE = ("drone", "patrol", "none")
PERCENTILES = (0.5, 0.9)

_FLOOR_SHIFT = 100_000_000
#: Missions whose battery use is filled in per statement when the service starts.
BATTERY_FILL_BATCH = 500
#: Incidents whose summary rows are written per statement.
REFRESH_BATCH = 2000
#: How far before its last start a refresh of the summary looks for changed incidents and missions.
REFRESH_SLACK = timedelta(minutes=5)
_EPOCH_DAY = date(1970, 1, 1)

#: The summary the statistics read (revision 0009 creates it; this is its shape for the writes).
STATS_INCIDENTS = Table(
    "stats_incidents",
    MetaData(),
    Column("created_at", DateTime(timezone=True), primary_key=True),
    Column("incident_id", Integer, primary_key=True),
    Column("day", Integer, nullable=False),  # the city's local day, days since 1970-01-01
    Column("hour", Integer, nullable=False),  # the city's local hour
    Column("district", String(32)),
    Column("category", String(32), nullable=False),
    Column("source", String(32), nullable=False),
    Column("camera_id", String(64)),
    Column("closed", Boolean, nullable=False),
    Column("outcome_code", String(32)),
    Column("first_on_scene", String(16)),
    *(Column(d, Float) for d in DURATIONS),
    Column("lat", Float, nullable=False),
    Column("lon", Float, nullable=False),
)

#: Per local day: what each of its incidents adds to the statistics, packed (see :func:`_pack`).
STATS_DAILY = Table(
    "stats_daily",
    MetaData(),
    Column("day", Integer, primary_key=True),
    Column("incidents", Integer, nullable=False),
    Column("districts", Text, nullable=False),
    Column("categories", Text, nullable=False),
    *(
        Column(name, LargeBinary, nullable=False)
        for name in ("district_codes", "category_codes", "hours", "outcomes", "firsts", *DURATIONS, "lats", "lons")
    ),
)
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

    def _floor(self, expr: str) -> str:
        if self._pg:
            return f"floor({expr})"
        # SQLite without its math extension: truncation is the floor once shifted above zero
        # (cells of 10 m and more lie far within the shift)
        return f"(CAST(({expr}) + {_FLOOR_SHIFT} AS INTEGER) - {_FLOOR_SHIFT})"

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
                )
                .where(s.c.day.in_(some))
                .order_by(s.c.day, s.c.created_at, s.c.incident_id)
            )
            packed = [_pack(day, list(group)) for day, group in groupby(conn.execute(query), key=lambda r: r[0])]
            if packed:
                names = [c.name for c in STATS_DAILY.columns]
                conn.execute(insert(STATS_DAILY), [dict(zip(names, p, strict=True)) for p in packed])

    def _incidents(self, f: Filter) -> _Incidents:
        """What the statistics need of every incident of the period: the whole local days inside it from
        ``stats_daily``, the parts of days at either end from ``stats_incidents``."""
        self.refresh()
        shift = timedelta(minutes=self._offset_min)
        epoch = datetime.combine(_EPOCH_DAY, datetime.min.time(), UTC) - shift  # local midnight of day 0, in UTC
        first = math.ceil((_utc(f.start) - epoch) / timedelta(days=1))
        last = math.floor((_utc(f.end) - epoch) / timedelta(days=1))  # exclusive
        daily: Sequence[Any] = []
        edges = [(f.start, f.end)]
        if first < last:
            columns = ", ".join(c.name for c in STATS_DAILY.columns)
            daily = self._run(
                f"SELECT {columns} FROM stats_daily WHERE day >= :first AND day < :last ORDER BY day",
                None,
                first=first,
                last=last,
            )
            edges = [(f.start, epoch + timedelta(days=first)), (epoch + timedelta(days=last), f.end)]
        columns = "day, COALESCE(district, ''), category, hour, closed, outcome_code, first_on_scene, " + ", ".join(
            (*DURATIONS, "lat", "lon")
        )
        raw: list[Any] = []
        for start, end in edges:
            if start < end:
                part = Filter(start, end)
                raw += self._run(f"SELECT {columns} FROM stats_incidents s WHERE {self._where(part)}", part)
        raw.sort(key=lambda r: r[0])
        edge_days = [_pack(day, list(group)) for day, group in groupby(raw, key=lambda r: r[0])]
        return _Incidents.of([*daily, *edge_days], f.district, f.category)

    # -- response times ------------------------------------------------------------------------
    def response_times(self, f: Filter, group_by: str) -> list[dict[str, Any]]:
        """Per group: incidents, and p50/p90/n of each duration (seconds, None without any)."""
        inc = self._incidents(f)
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
        inc = self._incidents(f)
        keys, index = inc.groups(group_by)
        counts = np.bincount(index * 3 + inc.firsts, minlength=len(keys) * 3).reshape(-1, 3)
        return [(k, int(c[1] + c[2]), int(c[1])) for k, c in zip(keys, counts, strict=True)]

    def outcomes(self, f: Filter, group_by: str) -> list[dict[str, Any]]:
        """Per group: closed incidents by outcome code (closed without one: "other"), and those still open."""
        inc = self._incidents(f)
        keys, index = inc.groups(group_by)
        counts = np.bincount(index * 5 + inc.outcomes, minlength=len(keys) * 5).reshape(-1, 5)
        # classes: 0 open, then OUTCOME_CODES in order
        return [
            {"key": k} | {code: int(c[1 + j]) for j, code in enumerate(OUTCOME_CODES)} | {"open": int(c[0])}
            for k, c in zip(keys, counts, strict=True)
        ]

    def sources(self, f: Filter) -> list[tuple[str, str | None, int, int]]:
        """Per source and camera: incidents, and those closed as false alarms; most incidents first."""
        self.refresh()
        sql = f"""SELECT s.source, s.camera_id, COUNT(*),
                  SUM(CASE WHEN s.outcome_code = 'false_alarm' THEN 1 ELSE 0 END) AS fa
                  FROM stats_incidents s WHERE {self._where(f)} GROUP BY s.source, s.camera_id
                  ORDER BY COUNT(*) DESC, s.source, s.camera_id"""
        return [(src, cam, n, int(fa or 0)) for src, cam, n, fa in self._run(sql, f)]

    def volume(self, f: Filter, group_by: str) -> list[tuple[str, int]]:
        inc = self._incidents(f)
        keys, index = inc.groups(group_by)
        return [(k, int(n)) for k, n in zip(keys, np.bincount(index, minlength=len(keys)), strict=True)]

    def heatmap(self, f: Filter, cell_lat_deg: float, cell_lon_deg: float) -> list[tuple[float, float, int]]:
        """Incidents per grid cell (``cell_lat_deg`` x ``cell_lon_deg``), as the cell's centre."""
        inc = self._incidents(f)
        if not len(inc.lats):
            return []
        cy = np.floor(inc.lats / cell_lat_deg).astype(np.int64)
        cx = np.floor(inc.lons / cell_lon_deg).astype(np.int64)
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
    lon): the day's district and category names, and per incident its codes into them (uint16), local
    hour, outcome class (0 open, else 1 + the index in OUTCOME_CODES), first-on-scene class (0 none
    recorded, 1 drone, 2 another) as bytes, and its durations and position as float64 (NaN for none)."""
    districts, categories = sorted({r[1] for r in rows}), sorted({r[2] for r in rows})
    d_code, c_code = {n: j for j, n in enumerate(districts)}, {n: j for j, n in enumerate(categories)}
    return (
        day, len(rows), json.dumps(districts), json.dumps(categories),
        np.array([d_code[r[1]] for r in rows], dtype="<u2").tobytes(),
        np.array([c_code[r[2]] for r in rows], dtype="<u2").tobytes(),
        bytes(r[3] for r in rows),
        bytes(_OUTCOME_CLASS.get(r[5], 4) if r[4] else 0 for r in rows),
        bytes(0 if r[6] is None else 1 if r[6] == "drone" else 2 for r in rows),
        *(
            np.array([np.nan if r[j] is None else r[j] for r in rows], dtype="<f8").tobytes()
            for j in range(7, 7 + len(DURATIONS) + 2)
        ),
    )  # fmt: skip


@dataclass
class _Incidents:
    """The incidents of a period as arrays, one element per incident (keys as codes into names)."""

    district_names: list[str]
    category_names: list[str]
    districts: np.ndarray
    categories: np.ndarray
    days: np.ndarray
    hours: np.ndarray
    outcomes: np.ndarray
    firsts: np.ndarray
    durations: dict[str, np.ndarray]
    lats: np.ndarray
    lons: np.ndarray

    @classmethod
    def of(cls, rows: Sequence[Any], district: str | None = None, category: str | None = None) -> _Incidents:
        """From ``stats_daily`` rows (columns in order), keeping one district's and one category's when given."""
        counts = np.array([r[1] for r in rows], dtype=np.int64)
        row_names = [(json.loads(r[2]), json.loads(r[3])) for r in rows]
        d_names = sorted({n for names, _ in row_names for n in names})
        c_names = sorted({n for _, names in row_names for n in names})
        d_code, c_code = {n: j for j, n in enumerate(d_names)}, {n: j for j, n in enumerate(c_names)}

        def packed(j: int, dtype: str) -> np.ndarray:
            return np.frombuffer(b"".join(r[j] for r in rows), dtype=dtype)

        def recoded(j: int, side: int, code: dict[str, int]) -> np.ndarray:
            # each day's own codes into the period's names (sorted, so codes order as names do)
            maps = [np.array([code[n] for n in names[side]], dtype=np.int64) for names in row_names]
            local = np.split(packed(j, "<u2").astype(np.int64), np.cumsum(counts)[:-1]) if rows else []
            return np.concatenate([m[c] for m, c in zip(maps, local, strict=True)]) if rows else np.zeros(0, np.int64)

        out = cls(
            d_names, c_names, recoded(4, 0, d_code), recoded(5, 1, c_code),
            np.repeat(np.array([r[0] for r in rows], dtype=np.int64), counts),
            packed(6, "u1").astype(np.int64), packed(7, "u1").astype(np.int64), packed(8, "u1").astype(np.int64),
            {d: packed(9 + j, "<f8") for j, d in enumerate(DURATIONS)},
            packed(9 + len(DURATIONS), "<f8"), packed(10 + len(DURATIONS), "<f8"),
        )  # fmt: skip
        keep = np.ones(len(out.days), dtype=bool)
        if district is not None:
            keep &= out.districts == d_code.get(district, -1)
        if category is not None:
            keep &= out.categories == c_code.get(category, -1)
        return out if keep.all() else out.subset(keep)

    def subset(self, keep: np.ndarray) -> _Incidents:
        return _Incidents(
            self.district_names, self.category_names, self.districts[keep], self.categories[keep],
            self.days[keep], self.hours[keep], self.outcomes[keep], self.firsts[keep],
            {d: v[keep] for d, v in self.durations.items()}, self.lats[keep], self.lons[keep],
        )  # fmt: skip

    def groups(self, group_by: str) -> tuple[list[Any], np.ndarray]:
        """The groups' keys in order, and each incident's group (an index into the keys)."""
        names: list[str] | None = None
        if group_by == "district":
            codes, names = self.districts, self.district_names
        elif group_by == "category":
            codes, names = self.categories, self.category_names
        elif group_by == "hour":
            codes = self.hours
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
