"""The statistics API: JSON and CSV of the hand-built month, the structured close and incident
districts through the API, and every endpoint answering on a history from ``seed-history``."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from dronedispatch.app.statistics import StatisticsService
from dronedispatch.cli import main as cli_main
from dronedispatch.domain.incidents import Category, Report
from dronedispatch.seed_history import SeedOptions, seed_history
from dronedispatch.service import create_app
from dronedispatch.store.db import make_engine
from dronedispatch.store.repo import Store
from dronedispatch.store.stats import StatsStore
from dronedispatch.store.users import hash_password
from tests.api.conftest import PASSWORD, make_settings
from tests.fixtures import stats_data

Auth = Callable[[str], dict[str, str]]
MONTH = {"from": "2026-11-01T00:00:00Z", "to": "2026-12-01T00:00:00Z"}
ENDPOINTS = ("response-times", "first-on-scene", "outcomes", "sources", "drones", "volume", "heatmap")


def test_incident_district_and_structured_close(client: TestClient, auth: Auth) -> None:
    body = {"category": "fire", "location": {"lat": 37.3926, "lon": 126.6378}, "description": "smoke"}
    r = client.post("/api/v1/incidents", json=body, headers=auth("operator"))
    assert r.status_code == 201, r.text
    incident = r.json()
    assert incident["district"] == "songdo"
    r = client.post(
        f"/api/v1/incidents/{incident['id']}/close",
        json={"outcome": "looked, nothing there", "outcome_code": "false_alarm", "first_on_scene": "drone"},
        headers=auth("operator"),
    )
    assert r.status_code == 200, r.text
    assert (r.json()["outcome_code"], r.json()["first_on_scene"]) == ("false_alarm", "drone")
    params = {"target_type": "incident", "target_id": str(incident["id"])}
    entries = client.get("/api/v1/audit", params=params, headers=auth("admin")).json()
    details = [e["detail"] for e in entries if e["action"] == "incident.close"]
    assert any(d.get("outcome_code") == "false_alarm" and d.get("first_on_scene") == "drone" for d in details)
    bad = {"outcome": "x", "outcome_code": "solved"}
    r = client.post(f"/api/v1/incidents/{incident['id']}/close", json=bad, headers=auth("operator"))
    assert r.status_code == 422
    # the closed incident counts as a false alarm of its source, today
    rows = client.get("/api/v1/stats/sources", headers=auth("pilot")).json()["rows"]
    assert rows == [
        {"source": "operator", "camera_id": None, "incidents": 1, "false_alarms": 1, "false_alarm_share": 1.0}
    ]


def test_stats_json_and_csv_of_the_hand_built_month(client: TestClient, auth: Auth) -> None:
    stats_data.fill(client.app.state.runtime.engine)  # type: ignore[attr-defined]
    h = auth("pilot")
    r = client.get("/api/v1/stats/response-times", params=MONTH | {"group_by": "none"}, headers=h)
    assert r.status_code == 200, r.text
    answer = r.json()
    assert (answer["from"], answer["to"], answer["district"]) == (
        "2026-11-01T00:00:00+00:00",
        "2026-12-01T00:00:00+00:00",
        None,
    )
    [row] = answer["rows"]
    assert row["incidents"] == 5
    assert row["report_to_dispatch"] == {"p50": 75.0, "p90": 111.0, "n": 4}
    assert row["report_to_on_scene"] == {"p50": 400.0, "p90": 464.0, "n": 3}
    r = client.get("/api/v1/stats/outcomes", params=MONTH | {"district": "songdo", "format": "csv"}, headers=h)
    assert r.headers["content-type"].startswith("text/csv")
    assert r.text == "key,cleared_without_patrol,escalated,false_alarm,other,open\nall,1,0,1,0,1\n"
    r = client.get("/api/v1/stats/first-on-scene", params=MONTH | {"group_by": "district"}, headers=h)
    assert [(x["key"], x["drone_first"], x["share"]) for x in r.json()["rows"]] == [
        ("", 0, 0.0),
        ("cheongna", 0, 0.0),
        ("songdo", 2, 1.0),
    ]
    r = client.get("/api/v1/stats/drones", params={"from": "2026-11-02", "to": "2026-11-03"}, headers=h)
    d1 = next(x for x in r.json()["rows"] if x["drone_id"] == "d1")
    assert (d1["missions"], d1["flight_hours"], d1["battery_cycles"], d1["utilisation"]) == (2, 0.706, 0.45, 0.0294)
    r = client.get("/api/v1/stats/volume", params=MONTH | {"group_by": "week", "format": "csv"}, headers=h)
    assert r.text == "key,incidents\n2026-11-02,3\n2026-11-09,1\n2026-11-16,1\n"
    r = client.get("/api/v1/stats/heatmap", params=MONTH | {"cell_m": 1000}, headers=h)
    assert sum(x["incidents"] for x in r.json()["rows"]) == 5
    # refusals: a bad grouping, an empty period, no account
    assert client.get("/api/v1/stats/volume", params={"group_by": "district"}, headers=h).status_code == 422
    empty = {"from": "2026-11-03", "to": "2026-11-02"}
    assert client.get("/api/v1/stats/outcomes", params=empty, headers=h).status_code == 422
    for edge in ({"to": "0001-01-01T00:00:00Z"}, {"from": "0001-01-01"}, {"to": "9999-12-31"}):  # the calendar's edge
        r = client.get("/api/v1/stats/heatmap", params=edge, headers=h)
        assert r.status_code == 422 and "period must lie between" in r.text, (edge, r.text)
    assert client.get("/api/v1/stats/outcomes").status_code == 401


def test_seed_history_fills_rows_that_every_endpoint_answers_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"sqlite:///{tmp_path / 'history.db'}"
    monkeypatch.setenv("DD_DATABASE_URL", url)
    argv = ["seed-history", "--days", "2", "--incidents-per-day", "25", "--seed", "7", "--until", "2026-11-10"]
    assert cli_main([*argv, "--samples-per-mission", "30"]) == 0
    settings = make_settings(tmp_path, database_url=url)
    app = create_app(settings)
    with TestClient(app) as client:
        engine = app.state.runtime.engine
        with engine.connect() as conn:
            incidents, districts, closed = conn.execute(
                text(
                    "SELECT COUNT(*), COUNT(district), SUM(CASE WHEN status = 'closed' THEN 1 ELSE 0 END)"
                    " FROM incidents"
                )
            ).one()
            missions = conn.execute(text("SELECT COUNT(*) FROM missions")).scalar()
            samples = conn.execute(text("SELECT COUNT(*) FROM telemetry_samples")).scalar()
        assert incidents >= 30 and districts >= incidents - 2 and closed >= incidents // 2
        assert missions and samples == 30 * missions  # the number of samples per track asked for
        app.state.runtime.store.upsert_user("ana", hash_password(PASSWORD), "operator")
        token = client.post("/api/v1/auth/token", data={"username": "ana", "password": PASSWORD}).json()
        h = {"Authorization": f"Bearer {token['access_token']}"}
        period = {"from": "2026-11-08", "to": "2026-11-10"}
        answers = {e: client.get(f"/api/v1/stats/{e}", params=period, headers=h) for e in ENDPOINTS}
        assert {e: r.status_code for e, r in answers.items()} == dict.fromkeys(ENDPOINTS, 200)
        assert sum(r["incidents"] for r in answers["volume"].json()["rows"]) == incidents
        assert answers["response-times"].json()["rows"][0]["report_to_on_scene"]["n"] == missions
        flights = sum(r["missions"] for r in answers["drones"].json()["rows"])
        assert flights == missions
        for e in ENDPOINTS:
            csv = client.get(f"/api/v1/stats/{e}", params=period | {"format": "csv"}, headers=h)
            assert csv.status_code == 200 and len(csv.text.splitlines()) >= 2, e
    # the same seed and end give the same history
    again = tmp_path / "again"
    again.mkdir()
    monkeypatch.setenv("DD_DATABASE_URL", f"sqlite:///{again / 'history.db'}")
    assert cli_main([*argv, "--samples-per-mission", "30"]) == 0
    from_again = make_settings(again, database_url=f"sqlite:///{again / 'history.db'}")
    rows = "SELECT id, category, source, camera_id, lat, lon, outcome_code FROM incidents ORDER BY id"
    first_engine, second_engine = (create_app(s).state.runtime.engine for s in (settings, from_again))
    with first_engine.connect() as a, second_engine.connect() as b:
        assert a.execute(text(rows)).all() == b.execute(text(rows)).all()


def test_seed_history_on_postgresql(fresh_postgres_db: str) -> None:
    """The bulk path of PostgreSQL (COPY of the samples, sequences moved past the ids given)."""
    settings = make_settings(Path("/nonexistent"), database_url=fresh_postgres_db)
    opts = SeedOptions(days=1, incidents_per_day=30, samples_per_mission=20, seed=3, until=date(2026, 11, 10))
    result = seed_history(settings, opts, progress=False)
    assert result.incidents >= 15 and result.missions >= 5 and result.samples == 20 * result.missions
    engine = make_engine(fresh_postgres_db)
    try:
        svc = StatisticsService(StatsStore(engine, offset_min=540), offset_min=540)
        day = svc.filter(date(2026, 11, 9), date(2026, 11, 10))
        assert sum(r["incidents"] for r in svc.volume(day, "hour").rows) == result.incidents
        [row] = svc.response_times(day, "none").rows
        assert row["report_to_on_scene"]["n"] == result.missions
        assert sum(r["missions"] for r in svc.drones(day).rows) == result.missions
        # the service's own writes still get fresh ids after the bulk insert
        store = Store(engine)
        report = Report(source="operator", category=Category.FIRE, lat=37.39, lon=126.64, observed_at=datetime.now(UTC))
        assert (store.create_incident(report, 37.39, 126.64).id or 0) > result.incidents
    finally:
        engine.dispose()
