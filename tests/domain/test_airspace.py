import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from shapely.geometry import LineString

from dronedispatch.domain.airspace import Airspace, AirspaceError, NoRoute, Zone, parse_zone
from dronedispatch.domain.geo import LocalFrame, destination, distance_m, path_length_m
from dronedispatch.domain.mission_items import loiter_time, return_to_launch, roi_location, takeoff, waypoint

from .conftest import CENTRAL_PARK, GTOWER, SONGDO_SOUTH

CENTRE = (37.40, 126.65)


def square(centre: tuple[float, float], half_m: float) -> list[list[float]]:
    f = LocalFrame(*centre)
    pts = [f.to_wgs84(x, y) for x, y in ((-half_m, -half_m), (half_m, -half_m), (half_m, half_m), (-half_m, half_m))]
    ring = [[lon, lat] for lat, lon in pts]
    return [[*ring, ring[0]]]


def zone_feature(zid: str, rule: str, coords, **props) -> dict:
    return {"type": "Feature", "geometry": {"type": "Polygon", "coordinates": coords},
            "properties": {"id": zid, "name_ko": f"{zid} 구역", "name_en": f"{zid} zone", "rule": rule, **props}}


def airspace(*features: dict, **kw) -> Airspace:
    return Airspace.from_geojson({"type": "FeatureCollection", "features": list(features)}, **kw)


def crosses(route: list[tuple[float, float]], space: Airspace, rule: str = "prohibited") -> bool:
    from shapely.geometry import Point

    for z in space.zones:
        if z.rule != rule:
            continue
        line = LineString([(lon, lat) for lat, lon in route]) if len(route) > 1 else Point(route[0][::-1])
        if line.intersects(z.geometry):
            return True
    return False


def test_demo_file_loads_with_the_airport_control_zone(ifez_airspace: Airspace) -> None:
    ids = {z.id: z for z in ifez_airspace.zones}
    rksi = ids["rksi-ctr"]
    assert rksi.rule == "approval" and not rksi.demo
    assert ifez_airspace.ceiling_m == 150
    # 9.3 km round the airport reference point
    assert rksi in ifez_airspace.zones_at(*destination(37.4602, 126.4407, 45, 9200))
    assert rksi not in ifez_airspace.zones_at(*destination(37.4602, 126.4407, 45, 9400))
    prohibited = [z for z in ifez_airspace.zones if z.rule == "prohibited"]
    assert len(prohibited) >= 2 and all(z.demo and z.name_ko and z.name_en for z in prohibited)
    # docks and the Central Park camera are flyable
    for p in (GTOWER, SONGDO_SOUTH, (37.5340, 126.6420), (37.4900, 126.5400), CENTRAL_PARK):
        assert ifez_airspace.prohibited_at(*p) is None
    gj = ifez_airspace.as_geojson()
    assert {f["properties"]["id"] for f in gj["features"]} == set(ids)


def test_direct_route_when_nothing_is_in_the_way(ifez_airspace: Airspace) -> None:
    assert ifez_airspace.route(GTOWER, CENTRAL_PARK) == [GTOWER, CENTRAL_PARK]


def test_zone_between_dock_and_target_is_flown_round(ifez_airspace: Airspace) -> None:
    route = ifez_airspace.route(SONGDO_SOUTH, CENTRAL_PARK)
    assert route[0] == SONGDO_SOUTH and route[-1] == CENTRAL_PARK and len(route) > 2
    assert not crosses(route, ifez_airspace)
    straight = distance_m(*SONGDO_SOUTH, *CENTRAL_PARK)
    assert straight < path_length_m(route) < straight * 1.2
    # and the way keeps the clearance: every leg stays at least ~clearance from the zone
    zone = next(z for z in ifez_airspace.zones if z.id == "demo-convensia-tfr")
    f = ifez_airspace.frame
    local_zone = LineString([f.to_local(lat, lon) for lon, lat in zone.geometry.exterior.coords])
    leg_lines = LineString([f.to_local(*p) for p in route])
    assert leg_lines.distance(local_zone) > ifez_airspace.clearance_m * 0.9


def test_target_inside_a_prohibited_zone_is_refused(ifez_airspace: Airspace) -> None:
    with pytest.raises(NoRoute, match="target is inside prohibited zone Songdo Convensia") as exc:
        ifez_airspace.route(GTOWER, (37.3886, 126.6435))
    assert exc.value.zone == "demo-convensia-tfr"


def test_start_inside_a_prohibited_zone_is_refused() -> None:
    a = airspace(zone_feature("z", "prohibited", square(CENTRE, 300)))
    with pytest.raises(NoRoute, match="start is inside"):
        a.route(CENTRE, destination(*CENTRE, 0, 2000))


