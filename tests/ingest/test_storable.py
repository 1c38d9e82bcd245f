"""Every adapter's reports, at the edges of what it accepts, can be stored in real PostgreSQL.

Adapters bound lengths and refuse NUL characters so that a report they accept never fails later
at the store (PostgreSQL text cannot hold NUL; source_ref and camera_id columns are bounded).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from dronedispatch.domain.incidents import Report
from dronedispatch.ingest import parse_cap, parse_event, parse_review, parse_webhook
from dronedispatch.store.db import make_engine, migrate
from dronedispatch.store.repo import Store

DATA = Path(__file__).parent / "data"
NOW = datetime(2026, 11, 25, 6, 30, tzinfo=UTC)
NS = "urn:oasis:names:tc:emergency:cap:1.2"


def edge_reports() -> list[Report]:
    reports = [
        parse_webhook(
            {
                "category": "fire",
                "camera_id": "c" * 64,
                "source_ref": "r" * 128,
                "description": "송도 센트럴파크 연기 🔥 " + "d" * 1980,
                "location": {"lat": -90, "lon": 180},
                "observed_at": "2026-11-25T06:30:00+14:00",
            },
            NOW,
        ),
        parse_review(json.loads((DATA / "frigate_review_new_alert.json").read_text()), NOW),
        parse_event(json.loads((DATA / "frigate_event_update.json").read_text()), NOW),
    ]
    frigate = json.loads((DATA / "frigate_review_new_alert.json").read_text())
    frigate["after"].update(id="i" * 100, camera="k" * 64)
    frigate["after"]["data"]["zones"] = ["구역_" + str(i) for i in range(3000)]
    reports.append(parse_review(frigate, NOW))
    reports += parse_cap((DATA / "cap_flood_ko_en.xml").read_bytes(), NOW)
    long_cap = (
        f'<alert xmlns="{NS}"><identifier>{"I" * 500}</identifier><sender>{"S" * 500}</sender>'
        "<sent>2026-11-25T15:00:00+09:00</sent><status>Actual</status><msgType>Alert</msgType><scope>Public</scope>"
        "<info><category>Fire</category><event>화재</event><urgency>Immediate</urgency><severity>Extreme</severity>"
        f"<certainty>Observed</certainty><description>{'설명' * 3000}</description>"
        "<area><areaDesc>x</areaDesc><circle>37.39,126.63 2</circle></area></info></alert>"
    )
    reports += parse_cap(long_cap.encode(), NOW)
    assert all(r is not None for r in reports)
    return [r for r in reports if r is not None]


@pytest.fixture
def pg_store(fresh_postgres_db: str) -> Iterator[Store]:
    engine = make_engine(fresh_postgres_db)
    migrate(engine)
    yield Store(engine)
    engine.dispose()


def test_adapter_reports_round_trip_through_postgresql(pg_store: Store) -> None:
    for report in edge_reports():
        incident = pg_store.create_incident(report, report.lat or 37.39, report.lon or 126.63)
        assert incident.id is not None
        [row] = pg_store.incident_reports(incident.id)
        assert row.source == report.source
        assert row.source_ref == report.source_ref
        assert row.camera_id == report.camera_id
        assert row.description == report.description
        assert row.raw == report.raw
