"""Launch fast: the departure height, the climb-while-flying altitude profile and the physical floor.

Pure: numbers in, numbers out.

A multicopter need not climb to its transit altitude over the dock. It takes off vertically only to a
*departure height* (the obstacle height round the dock: roofs, trees, masts; default
:data:`DEFAULT_DEPARTURE_ALT_M`), then flies toward the scene while it climbs the rest of the way.
PX4 flies a waypoint with an altitude change as one straight 3-D line, its velocity clamped so the
horizontal part stays within the cruise speed and the vertical part within the climb rate
(``FlightTaskAutoLineSmoothVel``: clampToXYNorm / clampToZNorm). The route's waypoints therefore get
the altitude the drone reaches climbing at its maximum rate while cruising
(:func:`climb_profile`), so no leg is steeper than climb rate / cruise speed and the horizontal speed
never has to drop.

The physical floor of a response (dispatch click to on scene), :func:`response_floor`::

    floor = door + h_dep / v_up + max(d / v_xy, (h_transit - h_dep) / v_up)

with ``door`` the dock door time (the dock device's when known, else the fleet file's
``launch_delay_s``), ``h_dep`` the departure height, ``h_transit`` the transit altitude, ``v_up`` the
maximum climb rate (PX4 ``MPC_Z_VEL_MAX_UP``; the fleet file's ``climb_speed``), ``d`` the routed
horizontal distance to the arrival point on scene and ``v_xy`` the cruise speed. The first two terms
are the vertical take-off; the climb above the departure height overlaps the transit, so only the
longer of the two counts. Acceleration and the controller's settling are not in it: it is a bound
no real flight beats. With ``h_dep >= h_transit`` it is the classic door + climb + transit.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from dronedispatch.domain.geo import LatLon, distance_m

DEFAULT_DEPARTURE_ALT_M = 25.0  # obstacle height round a dock when the city or dock names none


def door_s(reported_s: float | None, launch_delay_s: float) -> float:
    """The door term of a launch from a dock: the opening time the dock reported (it measured its last
    opening) when it reported one, else the fleet file's ``launch_delay_s``."""
    return launch_delay_s if reported_s is None else reported_s


def departure_alt(
    transit_alt_m: float, obstacle_height_m: float | None = None, ceiling_m: float | None = None
) -> float:
    """The height the vertical take-off reaches: the obstacle height, never above the transit
    altitude or the airspace ceiling (then the take-off goes straight to the transit altitude)."""
    dep = DEFAULT_DEPARTURE_ALT_M if obstacle_height_m is None else obstacle_height_m
    top = transit_alt_m if ceiling_m is None else min(transit_alt_m, ceiling_m)
    return max(0.0, min(dep, top))


def climb_profile(
    path: Sequence[LatLon],
    *,
    departure_alt_m: float,
    transit_alt_m: float,
    climb_rate_m_s: float,
    cruise_speed_m_s: float,
) -> list[float]:
    """Altitude for each point of ``path`` (dock first): what a drone leaving the dock at the departure
    height reaches by there, climbing at ``climb_rate_m_s`` while cruising at ``cruise_speed_m_s``,
    capped at the transit altitude. The last point (arrival on scene) is always at the transit altitude."""
    slope = climb_rate_m_s / cruise_speed_m_s if cruise_speed_m_s > 0 else float("inf")
    out: list[float] = []
    flown = 0.0
    for i, p in enumerate(path):
        if i:
            flown += distance_m(*path[i - 1], *p)
        out.append(min(transit_alt_m, departure_alt_m + flown * slope))
    if out:
        out[-1] = transit_alt_m
    return out


@dataclass(frozen=True, slots=True)
class ResponseFloor:
    """What the airframe physically needs from the dispatch click to on scene, term by term."""

    door_s: float
    takeoff_s: float  # vertical, to the departure height
    transit_s: float  # max(routed distance / cruise, rest of the climb / climb rate)
    distance_m: float
    departure_alt_m: float
    transit_alt_m: float

    @property
    def total_s(self) -> float:
        return self.door_s + self.takeoff_s + self.transit_s

    def describe(self) -> str:
        return (
            f"door {self.door_s:.0f} s + take-off to {self.departure_alt_m:.0f} m {self.takeoff_s:.0f} s + "
            f"{self.distance_m:.0f} m climbing to {self.transit_alt_m:.0f} m {self.transit_s:.0f} s "
            f"= {self.total_s:.0f} s"
        )


def response_floor(
    *,
    door_s: float,
    distance_m: float,
    departure_alt_m: float,
    transit_alt_m: float,
    climb_rate_m_s: float,
    cruise_speed_m_s: float,
    start_alt_m: float = 0.0,
) -> ResponseFloor:
    """The physical floor (see the module's formula). ``start_alt_m``: a drone already in the air
    starts its climb from there (no take-off, no door)."""
    dep = max(departure_alt_m, start_alt_m) if transit_alt_m > start_alt_m else start_alt_m
    dep = min(dep, max(transit_alt_m, start_alt_m))
    takeoff = max(0.0, dep - start_alt_m) / climb_rate_m_s
    rest = max(0.0, transit_alt_m - dep) / climb_rate_m_s
    transit = max(distance_m / cruise_speed_m_s, rest)
    return ResponseFloor(door_s, takeoff, transit, distance_m, dep, transit_alt_m)


def arrival_distance_m(start: LatLon, points: Sequence[LatLon]) -> float:
    """Horizontal length of the way from ``start`` through ``points`` (the route to the arrival point)."""
    total, prev = 0.0, start
    for p in points:
        total += distance_m(*prev, *p)
        prev = p
    return total
