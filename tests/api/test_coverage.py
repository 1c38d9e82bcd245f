"""Coverage requests through the API: with the incident, changed later, and the coverage view."""

from __future__ import annotations

from collections.abc import Callable

from fastapi.testclient import TestClient


def test_coverage_requested_with_the_incident_changed_and_shown(
    client: TestClient, auth: Callable[[str], dict[str, str]]
) -> None:
    op = auth("operator")
    body = {"category": "fire", "location": {"lat": 37.3885, "lon": 126.658},
            "coverage": {"mode": "duration", "duration_s": 3600}}  # fmt: skip
    r = client.post("/api/v1/incidents", json=body, headers=op)
    assert r.status_code == 201, r.text
    inc = r.json()
    assert inc["coverage_mode"] == "duration" and inc["coverage_until"] is None  # counted from the first arrival
    assert inc["on_scene_drone_id"] is None

    r = client.get(f"/api/v1/incidents/{inc['id']}/coverage", headers=auth("pilot"))
    assert r.status_code == 200, r.text
    cov = r.json()
    assert cov["mode"] == "duration" and cov["duration_s"] == 3600 and cov["active"] is True
    assert cov["intervals"] == [] and cov["handovers"] == [] and cov["gaps"] == [] and cov["overlap_s"] == 30

    bad = client.put(f"/api/v1/incidents/{inc['id']}/coverage", json={"mode": "duration"}, headers=op)
    assert bad.status_code == 422, bad.text
    r = client.put(f"/api/v1/incidents/{inc['id']}/coverage", json={"mode": "until_closed"}, headers=op)
    assert r.status_code == 200 and r.json()["coverage_mode"] == "until_closed"
    assert client.put(f"/api/v1/incidents/{inc['id']}/coverage", json={"mode": "until_closed"},
                      headers=auth("pilot")).status_code == 403  # fmt: skip
    audit = client.get("/api/v1/audit", params={"target_type": "incident", "target_id": str(inc["id"])},
                       headers=auth("admin")).json()  # fmt: skip
    assert [a["detail"]["mode"] for a in audit if a["action"] == "incident.coverage"] == ["until_closed", "duration"]
