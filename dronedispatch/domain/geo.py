"""Geodesy on the WGS84 ellipsoid, and a metric local plane for polygon work.

Distances and bearings are geodesic (pyproj.Geod, Karney's algorithm), so they stay exact over
the tens of kilometres a city covers. Shapely works in a plane; :class:`LocalFrame` is an
azimuthal-equidistant projection centred on the area of interest, whose metres are true near the
centre (distortion under 0.01% within 30 km), which is all routing round no-fly zones needs.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from itertools import pairwise

from pyproj import Geod, Transformer
from pyproj.enums import TransformDirection

WGS84 = Geod(ellps="WGS84")

LatLon = tuple[float, float]


def distance_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Geodesic distance in metres between two WGS84 points."""
    _, _, dist = WGS84.inv(lon1, lat1, lon2, lat2)
    return float(dist)


def bearing_deg(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Initial bearing from point 1 to point 2, degrees clockwise from true north in [0, 360)."""
    az, _, _ = WGS84.inv(lon1, lat1, lon2, lat2)
    return float(az) % 360.0


def destination(lat: float, lon: float, bearing: float, distance: float) -> LatLon:
    """The point ``distance`` metres from (lat, lon) along initial bearing ``bearing`` (degrees)."""
    lon2, lat2, _ = WGS84.fwd(lon, lat, bearing, distance)
    return float(lat2), float(lon2)


def path_length_m(points: Sequence[LatLon]) -> float:
    """Length in metres of a polyline of (lat, lon) points."""
    return sum(distance_m(a[0], a[1], b[0], b[1]) for a, b in pairwise(points))


@dataclass(frozen=True)
class LocalFrame:
    """A metric plane (x east, y north, metres) centred on (lat0, lon0).

    Build one per planning problem (e.g. centred between dock and target, or on the city) and do
    all shapely geometry in it; convert back with :meth:`to_wgs84`.
    """

    lat0: float
    lon0: float
    _fwd: Transformer = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # an explicit pipeline (degrees → radians → aeqd) builds in well under a millisecond;
        # Transformer.from_crs would search the PROJ database (~100 ms) for the same operation
        pipeline = (
            "+proj=pipeline +step +proj=unitconvert +xy_in=deg +xy_out=rad "
            f"+step +proj=aeqd +lat_0={self.lat0!r} +lon_0={self.lon0!r} +x_0=0 +y_0=0 +ellps=WGS84"
        )
        object.__setattr__(self, "_fwd", Transformer.from_pipeline(pipeline))

    @classmethod
    def around(cls, points: Iterable[LatLon]) -> LocalFrame:
        """A frame centred on the mean of ``points`` (fine at city scale)."""
        pts = list(points)
        if not pts:
            raise ValueError("LocalFrame.around needs at least one point")
        return cls(sum(p[0] for p in pts) / len(pts), sum(p[1] for p in pts) / len(pts))

    def to_local(self, lat: float, lon: float) -> tuple[float, float]:
        """(lat, lon) degrees → (x, y) metres."""
        x, y = self._fwd.transform(lon, lat)
        return float(x), float(y)

    def to_wgs84(self, x: float, y: float) -> LatLon:
        """(x, y) metres → (lat, lon) degrees."""
        lon, lat = self._fwd.transform(x, y, direction=TransformDirection.INVERSE)
        return float(lat), float(lon)

    def ring_to_local(self, ring: Iterable[Sequence[float]]) -> list[tuple[float, float]]:
        """A GeoJSON ring ([lon, lat, ...] positions) → local (x, y) points."""
        return [self.to_local(p[1], p[0]) for p in ring]

    def many_to_wgs84(self, xys: Iterable[tuple[float, float]]) -> list[LatLon]:
        return [self.to_wgs84(x, y) for x, y in xys]
