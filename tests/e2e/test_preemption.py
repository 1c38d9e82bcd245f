"""Several incidents, one drone: the plan proposes taking the drone off the less urgent incident,
and only an operator's confirmation does it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.conftest import System, start_system, wait_for

pytestmark = pytest.mark.e2e


@pytest.fixture
def one_drone(tmp_path: Path) -> Iterator[System]:
    yield from start_system(tmp_path, vehicles=1)


def test_preemption_is_proposed_and_needs_a_person(one_drone: System) -> None:
    system = one_drone
    op = system.client("operator")
    wait_for(lambda: op.get("/api/v1/drones").json()[0]["state"] == "ready", 60, "dd-01 ready", system)

    minor = op.post("/api/v1/incidents", json={"category": "facility", "severity": 1,
                                               "location": {"lat": 37.3935, "lon": 126.6420}}).json()  # fmt: skip
    first = op.post(f"/api/v1/incidents/{minor['id']}/dispatch", json={}).json()
    wait_for(lambda: op.get(f"/api/v1/missions/{first['id']}").json()["state"] in ("enroute", "on_scene"), 90,
             "dd-01 flying to the minor incident", system)  # fmt: skip

    fire = op.post("/api/v1/incidents", json={"category": "fire", "severity": 4,
                                              "location": {"lat": 37.3926, "lon": 126.6378}}).json()  # fmt: skip
    plan = op.get("/api/v1/assignments").json()
    assert [u["incident_id"] for u in plan["unassigned"]] == [fire["id"]]
    proposal = plan["preemptions"][0]
    assert proposal == {**proposal, "drone_id": "dd-01", "from_incident": minor["id"], "to_incident": fire["id"],
                        "needs_confirmation": True}  # fmt: skip

    # without confirmation nothing moves: the drone is busy
    r = op.post(f"/api/v1/incidents/{fire['id']}/dispatch", json={})
    assert r.status_code == 409 and "in_mission" in r.json()["detail"]
    assert op.get(f"/api/v1/missions/{first['id']}").json()["state"] in ("enroute", "on_scene")

    r = op.post(f"/api/v1/incidents/{fire['id']}/dispatch", json={"drone_id": "dd-01", "preempt": True})
    assert r.status_code == 201, r.text
    second = r.json()
    old = op.get(f"/api/v1/missions/{first['id']}").json()
    assert old["state"] == "aborted" and f"pre-empted for incident {fire['id']}" in old["reason"]
    assert "operator" in old["reason"]
    wait_for(lambda: op.get(f"/api/v1/missions/{second['id']}").json()["state"] in ("enroute", "on_scene"), 60,
             "dd-01 flying to the fire", system)  # fmt: skip
    # the first incident waits again for a drone, it is not lost
    assert op.get(f"/api/v1/incidents/{minor['id']}").json()["status"] == "open"
    assert [u["incident_id"] for u in op.get("/api/v1/assignments").json()["unassigned"]] == [minor["id"]]
