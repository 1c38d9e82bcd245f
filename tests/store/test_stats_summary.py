"""The statistics summary (``stats_incidents``) against the raw rows, on SQLite and PostgreSQL.

A small random history from ``seed-history`` is read twice: by :class:`StatsStore` (which reads the
summary) and by an independent reckoning in Python straight from ``incidents`` and ``missions``.
Every table must agree for whole periods, periods cut mid-day, a district and a category; then
incidents and missions change through the service's repository (a new incident, a dispatch, on
scene, mission end, close with an outcome) and the statistics follow; another local offset and
``dronedispatch stats rebuild`` build the summary again.
"""

from __future__ import annotations

import contextlib
import math
import statistics
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, select, text
from sqlmodel import Session

from dronedispatch.cli import main as cli_main
from dronedispatch.domain.incidents import Category, Report
from dronedispatch.seed_history import SeedOptions, seed_history
from dronedispatch.settings import Settings
from dronedispatch.store.db import make_engine
from dronedispatch.store.models import Incident, Mission
from dronedispatch.store.repo import Store
from dronedispatch.store.stats import DURATIONS, OUTCOME_CODES, Filter, StatsStore
from tests.fixtures.services import PostgresServer

OFFSET_MIN = 540
UNTIL = date(2026, 11, 10)
START = datetime(2026, 10, 27, tzinfo=UTC)
END = datetime(2026, 11, 10, tzinfo=UTC)
GROUPS = ("district", "category", "hour", "week", "day", "none")
CELL = (500 / 111_320.0, 500 / 88_000.0)  # degrees of latitude and longitude


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    drop = None
    if request.param == "sqlite":
        db_url = f"sqlite:///{tmp_path_factory.mktemp('summary') / 'history.db'}"
    else:
        server: PostgresServer = request.getfixturevalue("postgres_server")
        drop = server.create_database()
        db_url = server.url(drop)
    settings = Settings(database_url=db_url, secret_key="summary-test-secret-key-long-enough-for-hs256")  # type: ignore[call-arg]
    opts = SeedOptions(days=14, incidents_per_day=40, samples_per_mission=2, seed=5, until=UNTIL, tz_offset_min=540)
    seed_history(settings, opts, progress=False)
    yield db_url
    if drop is not None:
        with contextlib.suppress(Exception):
            request.getfixturevalue("postgres_server").drop_database(drop)


@pytest.fixture(scope="module")
def engine(url: str) -> Iterator[Engine]:
    engine = make_engine(url)
    yield engine
    engine.dispose()


def _utc(dt: datetime) -> datetime:
    return dt.astimezone(UTC) if dt.tzinfo else dt.replace(tzinfo=UTC)


