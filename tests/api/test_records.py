"""Splitting a merged report out of its incident, and the record and evidence package routes, through the API.

The split runs on SQLite and on PostgreSQL (the row locks and the count differ between them).
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace

import pytest
from fastapi.testclient import TestClient

from dronedispatch.app.splits import ReportSplitter
from dronedispatch.domain.geo import destination
from dronedispatch.domain.incidents import Category, Report
from dronedispatch.events import BusEvent, IncidentChanged
from dronedispatch.reports.evidence_package import verify_package
from dronedispatch.service import create_app
from dronedispatch.store.db import make_engine, migrate
from dronedispatch.store.repo import Store
from dronedispatch.store.users import ROLES, hash_password
from tests.api.conftest import PASSWORD, make_settings

PARK = (37.3926, 126.6378)


@pytest.fixture(params=["sqlite", "postgresql"])
def db_client(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[TestClient]:
    sqlite = f"sqlite:///{tmp_path / 'dd.db'}"
    url = sqlite if request.param == "sqlite" else request.getfixturevalue("fresh_postgres_db")
    app = create_app(make_settings(tmp_path, database_url=url))
    with TestClient(app) as c:
        hashed = hash_password(PASSWORD)
        for role in ROLES:
            app.state.runtime.store.upsert_user(role, hashed, role)
        yield c


def _auth(client: TestClient) -> Callable[[str], dict[str, str]]:
    def headers(role: str) -> dict[str, str]:
        r = client.post("/api/v1/auth/token", data={"username": role, "password": PASSWORD})
        assert r.status_code == 200, r.text
        return {"Authorization": f"Bearer {r.json()['access_token']}"}

    return headers


def _report(client: TestClient, op: dict[str, str], at: tuple[float, float], text: str) -> dict:  # type: ignore[type-arg]
    body = {"category": "fire", "location": {"lat": at[0], "lon": at[1]}, "description": text}
    r = client.post("/api/v1/incidents", json=body, headers=op)
    assert r.status_code == 201, r.text
    return r.json()  # type: ignore[no-any-return]


def test_split_a_merged_report_into_its_own_incident(db_client: TestClient) -> None:
    client, auth = db_client, _auth(db_client)
    op = auth("operator")
    runtime = client.app.state.runtime  # type: ignore[attr-defined]
    first = _report(client, op, PARK, "smoke over the park")
    away = destination(*PARK, 90.0, 300.0)  # 300 m east: within the fire radius, so it merges
    merged = _report(client, op, away, "bins burning by the canal")
    assert merged["id"] == first["id"] and merged["report_count"] == 2
    view = client.get(f"/api/v1/incidents/{first['id']}", headers=op).json()
    reports = view["reports"]
    assert [round(r["distance_m"] or 0) for r in reports] == [0, 300]  # shown on the card

    # the operator splits the second report out
    only = client.post(f"/api/v1/incidents/{first['id']}/reports/{reports[0]['id']}/split", headers=auth("pilot"))
    assert only.status_code == 403  # operators only
    r = client.post(f"/api/v1/incidents/{first['id']}/reports/{reports[1]['id']}/split", headers=op)
    assert r.status_code == 201, r.text
    left, new = r.json()["incident"], r.json()["new_incident"]
    assert left["id"] == first["id"] and left["report_count"] == 1
    assert new["id"] != first["id"] and new["report_count"] == 1 and new["status"] == "open"
    assert (new["location"]["lat"], new["location"]["lon"]) == pytest.approx(away, abs=1e-9)
    assert new["description"] == "bins burning by the canal" and new["split_from_id"] == first["id"]
    moved = client.get(f"/api/v1/incidents/{new['id']}", headers=op).json()
    assert [(x["id"], x["distance_m"]) for x in moved["reports"]] == [(reports[1]["id"], 0.0)]
    assert "recommendation" in moved  # open: a drone can be sent to it at once
    (entry,) = runtime.store.audit_log(target_type="incident", target_id=str(first["id"]), limit=1)
    assert entry.action == "incident.split" and entry.actor == "operator"
    assert entry.detail["new_incident_id"] == new["id"] and round(entry.detail["distance_m"]) == 300

    # refusals: the only report left, an unknown report, a report of another incident, a closed incident
    r = client.post(f"/api/v1/incidents/{first['id']}/reports/{reports[0]['id']}/split", headers=op)
    assert r.status_code == 409 and "only report" in r.json()["detail"]
    r = client.post(f"/api/v1/incidents/{first['id']}/reports/999999/split", headers=op)
    assert r.status_code == 404
    r = client.post(f"/api/v1/incidents/{first['id']}/reports/{reports[1]['id']}/split", headers=op)
    assert r.status_code == 404  # it belongs to the new incident now
    _report(client, op, destination(*PARK, 0.0, 100.0), "more smoke")  # merges into the first again
    assert client.post(f"/api/v1/incidents/{first['id']}/close", json={"outcome": "out"}, headers=op).status_code == 200
    last = client.get(f"/api/v1/incidents/{first['id']}", headers=op).json()["reports"][-1]
    r = client.post(f"/api/v1/incidents/{first['id']}/reports/{last['id']}/split", headers=op)
    assert r.status_code == 409 and "closed" in r.json()["detail"]


def test_record_and_evidence_package_routes(client: TestClient, auth, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    op = auth("operator")
    first = _report(client, op, PARK, "smoke over the park")
    _report(client, op, destination(*PARK, 180.0, 120.0), "119 call: smoke")
    page = client.get(f"/api/v1/incidents/{first['id']}/record", headers=auth("tester"))
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "Incident record #" in page.text and "120 m" in page.text and "<svg" in page.text
    pdf = client.get(f"/api/v1/incidents/{first['id']}/record?format=pdf", headers=auth("pilot"))
    assert pdf.status_code == 200 and pdf.headers["content-type"] == "application/pdf"
    assert pdf.content.startswith(b"%PDF")
    assert client.get(f"/api/v1/incidents/{first['id']}/record?format=doc", headers=op).status_code == 422
    assert client.get("/api/v1/incidents/424242/record", headers=op).status_code == 404
    assert client.get(f"/api/v1/incidents/{first['id']}/record").status_code == 401

    r = client.get(f"/api/v1/incidents/{first['id']}/evidence-package", headers=op)
    assert r.status_code == 200 and r.headers["content-type"] == "application/zip"
    package = tmp_path / "p.zip"
    package.write_bytes(r.content)
    assert verify_package(package) == []
    with zipfile.ZipFile(io.BytesIO(r.content)) as zf:
        assert {"record.html", "record.pdf", "audit.json", "manifest.json"} == set(zf.namelist())
    runtime = client.app.state.runtime  # type: ignore[attr-defined]
    (entry,) = runtime.store.audit_log(target_type="incident", target_id=str(first["id"]), limit=1)
    assert entry.action == "evidence.package" and entry.actor == "operator"


def test_a_split_publishes_both_incidents(tmp_path: Path) -> None:
    """Every open view hears of both changes: the incident that lost a report and the new one."""
    engine = make_engine(f"sqlite:///{tmp_path / 'dd.db'}")
    migrate(engine)
    store = Store(engine)
    now = datetime.now(UTC)
    first = store.create_incident(Report(source="operator", category=Category.FIRE, lat=PARK[0], lon=PARK[1],
                                         observed_at=now), *PARK)  # fmt: skip
    assert first.id is not None
    away = destination(*PARK, 45.0, 200.0)
    store.merge_report(first.id, Report(source="cap", category=Category.FIRE, lat=away[0], lon=away[1],
                                        observed_at=now))  # fmt: skip
    published: list[BusEvent] = []
    splitter = ReportSplitter(store, SimpleNamespace(publish=published.append))
    old, new = splitter.split(first.id, store.incident_reports(first.id)[1].id or 0, "operator")
    assert [(e.data.id, e.data.report_count) for e in published if isinstance(e, IncidentChanged)] == [
        (old.id, 1),
        (new.id, 1),
    ]
    engine.dispose()
