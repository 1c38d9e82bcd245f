"""The pilot's reposition command: request validation here; the flight itself in tests/browser."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

PARK = {"lat": 37.3926, "lon": 126.6378}


@pytest.mark.parametrize(
    "body",
    [
        {"command": "reposition"},
        {"command": "reposition", "lat": 37.39},
        {"command": "reposition", "lat": 91.0, "lon": 126.6},
        {"command": "reposition", "lat": 37.39, "lon": "east"},
    ],
)
def test_reposition_needs_a_valid_point(client: TestClient, auth, body: dict) -> None:  # type: ignore[no-untyped-def]
    r = client.post("/api/v1/missions/1/commands", json=body, headers=auth("pilot"))
    assert r.status_code == 422 and r.json()["detail"]


def test_reposition_of_an_unknown_mission(client: TestClient, auth) -> None:  # type: ignore[no-untyped-def]
    r = client.post("/api/v1/missions/999/commands", json={"command": "reposition", **PARK}, headers=auth("pilot"))
    assert r.status_code == 404


def test_only_pilots_reposition(client: TestClient, auth) -> None:  # type: ignore[no-untyped-def]
    r = client.post("/api/v1/missions/1/commands", json={"command": "reposition", **PARK}, headers=auth("operator"))
    assert r.status_code == 403
