import itertools
import json
import math
from pathlib import Path

import pytest
import yaml

from dronedispatch.domain.airspace import Airspace
from dronedispatch.domain.geo import distance_m
from dronedispatch.domain.incidents import Category
from dronedispatch.domain.mission_items import Cmd, Frame
from dronedispatch.domain.templates import (
    CEILING_M,
    DEFAULT_TEMPLATES_DIR,
    CompiledMission,
    MissionTemplate,
    TemplateError,
    compile_mission,
    load_templates,
    resolve_params,
    template_for,
)

from .conftest import CENTRAL_PARK, GTOWER, SONGDO_SOUTH

DOCK = (*GTOWER, 5.0)


@pytest.fixture(scope="module")
def templates() -> dict[str, MissionTemplate]:
    return load_templates()


def compiled(t: MissionTemplate, **kw) -> CompiledMission:
    kw.setdefault("dock", DOCK)
    kw.setdefault("target", CENTRAL_PARK)
    return compile_mission(t, **kw)


def check_shape(c: CompiledMission) -> None:
    """The invariants every compiled mission keeps (see the templates module docstring)."""
    items = c.items
    assert items[0].command == Cmd.NAV_TAKEOFF
    assert (items[0].lat, items[0].lon) == GTOWER[:2]
    assert items[c.on_scene_seq - 1].command == Cmd.NAV_WAYPOINT  # arrival
    assert items[c.on_scene_seq].command in (Cmd.DO_SET_ROI_LOCATION, Cmd.DO_SET_ROI_NONE)
    for it in items:
        if it.is_positional and it.command != Cmd.DO_SET_ROI_LOCATION:
            assert it.frame == Frame.GLOBAL_RELATIVE_ALT_INT
            assert 0 < it.alt <= CEILING_M
        if it.command == Cmd.DO_JUMP:
            target = int(it.param1)
            assert c.on_scene_seq < target < len(items)
            assert items[target].command == Cmd.NAV_WAYPOINT
    if c.return_seq is not None:
        assert items[-1].command == Cmd.NAV_RETURN_TO_LAUNCH
        assert c.on_scene_seq < c.return_seq < len(items)
    assert c.path_length_m > 0


def test_all_issue_templates_ship_and_load(templates: dict[str, MissionTemplate]) -> None:
    assert {"overwatch", "hover_roi", "expanding_square", "lawnmower", "corridor", "perimeter"} <= set(templates)
    assert template_for(Category.FIRE, templates).name == "overwatch"
    assert template_for(Category.MISSING_PERSON, templates).name == "expanding_square"
    assert template_for(Category.TRAFFIC_ACCIDENT, templates).name == "hover_roi"
    assert template_for(Category.FLOOD, templates).name == "corridor"
    assert template_for(Category.CRIME, templates).name == "perimeter"
    for c in Category:
        template_for(c, templates)
    d = templates["overwatch"].as_dict()
    assert d["title"]["ko"] and d["params"]["altitude_m"]["maximum"] <= CEILING_M


@pytest.mark.parametrize("name", ["overwatch", "hover_roi", "expanding_square", "lawnmower", "corridor", "perimeter"])
def test_each_template_compiles_to_a_well_formed_mission(templates, name: str) -> None:
    t = templates[name]
    for cat in (None, *t.categories):
        check_shape(compiled(t, category=cat))
    route = [GTOWER, (37.3935, 126.6400), CENTRAL_PARK]
    c = compiled(t, route=route)
    check_shape(c)
    waypoints = [(it.lat, it.lon) for it in c.items[: c.on_scene_seq] if it.command == Cmd.NAV_WAYPOINT]
    assert waypoints[0] == route[1], "the route's interior vertex is flown on the way out"
    if c.return_seq is not None:
        back = c.items[c.return_seq]
        assert (back.lat, back.lon) == route[1], "and retraced on the way back before RTL"


