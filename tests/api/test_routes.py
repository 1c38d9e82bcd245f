"""Every route, every role, every kind of bad input — against the real app and a real SQLite store.

No vehicle is connected here (the MAVLink endpoint listens on a free port), so every drone is
offline; flights are covered by tests/e2e.
"""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from tests.api.conftest import INGEST_KEY

PARK = {"lat": 37.3926, "lon": 126.6378}


def create(client: TestClient, headers: dict[str, str], **body: object) -> dict:
    payload = {"category": "fire", "severity": 3, "location": PARK, "description": "smoke"}
    payload.update(body)
    r = client.post("/api/v1/incidents", json=payload, headers=headers)
    assert r.status_code == 201, r.text
    return r.json()


def test_login_and_me(client: TestClient, auth) -> None:  # type: ignore[no-untyped-def]
    r = client.get("/api/v1/me", headers=auth("pilot"))
    assert r.json() == {"username": "pilot", "role": "pilot"}


@pytest.mark.parametrize(
    ("form", "status"),
    [
        ({"username": "operator", "password": "wrong"}, 401),
        ({"username": "nobody", "password": "x"}, 401),
        ({"username": "operator"}, 422),
    ],
)
def test_bad_logins_get_a_reason(client: TestClient, form: dict, status: int) -> None:
    r = client.post("/api/v1/auth/token", data=form)
    assert r.status_code == status
    assert r.json()["detail"]


@pytest.mark.parametrize("token", [None, "garbage", "a.b.c"])
def test_routes_need_a_valid_token(client: TestClient, token: str | None) -> None:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    for path in ("/api/v1/incidents", "/api/v1/drones", "/api/v1/missions", "/api/v1/airspace", "/api/v1/cameras"):
        r = client.get(path, headers=headers)
        assert r.status_code == 401, path
        assert r.json()["detail"]


def test_token_signed_with_another_key_is_refused(client: TestClient) -> None:
    from dronedispatch.api.security import issue_token

    forged = issue_token("another-secret-key-another-secret-key", "admin", "admin", 60)
    r = client.get("/api/v1/me", headers={"Authorization": f"Bearer {forged}"})
    assert r.status_code == 401


def test_tokens_issued_in_the_same_second_differ() -> None:
    """A refresh right after login must hand out a new token, never the one it replaces."""
    from datetime import UTC, datetime

    from dronedispatch.api.security import issue_token, read_claims

    now = datetime.now(UTC)
    first, second = (issue_token("k" * 40, "admin", "admin", 15, now=now, session_id="s") for _ in range(2))
    assert first != second
    assert read_claims("k" * 40, first).session_id == read_claims("k" * 40, second).session_id == "s"


@pytest.mark.parametrize(
    ("role", "allowed"), [("operator", True), ("admin", True), ("pilot", False), ("tester", False)]
)
def test_only_operators_create_incidents(client: TestClient, auth, role: str, allowed: bool) -> None:  # type: ignore[no-untyped-def]
    r = client.post("/api/v1/incidents", json={"category": "fire", "location": PARK}, headers=auth(role))
    assert r.status_code == (201 if allowed else 403)
    if not allowed:
        assert "may not" in r.json()["detail"]


def test_incident_lifecycle_and_merge(client: TestClient, auth) -> None:  # type: ignore[no-untyped-def]
    op = auth("operator")
    first = create(client, op)
    again = create(client, op, location={"lat": 37.3930, "lon": 126.6380}, description="flames", severity=4)
    assert again["id"] == first["id"], "a second report of the same fire merges into the first incident"
    assert again["report_count"] == 2 and again["severity"] == 4
    other = create(client, op, category="traffic_accident")
    assert other["id"] != first["id"]

    view = client.get(f"/api/v1/incidents/{first['id']}", headers=auth("pilot")).json()
    assert [r["description"] for r in view["reports"]] == ["smoke", "flames"]
    assert view["recommendation"], "every drone is listed with the reason it can or cannot go"
    assert all(not c["eligible"] and c["reason"]["code"] == "not_ready" for c in view["recommendation"])

    listed = client.get("/api/v1/incidents?status=open", headers=op).json()
    assert {i["id"] for i in listed} == {first["id"], other["id"]}

    closed = client.post(f"/api/v1/incidents/{first['id']}/close", json={"outcome": "false alarm"}, headers=op)
    assert closed.status_code == 200 and closed.json()["status"] == "closed"
    assert closed.json()["outcome"] == "false alarm"
    again = client.post(f"/api/v1/incidents/{first['id']}/close", json={}, headers=op)
    assert again.status_code == 409
    r = client.post(f"/api/v1/incidents/{first['id']}/dispatch", json={}, headers=op)
    assert r.status_code == 409 and "closed" in r.json()["detail"]