def raw(engine: Engine, f: Filter, offset_min: int) -> dict[Any, Any]:
    """Every table reckoned in Python from the incidents and missions themselves."""
    with Session(engine) as s:
        incidents = list(s.execute(select(Incident)).scalars())
        missions = list(s.execute(select(Mission)).scalars())
    firsts: dict[int, list[datetime]] = {}
    for m in missions:
        for j, at in enumerate((m.created_at, m.launched_at, m.on_scene_at)):
            if at is not None:
                slot = firsts.setdefault(m.incident_id, [None, None, None])  # type: ignore[list-item]
                slot[j] = min(_utc(at), slot[j]) if slot[j] is not None else _utc(at)
    groups: dict[str, dict[Any, list[dict[str, Any]]]] = {g: {} for g in GROUPS}
    kept = []
    for i in incidents:
        created = _utc(i.created_at)
        if not (f.start <= created < f.end):
            continue
        if (f.district is not None and i.district != f.district) or (
            f.category is not None and i.category != f.category
        ):
            continue
        local = created + timedelta(minutes=offset_min)
        dispatch, airborne, on_scene = (
            (t - created).total_seconds() if t is not None else None for t in firsts.get(i.id or 0, [None] * 3)
        )
        row = {
            "i": i,
            "report_to_dispatch": dispatch,
            "dispatch_to_airborne": None if airborne is None or dispatch is None else airborne - dispatch,
            "airborne_to_on_scene": None if on_scene is None or airborne is None else on_scene - airborne,
            "report_to_on_scene": on_scene,
        }
        keys = {
            "district": i.district or "",
            "category": i.category,
            "hour": f"{local.hour:02d}",
            "day": local.date().isoformat(),
            "week": (local.date() - timedelta(days=local.weekday())).isoformat(),
            "none": "all",
        }
        for g in GROUPS:
            groups[g].setdefault(keys[g], []).append(row)
        kept.append(row)

    def pcts(values: list[float]) -> tuple[float | None, float | None, int]:
        if not values:
            return None, None, 0
        if len(values) == 1:
            return round(values[0], 3), round(values[0], 3), 1
        deciles = statistics.quantiles(values, n=10, method="inclusive")
        return round(statistics.median(values), 3), round(deciles[8], 3), len(values)

    out: dict[Any, Any] = {}
    for g in GROUPS:
        ordered = sorted(groups[g].items())
        out[("response", g)] = [
            (k, len(rows), *(pcts([r[d] for r in rows if r[d] is not None]) for d in DURATIONS)) for k, rows in ordered
        ]
        out[("first", g)] = [
            (
                k,
                sum(r["i"].first_on_scene is not None for r in rows),
                sum(r["i"].first_on_scene == "drone" for r in rows),
            )
            for k, rows in ordered
        ]
        outcome = []
        for k, rows in ordered:
            closed = [r["i"] for r in rows if r["i"].status == "closed"]
            counts = {c: sum(i.outcome_code == c for i in closed) for c in OUTCOME_CODES if c != "other"}
            counts["other"] = len(closed) - sum(counts.values())
            outcome.append({"key": k, **counts, "open": len(rows) - len(closed)})
        out[("outcomes", g)] = outcome
        out[("volume", g)] = [(k, len(rows)) for k, rows in ordered]
    sources: dict[tuple[str, str | None], list[int]] = {}
    for r in kept:
        entry = sources.setdefault((r["i"].source, r["i"].camera_id), [0, 0])
        entry[0] += 1
        entry[1] += r["i"].outcome_code == "false_alarm"
    out["sources"] = sorted(
        ((s, c, n, fa) for (s, c), (n, fa) in sources.items()), key=lambda x: (-x[2], x[0], x[1] or "")
    )
    cells: dict[tuple[int, int], int] = {}
    for r in kept:
        cell = (math.floor(r["i"].lat / CELL[0]), math.floor(r["i"].lon / CELL[1]))
        cells[cell] = cells.get(cell, 0) + 1
    out["heatmap"] = [((cy + 0.5) * CELL[0], (cx + 0.5) * CELL[1], n) for (cy, cx), n in sorted(cells.items())]
    out["count"] = len(kept)
    return out


def summarised(store: StatsStore, f: Filter) -> dict[Any, Any]:
    out: dict[Any, Any] = {}
    for g in GROUPS:
        out[("response", g)] = [
            (r["key"], r["incidents"], *((r[d].p50, r[d].p90, r[d].n) for d in DURATIONS))
            for r in store.response_times(f, g)
        ]
        out[("first", g)] = store.first_on_scene(f, g)
        out[("outcomes", g)] = store.outcomes(f, g)
        out[("volume", g)] = store.volume(f, g)
    out["sources"] = sorted(store.sources(f), key=lambda x: (-x[2], x[0], x[1] or ""))
    out["heatmap"] = store.heatmap(f, *CELL)
    out["count"] = sum(n for _, n in store.volume(f, "none"))
    return out


def assert_same(store: StatsStore, engine: Engine, f: Filter, offset_min: int = OFFSET_MIN) -> int:
    got, want = summarised(store, f), raw(engine, f, offset_min)
    for key in want:
        if key[0] == "response":
            # percentiles: the same interpolation, computed in another order, may differ in the last bit
            assert len(got[key]) == len(want[key]), key
            for g_row, w_row in zip(got[key], want[key], strict=True):
                assert g_row[:2] == w_row[:2], key
                for g_p, w_p in zip(g_row[2:], w_row[2:], strict=True):
                    assert g_p[2] == w_p[2], (key, g_row[0])
                    assert g_p[:2] == pytest.approx(w_p[:2], abs=0.0011), (key, g_row[0])
        else:
            assert got[key] == want[key], key
    return int(want["count"])


def test_summary_gives_the_raw_numbers_for_whole_and_cut_periods(engine: Engine) -> None:
    store = StatsStore(engine, offset_min=OFFSET_MIN)
    assert assert_same(store, engine, Filter(START, END)) > 400
    # cut mid-day at both ends (local days partly inside), then one district and one category
    cut = Filter(START + timedelta(hours=13, minutes=37, seconds=12), END - timedelta(hours=5, seconds=3))
    assert assert_same(store, engine, cut) > 300
    with engine.connect() as conn:
        district = conn.execute(
            text("SELECT district FROM incidents WHERE district IS NOT NULL GROUP BY district ORDER BY COUNT(*) DESC")
        ).first()[0]  # type: ignore[index]
    assert assert_same(store, engine, Filter(cut.start, cut.end, district=district)) > 10
    assert assert_same(store, engine, Filter(START, END, category="fire")) > 10


