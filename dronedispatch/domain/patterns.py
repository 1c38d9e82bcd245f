"""Flight patterns as lists of (lat, lon) points: rings, square spirals, sweeps, corridors.

The geometry is done in a :class:`~dronedispatch.domain.geo.LocalFrame` centred on the scene
(metres, x east, y north) and converted back to WGS84. Headings are degrees clockwise from north.
Templates (:mod:`dronedispatch.domain.templates`) turn these points into mission items.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from shapely import affinity
from shapely.geometry import LineString, MultiLineString, Polygon

from dronedispatch.domain.geo import LatLon, LocalFrame, bearing_deg, destination, distance_m


def _unit(heading_deg: float) -> tuple[float, float]:
    h = math.radians(heading_deg)
    return math.sin(h), math.cos(h)


def standoff(target: LatLon, approach_from: LatLon, offset_m: float) -> LatLon:
    """The point ``offset_m`` from the target towards ``approach_from`` (the target if offset 0)."""
    if offset_m <= 0 or distance_m(*target, *approach_from) < 1.0:
        return target
    return destination(*target, bearing_deg(*target, *approach_from), offset_m)


def ring(center: LatLon, radius_m: float, n: int, *, start_bearing_deg: float = 0.0) -> list[LatLon]:
    """``n`` points on a circle round ``center``, clockwise from ``start_bearing_deg``."""
    return [destination(*center, (start_bearing_deg + 360.0 * i / n) % 360.0, radius_m) for i in range(n)]


def expanding_square(center: LatLon, spacing_m: float, radius_m: float, *, heading_deg: float = 0.0) -> list[LatLon]:
    """IAMSAR expanding square: start at ``center``, legs of 1,1,2,2,3,3… × spacing, turning right,
    until the square of half-width ``radius_m`` is covered."""
    frame = LocalFrame(*center)
    x = y = 0.0
    pts = [(x, y)]
    leg = 1
    heading = heading_deg
    while True:
        for _ in range(2):
            dx, dy = _unit(heading)
            x, y = x + dx * leg * spacing_m, y + dy * leg * spacing_m
            pts.append((x, y))
            heading = (heading + 90.0) % 360.0
        if leg * spacing_m / 2 >= radius_m:
            break
        leg += 1
    return frame.many_to_wgs84(pts)


def square_around(center: LatLon, half_width_m: float) -> list[LatLon]:
    """Corners of a north-aligned square round ``center``."""
    frame = LocalFrame(*center)
    r = half_width_m
    return frame.many_to_wgs84([(-r, -r), (r, -r), (r, r), (-r, r)])


def lawnmower(area: Sequence[LatLon], spacing_m: float, *, heading_deg: float = 0.0) -> list[LatLon]:
    """Parallel tracks ``spacing_m`` apart across the polygon ``area``, direction ``heading_deg``,
    alternating so the vehicle zig-zags. Concave areas are swept across their gaps."""
    frame = LocalFrame.around(area)
    poly = Polygon([frame.to_local(*p) for p in area])
    if not poly.is_valid or poly.area <= 0:
        raise ValueError("search area is not a valid polygon")
    # rotate so the tracks run along +x, sweep, rotate back
    angle = heading_deg - 90.0
    rotated = affinity.rotate(poly, angle, origin=(0, 0))
    minx, miny, maxx, maxy = rotated.bounds
    pts: list[tuple[float, float]] = []
    y = miny + spacing_m / 2
    forward = True
    while y < maxy:
        cut = rotated.intersection(LineString([(minx - 1, y), (maxx + 1, y)]))
        if not cut.is_empty:
            parts = cut.geoms if isinstance(cut, MultiLineString) else [cut]
            xs = [c[0] for part in parts for c in part.coords]
            a, b = min(xs), max(xs)
            pts.extend([(a, y), (b, y)] if forward else [(b, y), (a, y)])
            forward = not forward
        y += spacing_m
    if not pts:  # area narrower than one track: fly its middle
        c = rotated.centroid
        pts = [(minx, c.y), (maxx, c.y)]
    back = affinity.rotate(LineString(pts) if len(pts) > 1 else LineString([pts[0], pts[0]]), -angle, origin=(0, 0))
    return frame.many_to_wgs84(list(back.coords))


def straight_line(center: LatLon, length_m: float, heading_deg: float) -> list[LatLon]:
    """A line of ``length_m`` through ``center`` along ``heading_deg``."""
    a = destination(*center, (heading_deg + 180.0) % 360.0, length_m / 2)
    b = destination(*center, heading_deg, length_m / 2)
    return [a, b]


def corridor(line: Sequence[LatLon], offset_m: float) -> list[LatLon]:
    """Out along the left side of ``line`` at ``offset_m``, back along the right side.

    With offset 0, out along the line and back along it.
    """
    if len(line) < 2:
        raise ValueError("a corridor needs a line of at least two points")
    frame = LocalFrame.around(line)
    local = LineString([frame.to_local(*p) for p in line])
    if offset_m <= 0:
        out = list(local.coords)
        back = out[::-1][1:]
    else:
        out = list(local.offset_curve(offset_m, join_style="mitre").simplify(2.0).coords)
        back = list(local.offset_curve(-offset_m, join_style="mitre").simplify(2.0).coords)[::-1]
    return frame.many_to_wgs84(out + back)


def perimeter(area: Sequence[LatLon], offset_m: float) -> list[LatLon]:
    """The corners of ``area`` pushed outwards by ``offset_m`` (clockwise, not closed)."""
    frame = LocalFrame.around(area)
    poly = Polygon([frame.to_local(*p) for p in area])
    if not poly.is_valid or poly.area <= 0:
        raise ValueError("perimeter area is not a valid polygon")
    grown = poly.buffer(offset_m, join_style="mitre") if offset_m > 0 else poly
    ring_ = grown.exterior
    if ring_.is_ccw:
        ring_ = LineString(list(ring_.coords)[::-1])
    coords = list(ring_.simplify(2.0).coords)[:-1]
    return frame.many_to_wgs84(coords)


def rotate_to_nearest(points: list[LatLon], near: LatLon) -> list[LatLon]:
    """The closed loop ``points`` started at the point nearest ``near``."""
    i = min(range(len(points)), key=lambda k: distance_m(*points[k], *near))
    return points[i:] + points[:i]


def nearest_end_first(points: list[LatLon], near: LatLon) -> list[LatLon]:
    """``points`` reversed if its far end is nearer ``near`` than its start."""
    if distance_m(*points[-1], *near) < distance_m(*points[0], *near):
        return points[::-1]
    return points
