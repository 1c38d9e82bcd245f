"""District lookup: the smallest outline holding a point, the nearest within the border distance."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dronedispatch.domain.districts import DistrictIndex

CITY = json.loads((Path(__file__).resolve().parents[2] / "sitl" / "ifez-districts.geojson").read_text())


def square(district: dict[str, str], x0: float, y0: float, x1: float, y1: float) -> dict[str, object]:
    ring = [[x0, y0], [x1, y0], [x1, y1], [x0, y1], [x0, y0]]
    return {"properties": district, "geometry": {"type": "Polygon", "coordinates": [ring]}}


# a big square 0..1 x 0..1 (lon x lat) with a small one inside it, a second big one east of it
SQUARES = {
    "type": "FeatureCollection",
    "features": [
        square({"id": "big"}, 0, 0, 1, 1),
        square({"id": "small"}, 0.2, 0.2, 0.4, 0.4),
        square({"id": "east"}, 1, 0, 2, 1),
        square({"name": "no id"}, 5, 5, 6, 6),
    ],
}


def test_smallest_outline_holding_the_point_wins() -> None:
    index = DistrictIndex(SQUARES)
    assert index.ids == ["big", "small", "east"]
    assert index.district_at(0.3, 0.3) == "small"  # lat, lon: inside both; the smaller is more specific
    assert index.district_at(0.7, 0.7) == "big"
    assert index.district_at(0.5, 1.5) == "east"
    assert index.district_at(0.2, 0.3) == "small"  # on the small one's edge: it covers its boundary
    assert index.district_at(5.5, 5.7) is None  # a feature without an id is not a district


def test_a_point_just_outside_takes_the_nearest_within_the_border() -> None:
    index = DistrictIndex(SQUARES, border_m=200)
    # 0.001 degree of latitude south of the big square's edge: ~111 m away
    assert index.district_at(-0.001, 0.5) == "big"
    assert index.district_at(-0.003, 0.5) is None  # ~334 m: too far
    assert DistrictIndex(SQUARES, border_m=500).district_at(-0.003, 0.5) == "big"
    assert DistrictIndex({"features": []}).district_at(0.5, 0.5) is None


@pytest.mark.parametrize(
    ("lat", "lon", "district"),
    [
        (37.3926, 126.6378, "songdo"),  # Central Park: Songdo, inside Yeonsu-gu
        (37.5300, 126.6400, "cheongna"),
        (37.4500, 126.7000, "incheon-nam-gu"),
        (36.0, 126.0, None),  # the sea far off the city
    ],
)
def test_city_districts(lat: float, lon: float, district: str | None) -> None:
    assert DistrictIndex(CITY).district_at(lat, lon) == district