def test_overwatch_is_a_ring_with_roi_at_centre_repeated_by_do_jump(templates) -> None:
    c = compiled(templates["overwatch"], category="fire", cruise_speed=10.0)
    roi = c.items[c.on_scene_seq]
    assert roi.command == Cmd.DO_SET_ROI_LOCATION and (roi.lat, roi.lon) == CENTRAL_PARK
    p = c.params
    assert p["radius_m"] == 80 and p["altitude_m"] == 80, "fire's category defaults apply"
    ring = c.pattern_points
    assert len(ring) == p["ring_points"]
    for pt in ring:
        assert math.isclose(distance_m(*pt, *CENTRAL_PARK), p["radius_m"], rel_tol=1e-6)
    jumps = [it for it in c.items if it.command == Cmd.DO_JUMP]
    assert len(jumps) == 1
    lap = 2 * math.pi * p["radius_m"]  # about; the ring is a polygon
    laps = jumps[0].param2 + 1
    assert abs(laps * lap / 10.0 - p["time_on_scene_s"]) < lap / 10.0 * 1.5
    assert c.items[c.return_seq - 1].command == Cmd.DO_SET_ROI_NONE
    # the ring starts on the side the drone arrives from
    arrival = c.items[c.on_scene_seq - 1]
    assert distance_m(arrival.lat, arrival.lon, *GTOWER) == min(distance_m(*pt, *GTOWER) for pt in ring)


def test_hover_roi_holds_for_the_time_on_scene_or_until_the_pilot_returns_it(templates) -> None:
    t = templates["hover_roi"]
    c = compiled(t, params={"time_on_scene_s": 300, "offset_m": 30})
    hold = c.items[c.on_scene_seq + 1]
    assert hold.command == Cmd.NAV_LOITER_TIME and hold.param1 == 300
    assert math.isclose(distance_m(hold.lat, hold.lon, *CENTRAL_PARK), 30, rel_tol=1e-6)
    assert c.scene_time_s == 300
    c = compiled(t, params={"time_on_scene_s": 0})
    assert c.items[-1].command == Cmd.NAV_LOITER_UNLIM and c.return_seq is None


