"""Statistics against a hand-built month (tests/fixtures/stats_data.py), on SQLite and PostgreSQL:
both databases must give exactly the numbers worked out by hand."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from sqlalchemy import DateTime, Engine, bindparam, text

from dronedispatch.app.errors import Unprocessable
from dronedispatch.app.statistics import StatisticsService, utc_offset_min
from dronedispatch.domain.districts import DistrictIndex
from dronedispatch.store.db import make_engine, migrate
from dronedispatch.store.stats import StatsStore
from tests.fixtures import stats_data
from tests.fixtures.services import PostgresServer

DISTRICTS = Path(__file__).resolve().parents[2] / "sitl" / "ifez-districts.geojson"


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def engine(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    drop = None
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('stats') / 'stats.db'}"
    else:
        server: PostgresServer = request.getfixturevalue("postgres_server")
        name = server.create_database()
        url, drop = server.url(name), name
    engine = make_engine(url)
    migrate(engine)
    stats_data.fill(engine)
    yield engine
    engine.dispose()
    if drop is not None:
        with contextlib.suppress(Exception):
            request.getfixturevalue("postgres_server").drop_database(drop)


@pytest.fixture(scope="module")
def service(engine: Engine) -> StatisticsService:
    return StatisticsService(
        StatsStore(engine, offset_min=stats_data.OFFSET_MIN), drone_ids=["d1", "d2", "d3"],
        offset_min=stats_data.OFFSET_MIN, districts=DistrictIndex(json.loads(DISTRICTS.read_text())),
    )  # fmt: skip


@pytest.fixture(scope="module")
def month(service: StatisticsService):  # type: ignore[no-untyped-def]
    return service.filter(stats_data.START, stats_data.END)


def pct(p50: float | None, p90: float | None, n: int) -> dict[str, float | int | None]:
    return {"p50": p50, "p90": p90, "n": n}


def test_response_times_p50_p90_as_worked_out_by_hand(service: StatisticsService, month) -> None:  # type: ignore[no-untyped-def]
    # report->dispatch 30, 60, 90, 120: p50 at rank 1.5 = 75, p90 at rank 2.7 = 90 + 0.7*30 = 111
    # dispatch->airborne 30, 30, 40, 40: 35 and 40; airborne->on scene 120, 300, 330: 300 and 300 + 0.8*30
    # report->on scene 180, 400, 480: 400 and 400 + 0.8*80
    [row] = service.response_times(month, "none").rows
    assert row == {
        "key": "all",
        "incidents": 5,
        "report_to_dispatch": pct(75.0, 111.0, 4),
        "dispatch_to_airborne": pct(35.0, 40.0, 4),
        "airborne_to_on_scene": pct(300.0, 324.0, 3),
        "report_to_on_scene": pct(400.0, 464.0, 3),
    }
    by_district = {r["key"]: r for r in service.response_times(month, "district").rows}
    assert list(by_district) == ["", "cheongna", "songdo"]  # "" gathers incidents outside every district
    songdo = by_district["songdo"]
    assert songdo["incidents"] == 3
    assert songdo["report_to_dispatch"] == pct(60.0, 84.0, 3)  # 30, 60, 90
    assert songdo["report_to_on_scene"] == pct(290.0, 378.0, 2)  # 180, 400: 180 + 0.5*220, 180 + 0.9*220
    assert by_district[""]["report_to_dispatch"] == pct(None, None, 0)
    assert by_district["cheongna"]["airborne_to_on_scene"] == pct(330.0, 330.0, 1)
    hours = {r["key"]: r["incidents"] for r in service.response_times(month, "hour").rows}
    assert hours == {"00": 1, "10": 1, "12": 1, "21": 2}  # the city's clock, not UTC
    weeks = {r["key"]: r["incidents"] for r in service.response_times(month, "week").rows}
    assert weeks == {"2026-11-02": 3, "2026-11-09": 1, "2026-11-16": 1}  # keyed by their Monday
    cats = {r["key"]: r["report_to_dispatch"]["p50"] for r in service.response_times(month, "category").rows}
    assert cats == {"fire": 60.0, "flood": 120.0}


def test_filters_by_district_category_and_period(service: StatisticsService) -> None:
    songdo = service.filter(stats_data.START, stats_data.END, district="songdo")
    assert [r["incidents"] for r in service.response_times(songdo, "none").rows] == [3]
    flood = service.filter(stats_data.START, stats_data.END, category="flood")
    [row] = service.outcomes(flood).rows
    assert row == {"key": "all", "cleared_without_patrol": 0, "escalated": 1, "false_alarm": 0, "other": 0, "open": 0}
    # a date is the city's midnight: 2026-11-02 KST holds incidents 1 and 2 only
    day = service.filter(date(2026, 11, 2), date(2026, 11, 3))
    assert service.volume(day, "day").rows == [{"key": "2026-11-02", "incidents": 2}]
    with pytest.raises(Unprocessable):
        service.filter(date(2026, 11, 3), date(2026, 11, 2))
    with pytest.raises(Unprocessable):
        service.volume(day, "district")


def test_first_on_scene_outcomes_sources_volume(service: StatisticsService, month) -> None:  # type: ignore[no-untyped-def]
    # first on scene recorded for 1, 2 (drone), 3 (patrol), 5 (none); 4 is still open without it
    assert service.first_on_scene(month).rows == [{"key": "all", "incidents": 4, "drone_first": 2, "share": 0.5}]
    by_district = {r["key"]: r for r in service.first_on_scene(month, "district").rows}
    assert by_district["songdo"] == {"key": "songdo", "incidents": 2, "drone_first": 2, "share": 1.0}
    assert by_district["cheongna"]["share"] == 0.0
    # 5 was closed without a code: "other"; 4 is open
    assert service.outcomes(month).rows == [
        {"key": "all", "cleared_without_patrol": 1, "escalated": 1, "false_alarm": 1, "other": 1, "open": 1}
    ]
    sources = service.sources(month)
    assert sources.rows == [
        {"source": "frigate", "camera_id": "cam-a", "incidents": 2, "false_alarms": 1, "false_alarm_share": 0.5},
        {"source": "frigate", "camera_id": "cam-b", "incidents": 1, "false_alarms": 0, "false_alarm_share": 0.0},
        {"source": "operator", "camera_id": None, "incidents": 1, "false_alarms": 0, "false_alarm_share": 0.0},
        {"source": "webhook", "camera_id": None, "incidents": 1, "false_alarms": 0, "false_alarm_share": 0.0},
    ]
    assert sources.as_csv() == (
        "source,camera_id,incidents,false_alarms,false_alarm_share\n"
        "frigate,cam-a,2,1,0.5\nfrigate,cam-b,1,0,0.0\noperator,,1,0,0.0\nwebhook,,1,0,0.0\n"
    )
    assert service.volume(month, "day").rows == [
        {"key": "2026-11-02", "incidents": 2},
        {"key": "2026-11-03", "incidents": 1},
        {"key": "2026-11-10", "incidents": 1},
        {"key": "2026-11-21", "incidents": 1},
    ]
    assert [r["incidents"] for r in service.volume(month, "hour").rows] == [1, 1, 1, 2]


def test_response_times_csv_flattens_the_percentiles(service: StatisticsService, month) -> None:  # type: ignore[no-untyped-def]
    lines = service.response_times(month, "district").as_csv().splitlines()
    assert lines[0] == (
        "key,incidents,report_to_dispatch_p50,report_to_dispatch_p90,report_to_dispatch_n,"
        "dispatch_to_airborne_p50,dispatch_to_airborne_p90,dispatch_to_airborne_n,"
        "airborne_to_on_scene_p50,airborne_to_on_scene_p90,airborne_to_on_scene_n,"
        "report_to_on_scene_p50,report_to_on_scene_p90,report_to_on_scene_n"
    )
    assert lines[1] == ",1,,,0,,,0,,,0,,,0"
    # songdo: dispatch->airborne 30, 40, 40; airborne->on scene 120, 300: 120 + 0.5*180, 120 + 0.9*180
    assert lines[3] == "songdo,3,60.0,84.0,3,40.0,40.0,3,210.0,282.0,2,290.0,378.0,2"


def test_drones_hours_cycles_utilisation_maintenance(service: StatisticsService, month) -> None:  # type: ignore[no-untyped-def]
    # d1 flew 840 s (mission 1) + 1700 s (mission 2) = 2540 s; battery 95 -> 80 from the samples, 30 stored
    day = service.filter(date(2026, 11, 2), date(2026, 11, 3))
    assert service.drones(day).rows == [
        {"drone_id": "d1", "missions": 2, "flight_hours": 0.706, "battery_cycles": 0.45, "utilisation": 0.0294,
         "maintenance": False},
        {"drone_id": "d2", "missions": 0, "flight_hours": 0.0, "battery_cycles": 0.0, "utilisation": 0.0,
         "maintenance": True},
        {"drone_id": "d3", "missions": 0, "flight_hours": 0.0, "battery_cycles": 0.0, "utilisation": 0.0,
         "maintenance": False},
    ]  # fmt: skip
    # d2 over the month: 1050 s + 470 s = 1520 s over 30 days
    d2 = next(r for r in service.drones(month).rows if r["drone_id"] == "d2")
    assert (d2["missions"], d2["flight_hours"], d2["utilisation"]) == (2, 0.422, 0.0006)
    # filtered to the flood category: only mission 3
    flood = service.filter(stats_data.START, stats_data.END, category="flood")
    d2 = next(r for r in service.drones(flood).rows if r["drone_id"] == "d2")
    assert (d2["missions"], d2["flight_hours"]) == (1, 0.292)


def test_heatmap_cells(service: StatisticsService, month) -> None:  # type: ignore[no-untyped-def]
    rows = service.heatmap(month, 500).rows
    assert sorted(r["incidents"] for r in rows) == [1, 1, 1, 2]
    centre = next(r for r in rows if r["incidents"] == 2)  # incidents 1 and 2 share a point
    lat, lon = stats_data.POINTS[1]
    assert abs(centre["lat"] - lat) <= 250 / 111_320 and abs(centre["lon"] - lon) <= 250 / 88_000
    with pytest.raises(Unprocessable):
        service.heatmap(month, 1)


def test_backfill_gives_districts_and_battery_use(engine: Engine, service: StatisticsService, month) -> None:  # type: ignore[no-untyped-def]
    # last in the module: it changes the data. Incident 5 lies in Nam-gu; mission 1 gets 95 - 80 stored
    located, filled = service.backfill(batch=1)
    assert (located, filled) == (1, 1)
    districts = [r["key"] for r in service.response_times(month, "district").rows]
    assert districts == ["cheongna", "incheon-nam-gu", "songdo"]
    assert service.backfill() == (0, 0)
    day = service.filter(date(2026, 11, 2), date(2026, 11, 3))
    assert service.drones(day).rows[0]["battery_cycles"] == 0.45

    # a mission changed now (its arrival a minute later): the next response times see it
    with engine.begin() as conn:
        conn.execute(
            text("UPDATE missions SET on_scene_at = :at, updated_at = :now WHERE id = 3").bindparams(
                bindparam("at", type_=DateTime(timezone=True)), bindparam("now", type_=DateTime(timezone=True))
            ),
            {"at": datetime(2026, 11, 3, 12, 9, tzinfo=UTC), "now": datetime.now(UTC)},
        )
    cheongna = next(r for r in service.response_times(month, "district").rows if r["key"] == "cheongna")
    assert cheongna["airborne_to_on_scene"] == pct(390.0, 390.0, 1)
    assert cheongna["report_to_on_scene"] == pct(540.0, 540.0, 1)


def test_utc_offset() -> None:
    assert utc_offset_min("Asia/Seoul") == 540
    assert utc_offset_min("UTC") == 0
