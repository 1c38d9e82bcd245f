import math

from hypothesis import given
from hypothesis import strategies as st

from dronedispatch.domain.geo import LocalFrame, bearing_deg, destination, distance_m, path_length_m

lat = st.floats(min_value=33.0, max_value=39.0)
lon = st.floats(min_value=124.0, max_value=131.0)


def test_known_distance_gtower_to_central_park() -> None:
    # G-Tower dock → Songdo Central Park camera: about 160 m
    d = distance_m(37.3918, 126.6393, 37.3926, 126.6378)
    assert 150 < d < 170


def test_one_degree_of_latitude_is_about_111_km() -> None:
    assert math.isclose(distance_m(37.0, 127.0, 38.0, 127.0), 111_000, rel_tol=0.005)


def test_bearings_of_cardinal_directions() -> None:
    assert math.isclose(bearing_deg(37, 127, 38, 127), 0.0, abs_tol=1e-6)
    assert math.isclose(bearing_deg(37, 127, 37, 128), 90.0, abs_tol=0.5)
    assert math.isclose(bearing_deg(37, 127, 36, 127), 180.0, abs_tol=1e-6)


@given(lat, lon, st.floats(min_value=0, max_value=359.9), st.floats(min_value=1, max_value=50_000))
def test_destination_is_inverse_of_distance_and_bearing(la: float, lo: float, brg: float, dist: float) -> None:
    la2, lo2 = destination(la, lo, brg, dist)
    assert math.isclose(distance_m(la, lo, la2, lo2), dist, rel_tol=1e-9, abs_tol=1e-6)
    diff = (bearing_deg(la, lo, la2, lo2) - brg + 180) % 360 - 180
    assert abs(diff) < 1e-6


@given(st.floats(min_value=-0.2, max_value=0.2), st.floats(min_value=-0.2, max_value=0.2))
def test_local_frame_round_trip_and_metric(dlat: float, dlon: float) -> None:
    frame = LocalFrame(37.45, 126.6)
    la, lo = 37.45 + dlat, 126.6 + dlon
    x, y = frame.to_local(la, lo)
    la2, lo2 = frame.to_wgs84(x, y)
    assert math.isclose(la, la2, abs_tol=1e-9) and math.isclose(lo, lo2, abs_tol=1e-9)
    # distances from the centre are exact in an azimuthal-equidistant projection
    assert math.isclose(math.hypot(x, y), distance_m(37.45, 126.6, la, lo), rel_tol=1e-6, abs_tol=1e-3)


def test_path_length_sums_legs() -> None:
    pts = [(37.39, 126.63), (37.40, 126.63), (37.40, 126.64)]
    assert math.isclose(path_length_m(pts), distance_m(*pts[0], *pts[1]) + distance_m(*pts[1], *pts[2]))
    assert path_length_m(pts[:1]) == 0.0


def test_local_frame_around_points() -> None:
    f = LocalFrame.around([(37.0, 127.0), (38.0, 128.0)])
    assert (f.lat0, f.lon0) == (37.5, 127.5)
