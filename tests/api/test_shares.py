"""Share links over the API: created by operators and pilots, listed without tokens, revoked,
expired; the link's page and token-scoped calls; the token opens nothing else."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from fastapi.testclient import TestClient
from sqlmodel import Session

from dronedispatch.store.models import Share

PARK = {"lat": 37.3926, "lon": 126.6378}
Auth = Callable[[str], dict[str, str]]


def _incident(client: TestClient, auth: Auth) -> int:
    r = client.post("/api/v1/incidents", headers=auth("operator"),
                    json={"category": "fire", "severity": 3, "location": PARK, "description": "smoke"})  # fmt: skip
    assert r.status_code == 201, r.text
    return int(r.json()["id"])


def _token(url: str) -> str:
    assert url.startswith("/share/")
    return url.removeprefix("/share/")


def test_create_list_revoke_and_audit(client: TestClient, auth: Auth) -> None:
    incident_id = _incident(client, auth)
    before = datetime.now(UTC)
    r = client.post(f"/api/v1/incidents/{incident_id}/share", headers=auth("operator"))
    after = datetime.now(UTC)
    assert r.status_code == 201, r.text
    default = r.json()
    assert set(default) == {"id", "url", "expires_at"}
    assert before + timedelta(hours=2) <= datetime.fromisoformat(default["expires_at"]) <= after + timedelta(hours=2)
    token = _token(default["url"])
    assert len(token) >= 43

    before = datetime.now(UTC)
    r = client.post(f"/api/v1/incidents/{incident_id}/share", headers=auth("pilot"), json={"hours": 24})
    after = datetime.now(UTC)
    assert r.status_code == 201, r.text
    longest = r.json()
    assert before + timedelta(hours=24) <= datetime.fromisoformat(longest["expires_at"]) <= after + timedelta(hours=24)

    for hours in (24.5, 0, -1):
        r = client.post(f"/api/v1/incidents/{incident_id}/share", headers=auth("operator"), json={"hours": hours})
        assert r.status_code == 422, (hours, r.text)
    assert client.post(f"/api/v1/incidents/{incident_id}/share", headers=auth("tester")).status_code == 403
    assert client.post(f"/api/v1/incidents/{incident_id}/share").status_code == 401
    assert client.post("/api/v1/incidents/999999/share", headers=auth("operator")).status_code == 404

    # listed without tokens or their hashes
    r = client.get(f"/api/v1/incidents/{incident_id}/shares", headers=auth("tester"))
    assert r.status_code == 200
    listed = r.json()
    assert {s["id"] for s in listed} == {default["id"], longest["id"]}
    assert token not in r.text and hashlib.sha256(token.encode()).hexdigest() not in r.text
    assert all(s["revoked_at"] is None for s in listed)

    # the link works without an account
    page = client.get(default["url"])
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert page.headers["referrer-policy"] == "no-referrer"
    assert "<script>" not in page.text and 'src="/ui/share.js"' in page.text
    state = client.get(f"/share-api/{token}")
    assert state.status_code == 200, state.text
    body = state.json()
    assert body["incident"]["category"] == "fire"
    assert body["incident"]["location"] == PARK
    assert body["mission"] is None and body["drone"] is None
    assert "description" not in body["incident"] and "smoke" not in state.text
    assert client.get(f"/share-api/{token}/districts").json()["type"] == "FeatureCollection"
    # no flight: no video, said as a refusal, not an error dump
    r = client.post(f"/share-api/{token}/video/offer", json={"sdp": "v=0", "type": "offer"})
    assert r.status_code == 409 and r.json()["code"] == "no_flight"

    # tester may not revoke; pilot may; revoking twice keeps the first revocation
    assert client.delete(f"/api/v1/shares/{default['id']}", headers=auth("tester")).status_code == 403
    r = client.delete(f"/api/v1/shares/{default['id']}", headers=auth("pilot"))
    assert r.status_code == 200 and r.json()["revoked_by"] == "pilot"
    r = client.delete(f"/api/v1/shares/{default['id']}", headers=auth("admin"))
    assert r.status_code == 200 and r.json()["revoked_by"] == "pilot"
    assert client.delete("/api/v1/shares/nosuchshare", headers=auth("admin")).status_code == 404

    page = client.get(default["url"])
    assert page.status_code == 410 and "revoked" in page.text
    assert page.headers["content-type"].startswith("text/html")
    for path in (f"/share-api/{token}", f"/share-api/{token}/districts"):
        r = client.get(path)
        assert r.status_code == 410 and r.json()["code"] == "share_gone", path
    r = client.post(f"/share-api/{token}/video/offer", json={"sdp": "v=0", "type": "offer"})
    assert r.status_code == 410

    # unknown token: a 404 page
    for path in ("/share/" + "x" * 43, "/share/short", "/share/not~a.token"):
        r = client.get(path)
        assert r.status_code == 404 and "does not exist" in r.text and 'data-share="unknown"' in r.text, path
    assert client.get("/share-api/" + "x" * 43).status_code == 404

    audit = client.get("/api/v1/audit", headers=auth("admin"), params={"target_type": "share"})
    assert audit.status_code == 200, audit.text
    actions = [(a["action"], a["actor"], a["target_id"]) for a in audit.json()]
    assert ("share.create", "operator", default["id"]) in actions
    assert ("share.create", "pilot", longest["id"]) in actions
    assert ("share.revoke", "pilot", default["id"]) in actions
    assert token not in audit.text


def test_expired_link_is_refused(client: TestClient, auth: Auth) -> None:
    incident_id = _incident(client, auth)
    created = client.post(f"/api/v1/incidents/{incident_id}/share", headers=auth("operator"), json={"hours": 1}).json()
    token = _token(created["url"])
    assert client.get(f"/share-api/{token}").status_code == 200
    engine = client.app.state.runtime.engine  # type: ignore[attr-defined]
    with Session(engine) as s:
        share = s.get(Share, created["id"])
        assert share is not None
        share.expires_at = datetime.now(UTC) - timedelta(seconds=1)
        s.add(share)
        s.commit()
    page = client.get(created["url"])
    assert page.status_code == 410 and "expired" in page.text
    r = client.get(f"/share-api/{token}")
    assert r.status_code == 410 and "expired" in r.json()["detail"]


def test_token_opens_nothing_else(client: TestClient, auth: Auth) -> None:
    incident_id = _incident(client, auth)
    token = _token(client.post(f"/api/v1/incidents/{incident_id}/share", headers=auth("pilot")).json()["url"])
    bearer = {"Authorization": f"Bearer {token}"}
    for method, path in (
        ("GET", f"/api/v1/incidents/{incident_id}"),
        ("GET", "/api/v1/incidents"),
        ("GET", "/api/v1/drones"),
        ("GET", "/api/v1/districts"),
        ("GET", f"/api/v1/incidents/{incident_id}/shares"),
        ("POST", f"/api/v1/incidents/{incident_id}/share"),
        ("POST", "/api/v1/drones/dd-01/video/offer"),
        ("GET", "/api/v1/drones/dd-01/snapshot.jpg"),
    ):
        for kwargs in ({"headers": bearer}, {"params": {"token": token}}):
            r = client.request(method, path, **kwargs)  # type: ignore[arg-type]
            assert r.status_code == 401, (method, path, kwargs, r.status_code, r.text)