def test_no_route_when_zones_enclose_the_target() -> None:
    # a ring-shaped zone round the target (a polygon with a hole)
    outer = square(CENTRE, 1000)[0]
    inner = square(CENTRE, 500)[0][::-1]
    a = airspace(zone_feature("ring", "prohibited", [outer, inner]))
    assert a.prohibited_at(*CENTRE) is None
    with pytest.raises(NoRoute, match="no way through"):
        a.route(destination(*CENTRE, 0, 3000), CENTRE)


def test_approval_zones_are_not_avoided_but_flagged_by_the_check() -> None:
    a = airspace(zone_feature("ctr", "approval", square(CENTRE, 500)))
    start, goal = destination(*CENTRE, 270, 2000), destination(*CENTRE, 90, 2000)
    assert a.route(start, goal) == [start, goal]
    items = [takeoff(*start, 50), waypoint(*goal, 50), return_to_launch()]
    check = a.check_mission(items, home=start)
    assert not check.ok and check.violations[0].code == "approval_required"
    assert "needs an approval reference" in check.summary
    check = a.check_mission(items, home=start, approvals={"ctr": "MOLIT-2026-0042"})
    assert check.ok and check.approvals_used == {"ctr": "MOLIT-2026-0042"}
    assert check.zones_entered == ("ctr",)
    assert not a.check_mission(items, home=start, approvals={"ctr": "  "}).ok, "a blank reference is no approval"


def test_check_catches_prohibited_legs_ceiling_and_zone_ceiling() -> None:
    a = airspace(
        zone_feature("nofly", "prohibited", square(CENTRE, 200)),
        zone_feature("low", "ceiling", square(destination(*CENTRE, 0, 3000), 500), ceiling_m=60),
    )
    home = destination(*CENTRE, 270, 2000)
    across = destination(*CENTRE, 90, 2000)
    c = a.check_mission([takeoff(*home, 50), waypoint(*across, 50)], home=home)
    assert [v.code for v in c.violations] == ["prohibited_zone"] and c.violations[0].item == 1
    # an RTL straight home through the zone is caught too
    c = a.check_mission([takeoff(*home, 50), waypoint(*destination(*CENTRE, 0, 1000), 50),
                         waypoint(*across, 50), return_to_launch()], home=home)
    assert [v.item for v in c.violations] == [3]
    c = a.check_mission([takeoff(*home, 151)], home=home)
    assert [v.code for v in c.violations] == ["above_ceiling"]
    low = destination(*CENTRE, 0, 3000)
    c = a.check_mission([takeoff(*low, 80), loiter_time(*low, 80, 30)], home=low)
    assert {v.code for v in c.violations} == {"zone_ceiling"}
    assert a.check_mission([takeoff(*low, 50), loiter_time(*low, 50, 30)], home=low).ok
    # looking into a zone is fine; flying into it is not
    c = a.check_mission([takeoff(*home, 50), roi_location(*CENTRE), waypoint(*home, 50)], home=home)
    assert c.ok
    d = c.as_dict()
    assert d["ok"] and d["items_checked"] == 3 and d["ceiling_m"] == 150


@pytest.mark.parametrize(
    ("feature", "message"),
    [
        ({"type": "Feature", "geometry": None, "properties": {"id": "a", "name_ko": "a", "name_en": "a",
                                                              "rule": "prohibited"}}, "geometry is not valid"),
        (zone_feature("a", "forbidden", square(CENTRE, 10)), "rule must be one of"),
        (zone_feature("a", "ceiling", square(CENTRE, 10)), "ceiling_m is required"),
        ({"type": "Feature", "geometry": {"type": "Point", "coordinates": [126.6, 37.4]},
          "properties": {"id": "a", "name_ko": "a", "name_en": "a", "rule": "prohibited"}}, "radius_m > 0"),
        ({"type": "Feature", "geometry": {"type": "Polygon", "coordinates": square(CENTRE, 10)},
          "properties": {"name_ko": "a", "name_en": "a", "rule": "prohibited"}}, r"properties.id is required"),
    ],
)
def test_bad_zones_are_refused_with_the_feature_named(feature: dict, message: str) -> None:
    with pytest.raises(AirspaceError, match=message) as exc:
        parse_zone(feature, 3)
    assert "features[3]" in str(exc.value)