def test_summary_follows_the_repository_and_rebuilds(engine: Engine, url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    store, repo = StatsStore(engine, offset_min=OFFSET_MIN), Store(engine)
    now = datetime.now(UTC)
    today = Filter(now - timedelta(hours=1), now + timedelta(hours=1))
    before = Filter(START, END)
    assert assert_same(store, engine, today) == 0
    report = Report(source="operator", category=Category.FIRE, lat=37.39, lon=126.64, observed_at=now)
    incident = repo.create_incident(report, 37.39, 126.64, district="songdo")
    assert incident.id is not None
    assert store.volume(today, "none") == [("all", 1)]
    # dispatched, airborne, on scene, back: the response times follow each step
    mission = repo.add_mission(
        Mission(
            incident_id=incident.id,
            drone_id="d9",
            sysid=9,
            template="orbit",
            created_by="kim",
            created_at=incident.created_at + timedelta(seconds=30),
        )
    )
    assert mission.id is not None
    [row] = store.response_times(today, "none")
    assert (row["report_to_dispatch"].p50, row["dispatch_to_airborne"].n) == (30.0, 0)
    repo.update_mission(mission.id, launched_at=incident.created_at + timedelta(seconds=75))
    repo.update_mission(mission.id, on_scene_at=incident.created_at + timedelta(seconds=195))
    repo.update_mission(mission.id, state="completed", ended_at=incident.created_at + timedelta(seconds=900))
    [row] = store.response_times(today, "none")
    assert (row["dispatch_to_airborne"].p50, row["airborne_to_on_scene"].p50, row["report_to_on_scene"].p50) == (
        45.0,
        120.0,
        195.0,
    )
    assert store.outcomes(today, "none")[0]["open"] == 1
    repo.update_incident(incident.id, status="closed", outcome_code="escalated", first_on_scene="drone")
    [outcome] = store.outcomes(today, "none")
    assert (outcome["escalated"], outcome["open"]) == (1, 0)
    assert store.first_on_scene(today, "none") == [("all", 1, 1)]
    assert assert_same(store, engine, today) == 1
    # an old incident closed now moves in the past period's tables
    with engine.connect() as conn:
        old_id = conn.execute(
            text("SELECT id FROM incidents WHERE status <> 'closed' ORDER BY id LIMIT 1")
        ).scalar_one_or_none()
    if old_id is not None:
        repo.update_incident(old_id, status="closed", outcome_code="false_alarm", first_on_scene="none")
    assert_same(store, engine, before)
    # a past mission's arrival corrected: only the mission is stamped, its incident's figures follow
    with engine.connect() as conn:
        mission_id = conn.execute(text("SELECT MAX(id) FROM missions WHERE created_by = 'seed-history'")).scalar_one()
    corrected = repo.get_mission(mission_id)
    assert corrected.launched_at is not None
    repo.update_mission(mission_id, on_scene_at=corrected.launched_at + timedelta(seconds=1.5))
    created = _utc(repo.get_incident(corrected.incident_id).created_at)
    [row] = store.response_times(Filter(created, created + timedelta(microseconds=1)), "none")
    assert (row["incidents"], row["airborne_to_on_scene"].p50) == (1, 1.5)
    assert_same(store, engine, before)
    # another local offset: rebuilt whole for it, and still the raw numbers
    assert StatsStore(engine, offset_min=-300).refresh() > 400
    assert_same(StatsStore(engine, offset_min=-300), engine, before, offset_min=-300)
    # recovery from a summary gone wrong: `dronedispatch stats rebuild` (the city's zone, Asia/Seoul: +9 h)
    with engine.begin() as conn:
        conn.execute(text("UPDATE stats_incidents SET category = 'flood', hour = 0"))
    monkeypatch.setenv("DD_DATABASE_URL", url)
    monkeypatch.setenv("DD_TIMEZONE", "Asia/Seoul")
    monkeypatch.setenv("DD_SECRET_KEY", "summary-test-secret-key-long-enough-for-hs256")
    assert cli_main(["stats", "rebuild"]) == 0
    assert_same(store, engine, before)
    assert_same(store, engine, today)
