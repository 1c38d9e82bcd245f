"""The simulated vehicle flies a waypoint with an altitude change as PX4 does: one straight climbing line."""

from __future__ import annotations

import itertools

from dronedispatch.domain import mission_items as mi
from dronedispatch.sim.geodesy import move_ne, offset_ne
from dronedispatch.sim.model import VehicleModel

HOME = (37.3918, 126.6393, 5.0)
DT = 0.05


def _fly_leg(
    north_m: float, takeoff_alt: float, wp_alt: float
) -> tuple[VehicleModel, list[tuple[float, float, float]]]:
    """Take off to ``takeoff_alt``, fly a waypoint ``north_m`` away at ``wp_alt``; (t, along, alt) from
    the take-off item reached to the waypoint reached."""
    m = VehicleModel(1, HOME, cruise_speed=10.0, climb_speed=3.0)
    wp = move_ne(HOME[0], HOME[1], north_m, 0.0)
    m.store.replace(
        0, [mi.takeoff(HOME[0], HOME[1], takeoff_alt), mi.waypoint(*wp, wp_alt), mi.loiter_unlimited(*wp, wp_alt)]
    )
    for _ in range(int(5 / DT)):
        m.step(DT)
    assert m.start_mission()[0]
    samples: list[tuple[float, float, float]] = []
    for _ in range(int(300 / DT)):
        m.step(DT)
        if 0 in m.reached:
            samples.append((m.t, offset_ne(HOME[0], HOME[1], m.lat, m.lon)[0], m.alt_rel))
        if 1 in m.reached:
            break
    assert 1 in m.reached, "the waypoint was reached"
    return m, samples


def test_a_higher_waypoint_is_flown_climbing_and_moving_at_once() -> None:
    _m, s = _fly_leg(600.0, 25.0, 60.0)
    _t0, n0, a0 = s[0]
    assert 25.0 - 0.8 <= a0 < 26.5  # take-off reached at the departure height, within NAV_MC_ALT_RAD
    # mid-leg the vehicle is both higher than it left and well on its way, at full cruise speed
    mid = next(x for x in s if x[1] > 250.0)
    assert 30.0 < mid[2] < 58.0
    speeds = [(b[1] - a[1]) / (b[0] - a[0]) for a, b in itertools.pairwise(s) if 100.0 < a[1] < 500.0]
    assert min(speeds) > 9.5  # horizontal speed unchanged by the climb
    # straight 3-D line: the altitude grows in proportion to the distance flown (PX4's line tracking)
    for _, n, alt in s:
        if 100.0 < n < 550.0:
            assert abs(alt - (a0 + (60.0 - a0) * (n - n0) / (600.0 - n0))) < 2.0, (n, alt)
    assert abs(s[-1][2] - 60.0) < 1.0
    # the climb rate never exceeds the airframe's (3 m/s)
    rates = [(b[2] - a[2]) / (b[0] - a[0]) for a, b in itertools.pairwise(s)]
    assert max(rates) <= 3.0 + 1e-6


def test_a_steep_leg_is_limited_by_the_climb_rate_not_flown_faster() -> None:
    # 60 m of climb over 100 m: at 3 m/s the climb takes 20 s, so the 100 m take ~20 s, not 10 s
    _, s = _fly_leg(100.0, 0.0 + 2.0, 62.0)
    duration = s[-1][0] - s[0][0]
    assert 19.0 < duration < 26.0, duration
    # and the vehicle moved toward the waypoint from the start of the climb (not climb first, then fly)
    early = next(x for x in s if x[0] - s[0][0] > 5.0)
    assert early[1] > 10.0 and early[2] > 10.0


def test_a_new_current_item_is_announced_at_once_not_at_the_next_stream_slot() -> None:
    from pymavlink.dialects.v20 import common as mavlink

    from dronedispatch.sim.vehicle import SimVehicle

    v = SimVehicle(0, 1, HOME, gcs_peer=("127.0.0.1", 9), api_peer=None, video_uri="udp://x:1")
    sent: list[bytes] = []
    v.links[0].sender = lambda data, _peer: sent.append(data)
    wp = move_ne(HOME[0], HOME[1], 5.0, 0.0)
    v.model.store.replace(0, [mi.takeoff(HOME[0], HOME[1], 3.0), mi.waypoint(*wp, 3.0), mi.loiter_unlimited(*wp, 3.0)])
    v.tick(5.0, 0.0)
    assert v.model.start_mission()[0]
    parser = mavlink.MAVLink(None)
    currents: list[tuple[float, int]] = []
    for _ in range(400):
        sent.clear()
        v.tick(0.02, 0.0)  # 20 ms steps: the 1 Hz stream alone would announce a change up to 1 s late
        for m in parser.parse_buffer(b"".join(sent)) or []:
            if m.get_type() == "MISSION_CURRENT":
                currents.append((v.model.t, m.seq))
        if v.model.seq >= 2:
            break
    seq_changes = [(t, s) for (t, s), prev in zip(currents[1:], currents, strict=False) if s != prev[1]]
    assert [s for _, s in seq_changes] == [1, 2]
    # each change went out in the very tick it happened (the stream's next slot is up to a second away)
    assert currents[-1] == (v.model.t, 2)