def test_point_with_radius_is_a_circle() -> None:
    z = parse_zone({"type": "Feature", "geometry": {"type": "Point", "coordinates": [126.65, 37.4]},
                    "properties": {"id": "c", "name_ko": "원", "name_en": "circle", "rule": "prohibited",
                                   "radius_m": 500}}, 0)
    assert isinstance(z, Zone)
    a = Airspace([z])
    assert a.prohibited_at(*destination(37.4, 126.65, 10, 490)) is not None
    assert a.prohibited_at(*destination(37.4, 126.65, 10, 510)) is None


def test_file_level_errors() -> None:
    with pytest.raises(AirspaceError, match="FeatureCollection"):
        Airspace.from_geojson({"type": "Feature"})
    f = zone_feature("a", "prohibited", square(CENTRE, 10))
    with pytest.raises(AirspaceError, match="unique"):
        airspace(f, f)


def test_start_within_the_clearance_margin_can_still_leave() -> None:
    a = airspace(zone_feature("z", "prohibited", square(CENTRE, 300)))
    start = destination(*CENTRE, 90, 320)  # 20 m outside the zone, inside the 50 m clearance
    goal = destination(*CENTRE, 270, 2000)
    route = a.route(start, goal)
    assert not crosses(route, a)


RANDOM_ZONES = airspace(
    zone_feature("a", "prohibited", square(destination(*CENTRE, 0, 800), 300)),
    zone_feature("b", "prohibited", square(destination(*CENTRE, 120, 900), 400)),
    zone_feature("c", "prohibited", square(destination(*CENTRE, 240, 700), 250)),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.floats(0, 360), st.floats(1500, 3000), st.floats(0, 360), st.floats(0, 2500))
def test_routes_never_cross_prohibited_zones(b1: float, d1: float, b2: float, d2: float) -> None:
    start = destination(*CENTRE, b1, d1)
    goal = destination(*CENTRE, b2, d2)
    try:
        route = RANDOM_ZONES.route(start, goal)
    except NoRoute as exc:
        assert RANDOM_ZONES.prohibited_at(*goal) is not None, exc.reason
        return
    assert route[0] == start and route[-1] == goal
    assert not crosses(route, RANDOM_ZONES)
    assert path_length_m(route) >= distance_m(*start, *goal) - 1e-6


def test_memoised_routes_and_refusals_are_stable(ifez_airspace: Airspace) -> None:
    first = ifez_airspace.route(SONGDO_SOUTH, CENTRAL_PARK)
    assert ifez_airspace.route(SONGDO_SOUTH, CENTRAL_PARK) == first
    first.append((0.0, 0.0))  # callers may mutate what they get
    assert ifez_airspace.route(SONGDO_SOUTH, CENTRAL_PARK)[-1] == CENTRAL_PARK
    for _ in range(2):
        with pytest.raises(NoRoute, match="inside prohibited zone") as exc:
            ifez_airspace.route(GTOWER, (37.3886, 126.6435))
        assert exc.value.zone == "demo-convensia-tfr"


def test_route_is_shortest_round_a_square() -> None:
    # a 600 m square zone, 50 m clearance; from due west to due east the way round hugs two corners
    a = airspace(zone_feature("z", "prohibited", square(CENTRE, 300)), clearance_m=50.0)
    start, goal = destination(*CENTRE, 270, 1000), destination(*CENTRE, 90, 1000)
    length = path_length_m(a.route(start, goal))
    # the grown square's corners are rounded (quad_segs=4), so the detour is between the
    # sharp-cornered 350 m half-width bound and the straight line
    sharp = 2 * ((650**2 + 350**2) ** 0.5) + 700
    assert 2000 < length <= sharp + 1


def test_do_jump_leg_back_to_its_target_is_checked() -> None:
    from dronedispatch.domain.mission_items import Cmd, Frame, MissionItem

    a = airspace(zone_feature("nofly", "prohibited", square(CENTRE, 200)))
    west, east = destination(*CENTRE, 270, 1000), destination(*CENTRE, 90, 1000)
    north_w, north_e = destination(*west, 0, 1000), destination(*east, 0, 1000)
    # west → north-west → north-east → east, then jump back to west: that leg crosses the zone
    items = [takeoff(*west, 50), waypoint(*north_w, 50), waypoint(*north_e, 50), waypoint(*east, 50),
             MissionItem(Cmd.DO_JUMP, frame=Frame.MISSION, param1=0, param2=2, param4=0)]
    c = a.check_mission(items, home=west)
    assert not c.ok and c.violations[0].item == 4
    ok_items = [*items[:4], MissionItem(Cmd.DO_JUMP, frame=Frame.MISSION, param1=2, param2=2, param4=0)]
    assert a.check_mission(ok_items, home=west).ok  # east → north-east stays clear
