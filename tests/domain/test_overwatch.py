"""Relief planning for continuous overwatch: when the drone on scene must leave, when its relief
launches, the gap predicted when none can make it, the coverage timeline and the fleet minimum."""

from __future__ import annotations

import math

import pytest

from dronedispatch.domain.overwatch import (
    Interval,
    OnScene,
    ReliefOption,
    drain_from_samples,
    min_drones,
    must_leave_at,
    plan_relief,
    timeline,
)
from dronedispatch.domain.planning import DESCENT_SPEED_M_S


def on_scene(**kw: float | None) -> OnScene:
    base: dict = dict(drone_id="dd-01", battery_pct=60.0, drain_pct_per_s=0.1, home_m=1500.0, cruise_speed=15.0,
                      alt_m=60.0, reserve_pct=20.0)  # fmt: skip
    base.update(kw)
    return OnScene(**base)


def test_home_time_is_transit_plus_descent() -> None:
    assert on_scene().home_s == pytest.approx(1500 / 15 + 60 / DESCENT_SPEED_M_S)  # 100 + 40


def test_must_leave_keeps_the_reserve_for_the_way_home() -> None:
    d = on_scene()
    # 60 % - 20 % reserve - 140 s home × 0.1 %/s = 26 % spare, at 0.1 %/s: 260 s
    leave = must_leave_at(1000.0, d)
    assert leave == pytest.approx(1260.0)
    # at that moment it has exactly the reserve plus the way home
    left = d.battery_pct - (leave - 1000.0) * d.drain_pct_per_s
    assert left - d.home_s * d.drain_pct_per_s == pytest.approx(d.reserve_pct)


def test_must_leave_now_when_already_short_and_earlier_when_the_mission_ends_first() -> None:
    assert must_leave_at(5.0, on_scene(battery_pct=25.0)) == 5.0
    assert must_leave_at(0.0, on_scene(scene_ends_at=100.0)) == 100.0
    assert must_leave_at(0.0, on_scene(scene_ends_at=1000.0)) == pytest.approx(260.0)
    with pytest.raises(ValueError):
        must_leave_at(0.0, on_scene(drain_pct_per_s=0.0))


def test_relief_launches_so_it_arrives_the_overlap_before_the_first_must_leave() -> None:
    plan = plan_relief(0.0, on_scene(), [ReliefOption("dd-02", eta_s=90.0), ReliefOption("dd-03", eta_s=60.0)])
    assert plan.must_leave_at == pytest.approx(260.0)
    assert plan.relief is not None and plan.relief.drone_id == "dd-02"  # the best-ranked that makes it
    assert plan.launch_at == pytest.approx(260.0 - 30.0 - 90.0)
    assert plan.arrive_at == pytest.approx(230.0)
    assert plan.overlap_s == 30.0 and plan.gap_s == 0.0 and not plan.short_overlap
    assert not plan.launch_now and not plan.gap_predicted
    assert plan_relief(140.0, on_scene(battery_pct=46.0), [ReliefOption("dd-02", 90.0)]).launch_now


def test_overlap_is_configurable() -> None:
    plan = plan_relief(0.0, on_scene(), [ReliefOption("dd-02", 90.0)], overlap_s=60.0)
    assert plan.launch_at == pytest.approx(110.0) and plan.overlap_s == 60.0


def test_eta_margin_launches_earlier() -> None:
    plan = plan_relief(0.0, on_scene(), [ReliefOption("dd-02", 100.0)], eta_margin=0.5)
    assert plan.launch_at == pytest.approx(260.0 - 30.0 - 150.0) and plan.arrive_at == pytest.approx(230.0)
    late = plan_relief(0.0, on_scene(), [ReliefOption("dd-02", 200.0)], eta_margin=0.5)
    assert late.launch_now and late.gap_s == pytest.approx(40.0)


def test_a_slow_first_choice_is_passed_over_for_one_that_makes_it() -> None:
    plan = plan_relief(0.0, on_scene(), [ReliefOption("far", 400.0), ReliefOption("near", 100.0)])
    assert plan.relief is not None and plan.relief.drone_id == "near" and plan.gap_s == 0.0


def test_a_charging_drone_counts_from_when_it_is_ready() -> None:
    plan = plan_relief(0.0, on_scene(), [ReliefOption("charging", 60.0, ready_at=200.0), ReliefOption("b", 150.0)])
    assert plan.relief is not None and plan.relief.drone_id == "b"  # 200 + 60 > 230
    plan = plan_relief(0.0, on_scene(), [ReliefOption("charging", 60.0, ready_at=100.0)])
    assert plan.relief is not None and plan.launch_at == pytest.approx(170.0)