def test_incident_from_a_camera_takes_its_position(client: TestClient, auth) -> None:  # type: ignore[no-untyped-def]
    cams = client.get("/api/v1/cameras", headers=auth("operator")).json()
    cam = cams[0]
    inc = create(client, auth("operator"), location=None, camera_id=cam["id"])
    assert abs(inc["location"]["lat"] - cam["lat"]) < 0.01 and inc["camera_id"] == cam["id"]
    r = client.post(
        "/api/v1/incidents", json={"category": "fire", "camera_id": "no-such-cam"}, headers=auth("operator")
    )
    assert r.status_code == 422 and "no-such-cam" in r.json()["detail"]


@pytest.mark.parametrize(
    "body",
    [
        {"category": "alien_invasion", "location": PARK},
        {"category": "fire", "location": {"lat": 95, "lon": 126.6}},
        {"category": "fire", "severity": 9, "location": PARK},
        {"category": "fire"},
        {"location": PARK},
        {"category": "fire", "location": {"lat": "north", "lon": 1}},
    ],
)
def test_bad_incident_bodies_get_422_with_a_reason(client: TestClient, auth, body: dict) -> None:  # type: ignore[no-untyped-def]
    r = client.post("/api/v1/incidents", json=body, headers=auth("operator"))
    assert r.status_code == 422
    assert r.json()["detail"]


def test_malformed_json_is_refused(client: TestClient, auth) -> None:  # type: ignore[no-untyped-def]
    headers = {**auth("operator"), "Content-Type": "application/json"}
    r = client.post("/api/v1/incidents", content=b"{not json", headers=headers)
    assert r.status_code == 422 and r.json()["detail"]


def test_unknown_ids_are_404(client: TestClient, auth) -> None:  # type: ignore[no-untyped-def]
    h = auth("admin")
    assert client.get("/api/v1/incidents/424242", headers=h).status_code == 404
    assert client.get("/api/v1/missions/424242", headers=h).status_code == 404
    assert client.get("/api/v1/missions/424242/plan", headers=h).status_code == 404
    assert client.get("/api/v1/drones/nope", headers=h).status_code == 404
    r = client.post("/api/v1/missions/424242/commands", json={"command": "rtl"}, headers=h)
    assert r.status_code == 404 and "424242" in r.json()["detail"]
    assert client.post("/api/v1/incidents/424242/dispatch", json={}, headers=h).status_code == 404


def test_dispatch_with_no_ready_drone_says_why(client: TestClient, auth) -> None:  # type: ignore[no-untyped-def]
    inc = create(client, auth("operator"))
    r = client.post(f"/api/v1/incidents/{inc['id']}/dispatch", json={}, headers=auth("operator"))
    assert r.status_code == 409
    assert r.json()["code"] == "no_drone" and "dd-01" in r.json()["detail"]
    r = client.post(f"/api/v1/incidents/{inc['id']}/dispatch", json={"drone_id": "dd-99"}, headers=auth("operator"))
    assert r.status_code == 404
    r = client.post(f"/api/v1/incidents/{inc['id']}/dispatch", json={"template": "nope"}, headers=auth("operator"))
    assert r.status_code == 422 and "nope" in r.json()["detail"]
    r = client.post(f"/api/v1/incidents/{inc['id']}/dispatch", json={}, headers=auth("pilot"))
    assert r.status_code == 403


def test_mission_commands_need_a_pilot_and_a_known_command(client: TestClient, auth) -> None:  # type: ignore[no-untyped-def]
    r = client.post("/api/v1/missions/1/commands", json={"command": "rtl"}, headers=auth("operator"))
    assert r.status_code == 403
    r = client.post("/api/v1/missions/1/commands", json={"command": "self_destruct"}, headers=auth("pilot"))
    assert r.status_code == 422


def test_catalog_routes(client: TestClient, auth) -> None:  # type: ignore[no-untyped-def]
    h = auth("tester")
    drones = client.get("/api/v1/drones", headers=h).json()
    assert [d["id"] for d in drones][:2] == ["dd-01", "dd-02"]
    assert all(d["state"] == "offline" for d in drones)
    assert {"id", "sysid", "state", "battery", "position"} <= set(drones[0])
    zones = client.get("/api/v1/airspace", headers=h).json()
    assert zones["type"] == "FeatureCollection" and zones["features"]
    templates = client.get("/api/v1/mission-templates", headers=h).json()
    assert {"hover_roi", "overwatch"} <= {t["name"] for t in templates}
    districts = client.get("/api/v1/districts", headers=h).json()
    assert "KOSTAT" in districts["attribution"]
    assert len(client.get("/api/v1/docks", headers=h).json()) == 4


def test_webhook_needs_its_key_and_validates(client: TestClient, auth) -> None:  # type: ignore[no-untyped-def]
    body = {"category": "fire", "severity": 3, "location": PARK, "description": "119 call", "source_ref": "119-1"}
    assert client.post("/api/v1/ingest/webhook", json=body).status_code == 401
    assert client.post("/api/v1/ingest/webhook", json=body, headers={"X-API-Key": "wrong"}).status_code == 401
    r = client.post("/api/v1/ingest/webhook", json=body, headers={"X-API-Key": INGEST_KEY})
    assert r.status_code == 202, r.text
    inc = r.json()
    dup = client.post("/api/v1/ingest/webhook", json=body, headers={"X-API-Key": INGEST_KEY}).json()
    assert dup["id"] == inc["id"] and dup["report_count"] == 1, "the same report delivered twice counts once"
    bad = client.post("/api/v1/ingest/webhook", content=b"<xml/>", headers={"X-API-Key": INGEST_KEY})
    assert bad.status_code == 422 and bad.json()["detail"]
    # an ingest key is not a user token
    assert client.get("/api/v1/incidents", headers={"X-API-Key": INGEST_KEY}).status_code == 401