def test_expanding_square_legs_grow_by_the_spacing(templates) -> None:
    c = compiled(templates["expanding_square"], params={"spacing_m": 50, "radius_m": 150})
    pts = c.pattern_points
    assert pts[0] == pytest.approx(CENTRAL_PARK)
    legs = [distance_m(*a, *b) for a, b in itertools.pairwise(pts)]
    expected = [50 * (i // 2 + 1) for i in range(len(legs))]
    assert legs == pytest.approx(expected, rel=1e-4)
    assert max(distance_m(*p, *CENTRAL_PARK) for p in pts) >= 150
    assert c.items[c.on_scene_seq].command == Cmd.DO_SET_ROI_NONE


def test_lawnmower_sweeps_the_given_area_with_parallel_tracks(templates) -> None:
    area = {"type": "Polygon", "coordinates": [[[126.636, 37.391], [126.640, 37.391], [126.640, 37.394],
                                                 [126.636, 37.394], [126.636, 37.391]]]}
    c = compiled(templates["lawnmower"], params={"spacing_m": 40, "heading_deg": 0}, area=area)
    pts = c.pattern_points
    height = distance_m(37.391, 126.638, 37.394, 126.638)
    width = distance_m(37.3925, 126.636, 37.3925, 126.640)
    assert len(pts) == 2 * round(width / 40)
    for a, b in zip(pts[::2], pts[1::2], strict=True):  # each track runs north-south across the area
        assert distance_m(*a, *b) == pytest.approx(height, rel=0.01)
    assert all(37.391 - 1e-6 <= p[0] <= 37.394 + 1e-6 for p in pts)


def test_corridor_follows_the_river_line_on_both_banks(templates) -> None:
    river = {"type": "LineString", "coordinates": [[126.640, 37.535], [126.650, 37.538], [126.660, 37.537]]}
    c = compiled(templates["corridor"], params={"offset_m": 40}, dock=(37.5340, 126.6420, 8), target=(37.537, 126.65),
                 area=river)
    from shapely.geometry import LineString

    from dronedispatch.domain.geo import LocalFrame

    f = LocalFrame(37.537, 126.65)
    line = LineString([f.to_local(lat, lon) for lon, lat in river["coordinates"]])
    for p in c.pattern_points:  # mitred bends sit a little further out than the offset
        assert 39.0 <= line.distance(shapely_point(f, p)) <= 40 * 1.5
    ends = c.pattern_points[0], c.pattern_points[-1]
    assert all(distance_m(*e, 37.535, 126.640) < 100 for e in ends), "starts at the end nearest the dock"


def shapely_point(f, p):
    from shapely.geometry import Point

    return Point(f.to_local(*p))


def test_perimeter_circles_the_area_outside_its_edge(templates) -> None:
    block = [(37.3915, 126.6365), (37.3915, 126.6390), (37.3935, 126.6390), (37.3935, 126.6365)]
    c = compiled(templates["perimeter"], params={"offset_m": 25}, area=block)
    from shapely.geometry import Polygon

    from dronedispatch.domain.geo import LocalFrame

    f = LocalFrame(37.3925, 126.63775)
    poly = Polygon([f.to_local(*p) for p in block])
    for p in c.pattern_points:
        # mitred corners: a right angle's corner point is offset * sqrt(2) from the block's corner
        assert poly.exterior.distance(shapely_point(f, p)) == pytest.approx(25 * math.sqrt(2), abs=1.0)
        assert not poly.contains(shapely_point(f, p))
    assert c.items[c.on_scene_seq].command == Cmd.DO_SET_ROI_LOCATION
    assert any(it.command == Cmd.DO_JUMP for it in c.items)


def test_parameters_are_checked_with_clear_errors(templates) -> None:
    t = templates["overwatch"]
    with pytest.raises(TemplateError, match=r"'altitude_m' = 200 is outside \[20.0, 150.0\] m"):
        resolve_params(t, None, {"altitude_m": 200})
    with pytest.raises(TemplateError, match="unknown parameter 'spacing_m'"):
        resolve_params(t, None, {"spacing_m": 10})
    with pytest.raises(TemplateError, match="must be a number"):
        resolve_params(t, None, {"radius_m": "wide"})
    with pytest.raises(TemplateError, match="must be a number"):
        resolve_params(t, None, {"radius_m": float("nan")})
    assert resolve_params(t, "fire", {"radius_m": 40})["radius_m"] == 40


def write_templates(tmp_path: Path, **files: dict) -> Path:
    (tmp_path / "schema.json").write_text((DEFAULT_TEMPLATES_DIR / "schema.json").read_text())
    for name, data in files.items():
        (tmp_path / f"{name}.yaml").write_text(yaml.safe_dump(data, allow_unicode=True))
    return tmp_path


def base_template(**changes) -> dict:
    data = yaml.safe_load((DEFAULT_TEMPLATES_DIR / "hover_roi.yaml").read_text())
    data.update(changes)
    return data


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"pattern": "zigzag"}, r"hover_roi.yaml: pattern: 'zigzag' is not one of"),
        ({"categories": ["volcano"]}, r"categories.0: 'volcano' is not one of"),
        ({"title": {"en": "x"}}, r"title: 'ko' is a required property"),
        ({"params": {"altitude_m": {"default": 50, "minimum": 10, "maximum": 200}, "offset_m":
                     {"default": 1, "minimum": 0, "maximum": 5}, "time_on_scene_s":
                     {"default": 1, "minimum": 0, "maximum": 5}}}, r"params.altitude_m.maximum: above the 150 m"),
        ({"params": {"altitude_m": {"default": 50, "minimum": 10, "maximum": 100}}},
         r"needs offset_m, time_on_scene_s"),
        ({"params": {"altitude_m": {"default": 500, "minimum": 10, "maximum": 100}, "offset_m":
                     {"default": 1, "minimum": 0, "maximum": 5}, "time_on_scene_s":
                     {"default": 1, "minimum": 0, "maximum": 5}}}, r"params.altitude_m: default 500.0 is outside"),
        ({"category_defaults": {"traffic_accident": {"altitude_m": 999}}},
         r"category_defaults.traffic_accident.altitude_m: 999 is outside"),
        ({"default_for": ["fire"], "categories": ["crime"]}, r"default_for: 'fire' is not among"),
        ({"name": "other_name"}, r"name: 'other_name' must equal the file name"),
        ({"surprise": 1}, r"Additional properties are not allowed \('surprise'"),
    ],
)
def test_bad_template_files_name_file_and_field(tmp_path: Path, change: dict, message: str) -> None:
    d = write_templates(tmp_path, hover_roi=base_template(**change))
    with pytest.raises(TemplateError, match=message) as exc:
        load_templates(d)
    assert "hover_roi.yaml" in str(exc.value)


