"""What the public flight log may show, in one place.

A public row says that a drone flew, when (to the minute), for what kind of purpose, over which
district, for how long, and roughly where (a simplified track with coarse coordinates). Nothing
else leaves: no video, snapshots, descriptions, outcomes, camera or drone names, usernames, or
ids that lead into the private API. :data:`PUBLIC_FIELDS` lists every key a row may carry, and
:func:`public_flight` builds rows only from the arguments it names, so a new column in the store
never reaches the public by accident.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from shapely.geometry import LineString, Point, shape

#: Every key of a public row; nothing else is ever served.
PUBLIC_FIELDS = ("start", "purpose", "district", "district_name", "duration_min", "track")

#: The generic purpose shown for each incident category (an unknown category is "Other response").
PURPOSES: dict[str, str] = {
    "fire": "Fire response",
    "traffic_accident": "Traffic incident response",
    "crime": "Public safety response",
    "missing_person": "Search and rescue",
    "flood": "Flood response",
    "environment": "Environmental monitoring",
    "facility": "Infrastructure inspection",
    "other": "Other response",
}
#: Decimal places kept in public coordinates: 3 is about 110 m north-south, far coarser than a
#: house or a car, so a track shows the area flown over but not who was at its end.
TRACK_DECIMALS = 3
#: Douglas-Peucker tolerance in metres before rounding: keeps the shape, drops the detail.
SIMPLIFY_TOLERANCE_M = 60.0
#: The longest public track (points); a longer simplified track is thinned evenly.
MAX_TRACK_POINTS = 200
_M_PER_DEG = 111_320.0


@dataclass(frozen=True)
class Flight:
    """What the store knows of one flight that the redaction reads (and only this)."""

    launched_at: datetime
    ended_at: datetime
    category: str
    district: str | None
    lat: float  # the incident's position: to find the district when the store has none
    lon: float
    track: Sequence[tuple[float, float]]  # (lat, lon) in flight order


def purpose_of(category: str) -> str:
    return PURPOSES.get(category, PURPOSES["other"])


def minute(at: datetime) -> str:
    """``at`` in UTC, cut to the minute (ISO 8601, e.g. ``2026-12-03T17:05Z``)."""
    at = at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)
    return at.strftime("%Y-%m-%dT%H:%MZ")


def duration_minutes(start: datetime, end: datetime) -> int:
    """Whole minutes flown, at least 1 for any flight (rounded to the nearest minute)."""
    return max(1, round((end - start).total_seconds() / 60))


def simplify_track(points: Sequence[tuple[float, float]]) -> list[list[float]]:
    """``points`` (lat, lon) simplified (Douglas-Peucker, :data:`SIMPLIFY_TOLERANCE_M`) and rounded to
    :data:`TRACK_DECIMALS`; consecutive points that round alike are merged."""
    if not points:
        return []
    if len(points) == 1:
        kept: Sequence[tuple[float, float]] = points
    else:
        # simplify in a local metric frame, so the tolerance is metres in every direction
        lat0 = points[0][0]
        kx = _M_PER_DEG * math.cos(math.radians(lat0))
        line = LineString([((lon - points[0][1]) * kx, (lat - lat0) * _M_PER_DEG) for lat, lon in points])
        simple = line.simplify(SIMPLIFY_TOLERANCE_M, preserve_topology=False)
        kept = [(lat0 + y / _M_PER_DEG, points[0][1] + x / kx) for x, y in simple.coords]
    out: list[list[float]] = []
    for lat, lon in kept:
        p = [round(lat, TRACK_DECIMALS), round(lon, TRACK_DECIMALS)]
        if not out or out[-1] != p:
            out.append(p)
    if len(out) > MAX_TRACK_POINTS:
        step = (len(out) - 1) / (MAX_TRACK_POINTS - 1)
        out = [out[round(i * step)] for i in range(MAX_TRACK_POINTS)]
    return out


def district_of(lat: float, lon: float, districts: Mapping[str, Any]) -> tuple[str, str] | None:
    """(id, English name) of the district (GeoJSON feature) holding the point, or None."""
    point = Point(lon, lat)
    for feature in districts.get("features", ()):
        props = feature.get("properties") or {}
        if props.get("id") and shape(feature["geometry"]).covers(point):
            return str(props["id"]), str(props.get("name_en") or props["id"])
    return None


def district_names(districts: Mapping[str, Any]) -> dict[str, str]:
    return {
        str(f["properties"]["id"]): str(f["properties"].get("name_en") or f["properties"]["id"])
        for f in districts.get("features", ())
        if (f.get("properties") or {}).get("id")
    }


def public_flight(flight: Flight, districts: Mapping[str, Any]) -> dict[str, Any]:
    """The public row of ``flight``: exactly the keys of :data:`PUBLIC_FIELDS`."""
    names = district_names(districts)
    if flight.district is not None and flight.district in names:
        district: tuple[str, str] | None = (flight.district, names[flight.district])
    else:
        district = district_of(flight.lat, flight.lon, districts)
    row = {
        "start": minute(flight.launched_at),
        "purpose": purpose_of(flight.category),
        "district": district[0] if district else None,
        "district_name": district[1] if district else "Outside the districts",
        "duration_min": duration_minutes(flight.launched_at, flight.ended_at),
        "track": simplify_track(flight.track),
    }
    assert tuple(row) == PUBLIC_FIELDS
    return row
