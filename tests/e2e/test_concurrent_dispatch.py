"""Fifty dispatch requests at once: the database, not the process, keeps one drone on one mission.

Two operators pressing Dispatch together (or a script retrying) must never send two drones to one
incident or give one drone two missions. The service checks first, but only the store's partial
unique indexes close the gap between that check and the write; a request that loses the race gets
a clear 409 with the reason, and exactly one mission exists afterwards.
"""

from __future__ import annotations

import asyncio
from collections import Counter

import httpx
import pytest

from dronedispatch.domain.geo import destination
from tests.e2e.conftest import System, on_both_databases, wait_for

pytestmark = pytest.mark.e2e

REQUESTS = 50
#: The ``system`` fixture's fleet size.
VEHICLES = 2
#: G-Tower dock: incidents are spread on a ring round it, each far enough from the others not to merge.
GTOWER = (37.3918, 126.6393)


async def _fire(system: System, token: str, calls: list[tuple[str, dict]]) -> list[httpx.Response]:
    """Send every call at once over separate connections; answers in the order of ``calls``."""
    limits = httpx.Limits(max_connections=len(calls), max_keepalive_connections=0)
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=system.url, headers=headers, timeout=120, limits=limits) as client:
        return list(await asyncio.gather(*(client.post(path, json=body) for path, body in calls)))


def _ready(system: System, client: httpx.Client, n: int) -> None:
    wait_for(
        lambda: sum(d["state"] == "ready" for d in client.get("/api/v1/drones").json()) == n,
        90,
        f"{n} drones ready",
        system,
    )


def _token(client: httpx.Client) -> str:
    return str(client.headers["Authorization"]).removeprefix("Bearer ")


def _assert_refusals_are_clear(answers: list[httpx.Response], winner: int) -> None:
    for i, r in enumerate(answers):
        if i == winner:
            continue
        assert r.status_code == 409, f"request {i}: {r.status_code} {r.text}"
        body = r.json()
        assert body["code"] in {"already_dispatched", "drone_busy", "drone_not_eligible", "no_drone"}, body
        assert body["detail"], body


def _fifty_incidents_racing_for_one_named_drone_give_it_one_mission(system: System, operator: httpx.Client) -> None:
    incident_ids = []
    for k in range(REQUESTS):
        # a ring of radius 2.5 km: neighbours ~300 m apart, different categories so none merge
        lat, lon = destination(*GTOWER, k * 360 / REQUESTS, 2500)
        category = ("fire", "crime", "traffic_accident", "missing_person", "flood")[k % 5]
        r = operator.post(
            "/api/v1/incidents",
            json={"category": category, "severity": 2, "location": {"lat": lat, "lon": lon}},
        )
        assert r.status_code == 201, r.text
        incident_ids.append(r.json()["id"])
    assert len(set(incident_ids)) == REQUESTS, "every report became its own incident"

    calls = [(f"/api/v1/incidents/{i}/dispatch", {"drone_id": "dd-01"}) for i in incident_ids]
    answers = asyncio.run(_fire(system, _token(operator), calls))

    codes = Counter(r.status_code for r in answers)
    assert codes[201] == 1, f"{codes}: {[r.text for r in answers if r.status_code != 409][:3]}"
    _assert_refusals_are_clear(answers, next(i for i, r in enumerate(answers) if r.status_code == 201))
    flown = [m for m in operator.get("/api/v1/missions", params={"limit": 1000}).json() if m["drone_id"] == "dd-01"]
    assert len(flown) == 1, flown
    # every incident that lost the race is still waiting for a drone, none left half-dispatched
    statuses = Counter(operator.get(f"/api/v1/incidents/{i}").json()["status"] for i in incident_ids)
    assert statuses == {"dispatched": 1, "open": REQUESTS - 1}


def _fifty_dispatches_of_one_incident_make_one_mission(system: System, operator: httpx.Client) -> None:
    r = operator.post(
        "/api/v1/incidents",
        json={"category": "fire", "severity": 3, "location": {"lat": 37.3930, "lon": 126.6400}},
    )
    assert r.status_code == 201, r.text
    incident_id = r.json()["id"]

    answers = asyncio.run(
        _fire(system, _token(operator), [(f"/api/v1/incidents/{incident_id}/dispatch", {})] * REQUESTS)
    )

    codes = Counter(r.status_code for r in answers)
    assert codes[201] == 1, f"{codes}: {[r.text for r in answers if r.status_code != 409][:3]}"
    _assert_refusals_are_clear(answers, next(i for i, r in enumerate(answers) if r.status_code == 201))
    missions = operator.get("/api/v1/missions", params={"incident_id": incident_id}).json()
    assert len(missions) == 1, missions
    incident = operator.get(f"/api/v1/incidents/{incident_id}").json()
    assert incident["status"] == "dispatched"


@on_both_databases
def test_fifty_concurrent_dispatches_give_one_drone_one_mission_and_one_incident_one_drone(system: System) -> None:
    """Both races on one system (starting one per race cost more than the races): first fifty incidents race for
    dd-01, then fifty dispatches of one new incident race for the drone still ready (dd-02)."""
    operator = system.client("operator")
    _ready(system, operator, VEHICLES)
    _fifty_incidents_racing_for_one_named_drone_give_it_one_mission(system, operator)
    _fifty_dispatches_of_one_incident_make_one_mission(system, operator)