def test_unreadable_yaml_and_empty_directory(tmp_path: Path) -> None:
    d = write_templates(tmp_path)
    with pytest.raises(TemplateError, match="no mission templates"):
        load_templates(d)
    (d / "broken.yaml").write_text("name: [unclosed")
    with pytest.raises(TemplateError, match=r"broken\.yaml: not readable YAML"):
        load_templates(d)


def test_schema_is_valid_json_schema() -> None:
    import jsonschema

    jsonschema.Draft202012Validator.check_schema(json.loads((DEFAULT_TEMPLATES_DIR / "schema.json").read_text()))


def test_routed_missions_pass_the_airspace_check(templates, ifez_airspace: Airspace) -> None:
    route = ifez_airspace.route(SONGDO_SOUTH, CENTRAL_PARK)
    for name in ("overwatch", "hover_roi", "expanding_square", "lawnmower", "perimeter"):
        c = compile_mission(templates[name], dock=(*SONGDO_SOUTH, 5.0), target=CENTRAL_PARK, route=route)
        check = ifez_airspace.check_mission(c.items, home=SONGDO_SOUTH)
        assert check.ok, (name, check.summary)


def test_return_mission_retraces_the_route(templates) -> None:
    from dronedispatch.domain.templates import return_mission

    items = return_mission([CENTRAL_PARK, (37.39, 126.64), GTOWER], alt=60)
    assert [it.command for it in items] == [Cmd.NAV_WAYPOINT, Cmd.NAV_RETURN_TO_LAUNCH]
    assert (items[0].lat, items[0].lon, items[0].alt) == (37.39, 126.64, 60)
    assert [it.command for it in return_mission([CENTRAL_PARK, GTOWER], alt=60)] == [Cmd.NAV_RETURN_TO_LAUNCH]
    with pytest.raises(TemplateError, match="ceiling"):
        return_mission([CENTRAL_PARK, GTOWER], alt=200)


def test_estimated_scene_time(templates) -> None:
    from dronedispatch.domain.templates import estimated_scene_time_s

    assert estimated_scene_time_s(templates["hover_roi"], "traffic_accident", target=CENTRAL_PARK) == 600
    search = estimated_scene_time_s(templates["expanding_square"], target=CENTRAL_PARK, cruise_speed=8)
    assert search > 60


@pytest.mark.parametrize("name", ["overwatch", "hover_roi", "expanding_square", "lawnmower", "corridor", "perimeter"])
def test_patterns_next_to_a_zone_are_fitted_round_it(templates, ifez_airspace: Airspace, name: str) -> None:
    # 400 m north-west of the Convensia TFR's centre: big patterns overlap the zone
    target = (37.3911, 126.6405)
    spec = templates[name].params.get("radius_m")
    params = {"radius_m": min(500.0, spec.maximum)} if spec else {}
    if "length_m" in templates[name].params:
        params = {"length_m": 2000, "heading_deg": 135}
    plain = compile_mission(templates[name], params, dock=(*SONGDO_SOUTH, 5.0), target=target)
    fitted = compile_mission(templates[name], params, dock=(*SONGDO_SOUTH, 5.0), target=target,
                             airspace=ifez_airspace)
    check_plain = ifez_airspace.check_mission(plain.items, home=SONGDO_SOUTH)
    check = ifez_airspace.check_mission(fitted.items, home=SONGDO_SOUTH)
    assert check.ok, check.summary
    if name != "hover_roi":
        assert not check_plain.ok, "the unfitted pattern really does cross the zone"
    assert all(ifez_airspace.prohibited_at(*p) is None for p in fitted.pattern_points)
    assert fitted.items[fitted.on_scene_seq - 1].command == Cmd.NAV_WAYPOINT


def test_a_pattern_entirely_inside_a_zone_is_refused(templates, ifez_airspace: Airspace) -> None:
    with pytest.raises(TemplateError, match="whole pattern lies inside prohibited zones"):
        compile_mission(templates["hover_roi"], {"offset_m": 0}, dock=(*GTOWER, 5.0), target=(37.3886, 126.6435),
                        airspace=ifez_airspace)
