"""Which district of the city holds a point: a pure lookup over the city's districts GeoJSON.

The file holds overlapping outlines (the IFEZ districts lie inside the municipalities), so the
smallest outline that holds a point wins: the most specific district. A point just outside every
outline (a report on the shore line, an outline simplified a little too much) takes the nearest
district within ``border_m`` metres; farther out it has none.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from shapely import STRtree
from shapely.geometry import Point, shape
from shapely.geometry.base import BaseGeometry
from shapely.prepared import PreparedGeometry, prep

#: A point this close to an outline (metres) still belongs to it when no outline holds it.
BORDER_M = 200.0
_M_PER_DEG_LAT = 111_320.0


class DistrictIndex:
    """District ids by location, built once from a districts FeatureCollection."""

    def __init__(self, geojson: Mapping[str, Any], *, border_m: float = BORDER_M) -> None:
        ids: list[str] = []
        geoms: list[BaseGeometry] = []
        for feature in geojson.get("features", []):
            district_id = (feature.get("properties") or {}).get("id")
            if district_id is None or not feature.get("geometry"):
                continue
            ids.append(str(district_id))
            geoms.append(shape(feature["geometry"]))
        self._ids = ids
        self._geoms = geoms
        self._prepared: list[PreparedGeometry] = [prep(g) for g in geoms]
        self._tree = STRtree(geoms)
        self._border_m = border_m

    @property
    def ids(self) -> list[str]:
        return list(self._ids)

    def district_at(self, lat: float, lon: float) -> str | None:
        """The id of the smallest district holding (lat, lon), else the nearest within the border distance."""
        if not self._ids:
            return None
        p = Point(lon, lat)
        holding = [int(i) for i in self._tree.query(p) if self._prepared[int(i)].covers(p)]
        if holding:
            return self._ids[min(holding, key=lambda i: self._geoms[i].area)]
        # degrees to metres: longitude shrinks with latitude; the smaller scale errs on the near side
        m_per_deg = _M_PER_DEG_LAT * math.cos(math.radians(lat))
        nearest = self._tree.query_nearest(p, max_distance=self._border_m / m_per_deg)
        if len(nearest) == 0:
            return None
        return self._ids[min((int(i) for i in nearest), key=lambda i: self._geoms[i].area)]
