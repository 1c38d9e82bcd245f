from datetime import UTC, datetime, timedelta
from itertools import permutations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dronedispatch.domain.assignment import UNSERVED_S, IncidentRequest, plan, priority
from dronedispatch.domain.fleet import DroneState
from dronedispatch.domain.geo import destination
from dronedispatch.domain.incidents import Category, Severity
from dronedispatch.domain.planning import recommend

from .conftest import CENTRAL_PARK, GTOWER, SONGDO_SOUTH, drone

NOW = datetime(2026, 11, 25, 3, 0, tzinfo=UTC)


def req(iid, at, category=Category.TRAFFIC_ACCIDENT, severity=Severity.MODERATE, waited_s=0.0, scene=300.0):
    return IncidentRequest(iid, at[0], at[1], Category(category), Severity(severity),
                           NOW - timedelta(seconds=waited_s), scene)


def test_priority_orders_by_severity_and_category_and_ages() -> None:
    assert priority("fire", Severity.EXTREME) > priority("fire", Severity.SEVERE) > priority("other", Severity.SEVERE)
    assert priority("fire", Severity.MINOR, waited_s=600) > priority("fire", Severity.MINOR)


def test_each_incident_gets_its_nearest_drone_when_there_are_enough() -> None:
    near_park = drone("a", GTOWER, sysid=1)
    near_south = drone("b", SONGDO_SOUTH, sysid=2)
    p = plan(NOW, [near_park, near_south], [req(1, CENTRAL_PARK), req(2, destination(*SONGDO_SOUTH, 0, 200))])
    assert p.drone_for(1) == "a" and p.drone_for(2) == "b"
    assert not p.unassigned and not p.preemptions
    assert p.candidates[1][0].drone_id == "a"


def test_scarce_drone_goes_to_the_most_urgent_incident() -> None:
    only = drone("a", GTOWER)
    minor_close = req("minor", CENTRAL_PARK, Category.OTHER, Severity.MINOR)
    fire_far = req("fire", SONGDO_SOUTH, Category.FIRE, Severity.EXTREME)
    p = plan(NOW, [only], [minor_close, fire_far])
    assert p.drone_for("fire") == "a"
    assert [u.incident_id for u in p.unassigned] == ["minor"]
    assert "more urgent" in p.unassigned[0].reason


def test_minimises_total_weighted_response_time_not_greedy() -> None:
    # taking incidents one by one, "u" (listed first, and a hair nearer x) would take x and leave "o",
    # right beside x, to the far drone y
    x = drone("x", (37.3900, 126.6400), sysid=1)
    y = drone("y", (37.3900, 126.6600), sysid=2)
    urgent = req("u", (37.3900, 126.6499), Category.FIRE, Severity.SEVERE)
    other = req("o", (37.3900, 126.6380), Category.FIRE, Severity.SEVERE)
    p = plan(NOW, [x, y], [urgent, other])
    assert p.drone_for("o") == "x" and p.drone_for("u") == "y"


def brute_force(drones, incidents):
    prios = [priority(i.category, i.severity, (NOW - i.opened_at).total_seconds()) for i in incidents]
    eta = {}
    for r, i in enumerate(incidents):
        for c in recommend(i.lat, i.lon, i.category, drones, time_on_scene_s=i.time_on_scene_s):
            if c.eligible:
                eta[(r, c.drone_id)] = c.eta_s
    ids = [d.drone_id for d in drones if d.state == DroneState.READY] + [None] * len(incidents)
    best = float("inf")
    for perm in permutations(ids, len(incidents)):
        total = 0.0
        for r, did in enumerate(perm):
            if did is None:
                total += prios[r] * UNSERVED_S
            elif (r, did) in eta:
                total += prios[r] * eta[(r, did)]
            else:
                total = float("inf")
                break
        best = min(best, total)
    return best


point = st.tuples(st.floats(37.37, 37.41), st.floats(126.62, 126.68))


@settings(max_examples=40, deadline=None)
@given(st.lists(point, min_size=1, max_size=3), st.lists(st.tuples(point, st.integers(1, 4), st.floats(20, 100)),
                                                         min_size=1, max_size=3))
def test_matches_brute_force_optimum(drone_pts, incident_specs) -> None:
    drones = [drone(f"d{k}", p, battery=b, sysid=k + 1) for k, (p, (_, _, b)) in
              enumerate(zip(drone_pts, incident_specs * 3, strict=False))]
    incidents = [req(k, p, Category.FIRE, sev) for k, (p, sev, _) in enumerate(incident_specs)]
    p = plan(NOW, drones, incidents)
    assert p.cost == pytest.approx(brute_force(drones, incidents), rel=1e-9)
    assert len({a.drone_id for a in p.assignments}) == len(p.assignments), "a drone serves one incident"
    assert len(p.assignments) + len(p.unassigned) == len(incidents)


def test_busy_drone_is_only_proposed_for_preemption() -> None:
    flying = drone("fly", CENTRAL_PARK, state=DroneState.IN_MISSION, alt=60.0, dock=GTOWER)
    fire = req("fire", destination(*CENTRAL_PARK, 90, 500), Category.FIRE, Severity.EXTREME)
    p = plan(NOW, [flying], [fire], busy={"fly": ("litter", priority("other", Severity.MINOR))})
    assert not p.assignments, "a running mission is never taken without a person"
    assert [u.incident_id for u in p.unassigned] == ["fire"]
    (pre,) = p.preemptions
    assert pre.drone_id == "fly" and pre.from_incident == "litter" and pre.to_incident == "fire"
    assert "needs confirmation" in pre.reason
    # not worth it for an incident of similar priority
    p = plan(NOW, [flying], [fire], busy={"fly": ("other-fire", priority("fire", Severity.EXTREME))})
    assert not p.preemptions


def test_no_drones_or_no_incidents() -> None:
    p = plan(NOW, [], [req(1, CENTRAL_PARK)])
    assert p.unassigned[0].reason == "no drones in the fleet"
    p = plan(NOW, [drone()], [])
    assert not p.assignments and not p.unassigned and p.cost == 0
    p = plan(NOW, [drone(battery=10)], [req(1, CENTRAL_PARK)])
    assert "not enough battery" in p.unassigned[0].reason
