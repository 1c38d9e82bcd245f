"""The public flight log leaks nothing: a store full of names, notes, snapshots and camera ids, and
none of them in the page or its JSON; the flights that must appear do, redacted."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session

from dronedispatch.domain.redaction import PUBLIC_FIELDS
from dronedispatch.service import create_app
from dronedispatch.store.models import (
    AuditEntry,
    Evidence,
    Incident,
    IncidentReport,
    Mission,
    Share,
    TelemetrySample,
    User,
)
from tests.api.conftest import make_settings

#: Every string that must never reach the public (names, free text, files, cameras, drones).
SECRETS = {
    "username": "kim-minsu-operator",
    "pilot": "park-jiyoung-pilot",
    "description": "smoke from flat 1203 of Haesol tower",
    "report": "caller Lee Dohyun at 010-5555-1234",
    "source_ref": "frigate-event-7f3a9c",
    "raw": "license plate 12가3456",
    "outcome": "resident Choi taken to Gil hospital",
    "camera": "cam-haesol-lobby-7",
    "drone": "drone-of-officer-jang",
    "recording": "/evidence/mission-secret-recording.mp4",
    "snapshot": "/evidence/incident-secret-on-scene.jpg",
    "reason": "pilot Han aborted near school",
    "approval": "approval-ref-NX-4471",
    "template": "template-secret-pattern",
    "share": "share-created-by-secret",
}
T0 = datetime(2026, 11, 20, 9, 15, 42, tzinfo=UTC)


def _track(start: datetime, lat: float, lon: float, n: int) -> list[TelemetrySample]:
    """A flight north-east then hovering on scene, one sample a second."""
    out = []
    for i in range(n):
        f = min(i, n // 2) / (n // 2)
        out.append(TelemetrySample(mission_id=0, drone_id=SECRETS["drone"], at=start + timedelta(seconds=i),
                                   lat=lat + 0.01 * f + 0.00001 * (i % 3), lon=lon + 0.01 * f, alt_m=60.0,
                                   battery_pct=90 - i / 60, speed_ms=10.0))  # fmt: skip
    return out


def _fill(engine: object) -> None:
    with Session(engine) as s:  # type: ignore[arg-type]
        s.add(User(username=SECRETS["username"], password_hash="x", role="operator"))
        s.add(User(username=SECRETS["pilot"], password_hash="x", role="pilot"))
        flights = [  # category, position, district column, launch, minutes flown, ended
            ("fire", (37.3926, 126.6378), "songdo", T0, 14, True),
            ("missing_person", (37.5390, 126.6470), None, T0 + timedelta(days=1, hours=3), 31, True),
            ("crime", (37.3926, 126.6378), "songdo", T0 + timedelta(days=2), 5, False),  # still flying: not listed
        ]
        for category, (lat, lon), district, launched, minutes, ended in flights:
            incident = Incident(category=category, lat=lat, lon=lon, camera_id=SECRETS["camera"], source="frigate",
                                description=SECRETS["description"], outcome=SECRETS["outcome"] if ended else None,
                                approval_ref=SECRETS["approval"], district=district, created_at=launched,
                                status="closed" if ended else "dispatched")  # fmt: skip
            s.add(incident)
            s.flush()
            assert incident.id is not None
            s.add(IncidentReport(incident_id=incident.id, source="frigate", source_ref=SECRETS["source_ref"],
                                 category=category, lat=lat, lon=lon, camera_id=SECRETS["camera"],
                                 description=SECRETS["report"], observed_at=launched,
                                 raw={"note": SECRETS["raw"]}))  # fmt: skip
            mission = Mission(incident_id=incident.id, drone_id=SECRETS["drone"], sysid=1,
                              state="completed" if ended else "on_scene", reason=SECRETS["reason"] if ended else None,
                              template=SECRETS["template"], created_by=SECRETS["pilot"],
                              recording_path=SECRETS["recording"], created_at=launched - timedelta(seconds=40),
                              launched_at=launched,
                              ended_at=launched + timedelta(minutes=minutes) if ended else None)  # fmt: skip
            s.add(mission)
            s.flush()
            assert mission.id is not None
            for sample in _track(launched, 37.38, 126.63, 240):
                sample.mission_id = mission.id
                s.add(sample)
            s.add(Evidence(mission_id=mission.id, incident_id=incident.id, kind="snapshot", path=SECRETS["snapshot"],
                           media_type="image/jpeg", sha256="0" * 64, size_bytes=1))  # fmt: skip
            s.add(AuditEntry(actor=SECRETS["username"], action="incident.close", target_type="incident",
                             target_id=str(incident.id), detail={"outcome": SECRETS["outcome"]}))  # fmt: skip
            s.add(Share(id="s" * 31 + str(incident.id), incident_id=incident.id, token_sha256=str(incident.id) * 64,
                        created_by=SECRETS["share"], expires_at=launched + timedelta(hours=2)))  # fmt: skip
        s.commit()


@pytest.fixture(scope="module")
def public_client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    tmp: Path = tmp_path_factory.mktemp("public")
    app = create_app(make_settings(tmp, public_flight_log=True))
    with TestClient(app) as c:
        _fill(app.state.runtime.engine)
        yield c


def test_public_log_shows_flights_and_leaks_nothing(public_client: TestClient) -> None:
    period = {"from": "2026-11-01", "to": "2026-12-01"}
    page = public_client.get("/public/flights", params=period)
    data = public_client.get("/public/flights.json", params=period)
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert data.status_code == 200
    # no login was sent, and none is needed; no inline script
    assert "<script>" not in page.text and 'src="/ui/public/flights.js"' in page.text

    for what, secret in SECRETS.items():
        for name, text in (("page", page.text), ("json", data.text)):
            assert secret.lower() not in text.lower(), f"{what} ({secret!r}) leaked into the {name}"
            assert json.dumps(secret)[1:-1].lower() not in text.lower(), f"{what} leaked (escaped) into the {name}"
    for word in ("evidence", ".jpg", ".mp4", "/api/v1", "incident_id", "mission_id", "camera", "drone_id"):
        assert word not in page.text.lower() and word not in data.text.lower(), word

    rows = data.json()["rows"]
    assert [tuple(r) for r in rows] == [PUBLIC_FIELDS] * 2
    newest, oldest = rows  # newest first; the flight still in the air is not listed
    assert newest["start"] == "2026-11-21T12:15Z"
    assert newest["purpose"] == "Search and rescue"
    assert (newest["district"], newest["district_name"]) == ("cheongna", "Cheongna")  # from its position
    assert newest["duration_min"] == 31
    assert oldest["start"] == "2026-11-20T09:15Z"
    assert (oldest["purpose"], oldest["district"], oldest["duration_min"]) == ("Fire response", "songdo", 14)
    # 240 samples become a handful of coarse points: start, the turn onto the scene, nothing finer
    assert oldest["track"] == [[37.38, 126.63], [37.39, 126.64]]
    for row in rows:
        assert row["start"] in page.text and row["purpose"] in page.text and row["district_name"] in page.text
        assert f"{row['duration_min']} min" in page.text
    assert page.text.count("<polyline") == 2

    assert data.json()["more"] is False and "newest flights are shown" not in page.text

    # paging by period; a period with more flights than a page holds says so
    one = public_client.get("/public/flights.json", params={"from": "2026-11-21T00:00:00Z", "to": "2026-11-22"})
    assert [r["start"] for r in one.json()["rows"]] == ["2026-11-21T12:15Z"]
    log = public_client.app.state.runtime.flight_log  # type: ignore[attr-defined]
    log.max_rows = 1
    try:
        first = public_client.get("/public/flights.json", params=period).json()
        assert [r["start"] for r in first["rows"]] == ["2026-11-21T12:15Z"] and first["more"] is True
        assert "The 1 newest flights are shown" in public_client.get("/public/flights", params=period).text
        rest = public_client.get("/public/flights.json", params={"from": "2026-11-01", "to": "2026-11-21"}).json()
        assert [r["start"] for r in rest["rows"]] == ["2026-11-20T09:15Z"] and rest["more"] is False
    finally:
        log.max_rows = 500
    none = public_client.get("/public/flights", params={"from": "2026-10-01", "to": "2026-10-02"})
    assert none.status_code == 200 and "No flights in this period" in none.text
    assert (
        public_client.get("/public/flights.json", params={"from": "2026-11-02", "to": "2026-11-01"}).status_code == 422
    )
    assert (
        public_client.get("/public/flights.json", params={"from": "2024-01-01", "to": "2026-11-01"}).status_code == 422
    )


def test_public_log_is_off_by_default(client: TestClient) -> None:
    for path in ("/public/flights", "/public/flights.json"):
        assert client.get(path).status_code == 404, path
