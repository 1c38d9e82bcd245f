"""Statistics queries: aggregation in the database, one statement per table where it can be.

Both databases give the same numbers. Percentiles are continuous (linear interpolation between the
two nearest ranks, PostgreSQL's ``percentile_cont``): PostgreSQL computes them itself; SQLite ranks
the durations with window functions and returns only the one or two rows each percentile needs,
which are interpolated here exactly as ``percentile_cont`` does.

Times of day, days and weeks are the city's local time, a fixed offset from UTC (``offset_min``).
Weeks are keyed by their Monday (``YYYY-MM-DD``), hours as ``00``..``23``.

Durations (seconds): report = the incident's ``created_at``; dispatch = its first mission's
``created_at``; airborne = the first ``launched_at``; on scene = the first ``on_scene_at``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Engine, bindparam, text
from sqlalchemy.types import DateTime

#: The durations the response-time table reports, in the order of the flight.
DURATIONS = ("report_to_dispatch", "dispatch_to_airborne", "airborne_to_on_scene", "report_to_on_scene")
GROUPS = ("district", "category", "hour", "week", "day", "none")
OUTCOME_CODES = ("cleared_without_patrol", "escalated", "false_alarm", "other")
FIRST_ON_SCENE = ("drone", "patrol", "none")
PERCENTILES = (0.5, 0.9)

#: The durations from the summary columns kept on ``incidents`` (see ``StatsStore.refresh_response_times``).
DURATION_SQL = {
    "report_to_dispatch": "i.dispatch_s",
    "dispatch_to_airborne": "i.airborne_s - i.dispatch_s",
    "airborne_to_on_scene": "i.on_scene_s - i.airborne_s",
    "report_to_on_scene": "i.on_scene_s",
}
_FLOOR_SHIFT = 100_000_000
#: Missions whose battery use is filled in per statement when the service starts.
BATTERY_FILL_BATCH = 500
#: Incidents whose response times are refreshed per transaction.
REFRESH_BATCH = 2000
#: How far before its last start a refresh of the response times looks for changed missions.
REFRESH_SLACK = timedelta(minutes=5)


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
        self._refreshed_at: datetime | None = None

    # -- SQL pieces per dialect ----------------------------------------------------------------
    def _key(self, group_by: str, alias: str = "i") -> str:
        column = f"{alias}.created_at"
        local = f"(({column} AT TIME ZONE 'UTC') + make_interval(mins => {self._offset_min}))"
        # SQLite: one date function per row, the shift to local time as its modifier
        shift = f"{column}, '{self._offset_min:+d} minutes'"
        if group_by == "district":
            return f"COALESCE({alias}.district, '')"
        if group_by == "category":
            return f"{alias}.category"
        if group_by == "hour":
            return f"to_char({local}, 'HH24')" if self._pg else f"strftime('%H', {shift})"
        if group_by == "day":
            return f"to_char({local}, 'YYYY-MM-DD')" if self._pg else f"date({shift})"
        if group_by == "week":  # the Monday that starts the week
            return (
                f"to_char(date_trunc('week', {local}), 'YYYY-MM-DD')"
                if self._pg
                else f"date({shift}, '-6 days', 'weekday 1')"
            )
        if group_by == "none":
            return "'all'"
        raise ValueError(f"unknown grouping {group_by!r}")

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

    def _where(self, f: Filter, alias: str = "i") -> str:
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

    # -- response times ------------------------------------------------------------------------
    def response_times(self, f: Filter, group_by: str) -> list[dict[str, Any]]:
        """Per group: incidents, and p50/p90/n of each duration (seconds, None without any).

        Reads the summary columns, refreshed first for the missions changed since the last call."""
        self.refresh_response_times()
        durations = ", ".join(f"{sql} AS {name}" for name, sql in DURATION_SQL.items())
        base = f"SELECT {self._key(group_by)} AS k, {durations} FROM incidents i WHERE {self._where(f)}"
        counts = ", ".join(f"COUNT({d})" for d in DURATIONS)
        out: list[dict[str, Any]] = []
        if self._pg:
            # both percentiles of a duration from one sort: percentile_cont over an array of fractions
            fractions = "ARRAY[{}]".format(", ".join(str(p) for p in PERCENTILES))
            pcts = ", ".join(f"percentile_cont({fractions}) WITHIN GROUP (ORDER BY {d})" for d in DURATIONS)
            for row in self._run(f"SELECT k, COUNT(*), {counts}, {pcts} FROM ({base}) d GROUP BY k ORDER BY k", f):
                entry: dict[str, Any] = {"key": row[0], "incidents": row[1]}
                for j, d in enumerate(DURATIONS):
                    p50, p90 = row[2 + len(DURATIONS) + j] or (None, None)
                    entry[d] = Percentiles(_rounded(p50), _rounded(p90), row[2 + j])
                out.append(entry)
            return out
        # SQLite has no percentile: the durations of the period's incidents that had a mission come from
        # one index and are sorted here; the incidents per group are counted in the database
        totals = self._run(f"SELECT k, COUNT(*) FROM ({base}) d GROUP BY k ORDER BY k", f)
        groups: dict[str, list[list[float]]] = {}
        for k, *values in self._run(f"{base} AND i.dispatch_s IS NOT NULL", f):
            lists = groups.setdefault(k, [[] for _ in DURATIONS])
            for lst, v in zip(lists, values, strict=True):
                if v is not None:
                    lst.append(v)
        for k, n in totals:
            entry = {"key": k, "incidents": n}
            for d, lst in zip(DURATIONS, groups.get(k, [[] for _ in DURATIONS]), strict=True):
                lst.sort()
                p50, p90 = (_percentile_cont(lst, p) for p in PERCENTILES)
                entry[d] = Percentiles(_rounded(p50), _rounded(p90), len(lst))
            out.append(entry)
        return out

    def refresh_response_times(self, batch: int = REFRESH_BATCH) -> int:
        """Bring ``incidents.dispatch_s``, ``airborne_s`` and ``on_scene_s`` up to date with the missions
        changed since the last refresh of this process (all of them the first time), ``batch``
        incidents per transaction; the number of incidents refreshed.

        A mission's ``updated_at`` is stamped by every change; the refresh looks back a little before
        its last start (``REFRESH_SLACK``) for a change committed late or stamped by a node whose
        clock runs behind, so it never misses one (refreshing twice does no harm)."""
        started = datetime.now(UTC)
        changed = "SELECT DISTINCT incident_id FROM missions"
        params: dict[str, Any] = {}
        if self._refreshed_at is not None:
            changed += " WHERE updated_at >= :since"
            params["since"] = self._refreshed_at - REFRESH_SLACK
        secs = self._secs
        first = "(SELECT MIN(m.{0}) FROM missions m WHERE m.incident_id = incidents.id)"
        update = f"""UPDATE incidents SET
            dispatch_s = {secs(first.format("created_at"), "incidents.created_at")},
            airborne_s = {secs(first.format("launched_at"), "incidents.created_at")},
            on_scene_s = {secs(first.format("on_scene_at"), "incidents.created_at")}
            WHERE id IN :ids"""
        stmt = text(update).bindparams(bindparam("ids", expanding=True))
        query = text(changed)
        if "since" in params:
            query = query.bindparams(bindparam("since", type_=DateTime(timezone=True)))
        with self.engine.connect() as conn:
            ids = [r[0] for r in conn.execute(query, params)]
        for start in range(0, len(ids), batch):
            with self.engine.begin() as conn:
                conn.execute(stmt, {"ids": ids[start : start + batch]})
        self._refreshed_at = started
        return len(ids)

    # -- counts --------------------------------------------------------------------------------
    def first_on_scene(self, f: Filter, group_by: str) -> list[tuple[str, int, int]]:
        """Per group: incidents whose first on scene was recorded, and of those the drone's."""
        sql = f"""SELECT {self._key(group_by)} AS k, COUNT(i.first_on_scene),
                  SUM(CASE WHEN i.first_on_scene = 'drone' THEN 1 ELSE 0 END)
                  FROM incidents i WHERE {self._where(f)} GROUP BY k ORDER BY k"""
        return [(k, n, drone or 0) for k, n, drone in self._run(sql, f)]

    def outcomes(self, f: Filter, group_by: str) -> list[dict[str, Any]]:
        """Per group: closed incidents by outcome code (closed without one: "other"), and those still open."""
        cases = ", ".join(
            f"SUM(CASE WHEN i.status = 'closed' AND i.outcome_code = '{c}' THEN 1 ELSE 0 END)"
            for c in OUTCOME_CODES
            if c != "other"
        )
        sql = f"""SELECT {self._key(group_by)} AS k, {cases},
                  SUM(CASE WHEN i.status = 'closed' AND (i.outcome_code IS NULL OR i.outcome_code NOT IN
                      ('cleared_without_patrol', 'escalated', 'false_alarm')) THEN 1 ELSE 0 END),
                  SUM(CASE WHEN i.status <> 'closed' THEN 1 ELSE 0 END)
                  FROM incidents i WHERE {self._where(f)} GROUP BY k ORDER BY k"""
        return [
            {"key": row[0]} | dict(zip((*OUTCOME_CODES, "open"), (int(v or 0) for v in row[1:]), strict=True))
            for row in self._run(sql, f)
        ]

    def sources(self, f: Filter) -> list[tuple[str, str | None, int, int]]:
        """Per source and camera: incidents, and those closed as false alarms; most incidents first."""
        sql = f"""SELECT i.source, i.camera_id, COUNT(*),
                  SUM(CASE WHEN i.outcome_code = 'false_alarm' THEN 1 ELSE 0 END) AS fa
                  FROM incidents i WHERE {self._where(f)} GROUP BY i.source, i.camera_id
                  ORDER BY COUNT(*) DESC, i.source, i.camera_id"""
        return [(s, cam, n, int(fa or 0)) for s, cam, n, fa in self._run(sql, f)]

    def volume(self, f: Filter, group_by: str) -> list[tuple[str, int]]:
        sql = (
            f"SELECT {self._key(group_by)} AS k, COUNT(*) FROM incidents i WHERE {self._where(f)} GROUP BY k ORDER BY k"
        )
        return [(k, n) for k, n in self._run(sql, f)]

    def heatmap(self, f: Filter, cell_lat_deg: float, cell_lon_deg: float) -> list[tuple[float, float, int]]:
        """Incidents per grid cell (``cell_lat_deg`` x ``cell_lon_deg``), as the cell's centre."""
        ky, kx = self._floor("i.lat / :dlat"), self._floor("i.lon / :dlon")
        sql = f"""SELECT {ky} AS cy, {kx} AS cx, COUNT(*) FROM incidents i WHERE {self._where(f)}
                  GROUP BY cy, cx ORDER BY cy, cx"""
        rows = self._run(sql, f, dlat=cell_lat_deg, dlon=cell_lon_deg)
        return [((int(cy) + 0.5) * cell_lat_deg, (int(cx) + 0.5) * cell_lon_deg, n) for cy, cx, n in rows]

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


def _utc(dt: datetime) -> datetime:
    return dt.astimezone(UTC) if dt.tzinfo else dt.replace(tzinfo=UTC)


def _rounded(v: float | None) -> float | None:
    return None if v is None else round(float(v), 3)


def _percentile_cont(values: list[float], p: float) -> float | None:
    """PostgreSQL's ``percentile_cont(p)`` of sorted ``values``: linear between the nearest ranks."""
    if not values:
        return None
    pos = p * (len(values) - 1)
    lo = math.floor(pos)
    frac = pos - lo
    low = float(values[lo])
    return low if frac == 0 else low + frac * (float(values[lo + 1]) - low)