def test_events_websocket_snapshot_then_changes(client: TestClient, auth) -> None:  # type: ignore[no-untyped-def]
    token = auth("operator")["Authorization"].split()[1]
    with client.websocket_connect(f"/api/v1/events?token={token}") as ws:
        snap = ws.receive_json()
        assert snap["type"] == "snapshot" and len(snap["data"]["drones"]) == 8
        inc = create(client, auth("operator"))
        while True:
            msg = ws.receive_json()
            if msg["type"] == "incident":
                break
        assert msg["data"]["id"] == inc["id"]


def test_events_websocket_refuses_a_bad_token(client: TestClient) -> None:
    from starlette.websockets import WebSocketDisconnect

    with pytest.raises(WebSocketDisconnect) as exc, client.websocket_connect("/api/v1/events?token=bad") as ws:
        ws.receive_json()
    assert exc.value.code == 4401


def test_health_metrics_docs(client: TestClient) -> None:
    assert client.get("/healthz").json()["status"] == "ok"
    metrics = client.get("/metrics").text
    assert 'dronedispatch_drones{state="offline"} 8.0' in metrics
    assert client.get("/docs").status_code == 200
    assert "/api/v1/incidents/{incident_id}/dispatch" in client.get("/openapi.json").json()["paths"]
    assert client.get("/", follow_redirects=False).headers["location"] == "/ui/"
    assert "dronedispatch" in client.get("/ui/").text


def test_audit_log_records_who_did_what(client: TestClient, auth) -> None:  # type: ignore[no-untyped-def]
    inc = create(client, auth("operator"))
    client.post(f"/api/v1/incidents/{inc['id']}/close", json={"outcome": "duplicate"}, headers=auth("operator"))
    assert client.get("/api/v1/audit", headers=auth("operator")).status_code == 403
    log = client.get(f"/api/v1/audit?target_type=incident&target_id={inc['id']}", headers=auth("tester")).json()
    assert [(e["actor"], e["action"]) for e in log] == [("operator", "incident.close"), ("operator", "incident.create")]
    assert log[0]["detail"]["outcome"] == "duplicate"


def test_a_disabled_account_loses_its_token_at_once(client: TestClient, auth) -> None:  # type: ignore[no-untyped-def]
    headers = auth("pilot")
    assert client.get("/api/v1/me", headers=headers).status_code == 200
    store = client.app.state.runtime.store  # type: ignore[attr-defined]
    with store.session() as s:
        from sqlmodel import select

        from dronedispatch.store.models import User

        user = s.exec(select(User).where(User.username == "pilot")).one()
        user.disabled = True
        s.add(user)
        s.commit()
    r = client.get("/api/v1/me", headers=headers)
    assert r.status_code == 401 and "disabled" in r.json()["detail"]


def test_maintenance_flag_survives_a_restart(settings, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from dronedispatch.service import create_app
    from dronedispatch.store.users import hash_password
    from tests.api.conftest import PASSWORD

    def login(c: TestClient) -> dict[str, str]:
        r = c.post("/api/v1/auth/token", data={"username": "admin", "password": PASSWORD})
        return {"Authorization": f"Bearer {r.json()['access_token']}"}

    app = create_app(settings)
    with TestClient(app) as c:
        app.state.runtime.store.upsert_user("admin", hash_password(PASSWORD), "admin")
        r = c.put("/api/v1/admin/drones/dd-02/maintenance", json={"maintenance": True}, headers=login(c))
        assert r.status_code == 200 and r.json()["state"] == "maintenance"
    with TestClient(create_app(settings)) as c:
        drones = {d["id"]: d for d in c.get("/api/v1/drones", headers=login(c)).json()}
        assert drones["dd-02"]["state"] == "maintenance" and drones["dd-01"]["state"] == "offline"


def test_cap_alerts_over_http(client: TestClient, auth) -> None:  # type: ignore[no-untyped-def]
    from tests.ingest.capdata import cap_flood_sent_at

    xml = cap_flood_sent_at()
    headers = {"X-API-Key": INGEST_KEY, "Content-Type": "application/xml"}
    r = client.post("/api/v1/ingest/cap", content=xml, headers=headers)
    assert r.status_code == 202, r.text
    [incident] = r.json()
    assert incident["category"] == "flood" and incident["source"] == "cap"
    assert abs(incident["location"]["lat"] - 37.535) < 0.01
    assert client.post("/api/v1/ingest/cap", content=xml).status_code == 401
    bad = client.post("/api/v1/ingest/cap", content=b"<alert>not cap</alert>", headers=headers)
    assert bad.status_code == 422 and bad.json()["detail"]