def test_gap_predicted_when_no_relief_can_arrive_in_time() -> None:
    plan = plan_relief(0.0, on_scene(), [ReliefOption("a", 400.0), ReliefOption("b", 300.0, ready_at=50.0)])
    # a arrives at 400, b at 350: b, launched as soon as it is ready; the scene is dark 350 - 260 s
    assert plan.relief is not None and plan.relief.drone_id == "b"
    assert plan.launch_at == 50.0 and plan.arrive_at == 350.0
    assert plan.gap_s == pytest.approx(90.0) and plan.gap_predicted and plan.overlap_s == pytest.approx(-90.0)
    assert not plan.launch_now


def test_short_overlap_without_a_gap() -> None:
    plan = plan_relief(0.0, on_scene(), [ReliefOption("a", 250.0)])
    assert plan.launch_now and plan.gap_s == 0.0 and plan.short_overlap and plan.overlap_s == pytest.approx(10.0)


def test_no_drone_at_all_is_an_endless_gap() -> None:
    plan = plan_relief(0.0, on_scene(), [])
    assert plan.relief is None and plan.launch_at is None and math.isinf(plan.gap_s)
    assert plan.as_dict()["relief_drone_id"] is None


def test_measured_drain_is_the_slope_of_the_battery() -> None:
    samples = [(float(t), 90.0 - 0.05 * t + (0.3 if t % 2 else -0.3)) for t in range(0, 120, 2)]
    assert drain_from_samples(samples) == pytest.approx(0.05, rel=0.05)
    assert drain_from_samples(samples[:3]) is None  # too short a span
    assert drain_from_samples([(0.0, 50.0), (30.0, 51.0)]) is None  # charging, not draining


@pytest.mark.parametrize(
    ("endurance_s", "transit_s", "expected"),
    [(1200.0, 0.0, 1.0), (1200.0, 300.0, 2.0), (1800.0, 300.0, 1.5), (900.0, 150.0, 1.5), (600.0, 300.0, math.inf)],
)
def test_theoretical_minimum_drones(endurance_s: float, transit_s: float, expected: float) -> None:
    assert min_drones(endurance_s, transit_s) == pytest.approx(expected)


def test_min_drones_matches_a_rotation_that_never_leaves_the_scene_dark() -> None:
    """Simulate the rotation the planner asks for: each sortie covers endurance - 2 × transit; the
    drones airborne on average over an hour equal the theoretical minimum (plus the overlaps)."""
    endurance, transit, overlap, hour = 1200.0, 200.0, 30.0, 3600.0
    covered_per_sortie = endurance - 2 * transit - overlap
    sorties = math.ceil(hour / covered_per_sortie)
    flown = sorties * endurance
    assert flown / hour >= min_drones(endurance, transit)
    assert flown / hour == pytest.approx(min_drones(endurance, transit), rel=0.25)


def test_timeline_overlaps_and_gaps() -> None:
    tl = timeline(
        [
            Interval("dd-01", 100.0, 500.0, 1),
            Interval("dd-02", 460.0, 900.0, 2),  # 40 s overlap
            Interval("dd-03", 950.0, None, 3),  # 50 s gap, still there
        ],
        now=1200.0,
    )
    assert [(h.from_drone, h.to_drone, h.overlap_s) for h in tl.handovers] == [
        ("dd-01", "dd-02", 40.0),
        ("dd-02", "dd-03", -50.0),
    ]
    assert tl.handovers[1].gap_s == 50.0 and tl.handovers[0].gap_s == 0.0
    assert tl.handovers[0].at == 500.0 and (tl.handovers[0].from_mission, tl.handovers[0].to_mission) == (1, 2)
    assert tl.gaps == ((900.0, 950.0),)
    assert tl.covered_s == pytest.approx(1100.0 - 50.0)
    assert tl.span_s == pytest.approx(1100.0)
    d = tl.as_dict()
    assert d["gaps"] == [{"start": 900.0, "end": 950.0, "seconds": 50.0}]
    assert d["intervals"][2]["end"] is None


def test_timeline_empty_and_nested() -> None:
    assert timeline([], now=10.0).covered_s == 0.0
    tl = timeline([Interval("a", 0.0, 100.0), Interval("b", 10.0, 50.0)], now=200.0)
    assert tl.gaps == () and tl.covered_s == 100.0
