import json
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dronedispatch.domain import qgc_plan
from dronedispatch.domain.mission_items import Cmd, Frame, MissionItem, waypoint
from dronedispatch.domain.qgc_plan import PlanFormatError, from_plan, loads, to_plan
from dronedispatch.domain.templates import compile_mission, load_templates

from .conftest import CENTRAL_PARK, GTOWER

HOME = (*GTOWER, 5.0)


def same(a: MissionItem, b: MissionItem) -> bool:
    def eq(x: float, y: float) -> bool:
        return (math.isnan(x) and math.isnan(y)) or math.isclose(x, y, rel_tol=0, abs_tol=1e-9)

    return (
        a.command == b.command and a.frame == b.frame and a.autocontinue == b.autocontinue
        and all(eq(getattr(a, f), getattr(b, f)) for f in ("lat", "lon", "alt", "param1", "param2", "param3", "param4"))
    )


@pytest.mark.parametrize("name", ["overwatch", "hover_roi", "expanding_square", "lawnmower", "corridor", "perimeter"])
def test_every_template_round_trips_through_a_plan_file(name: str) -> None:
    c = compile_mission(load_templates()[name], dock=HOME, target=CENTRAL_PARK)
    text = qgc_plan.dumps(to_plan(c.items, home=HOME))
    back = loads(text)
    assert len(back.items) == len(c.items)
    assert all(same(a, b) for a, b in zip(back.items, c.items, strict=True))
    assert back.home == HOME


def test_plan_follows_qgc_conventions() -> None:
    c = compile_mission(load_templates()["overwatch"], dock=HOME, target=CENTRAL_PARK)
    zone = [(37.388, 126.643), (37.389, 126.644), (37.387, 126.645)]
    plan = json.loads(qgc_plan.dumps(to_plan(c.items, home=HOME, exclusion_zones=[zone], rally_points=[HOME])))
    assert plan["fileType"] == "Plan" and plan["version"] == 1
    m = plan["mission"]
    assert m["version"] == 2 and m["firmwareType"] == 12 and m["vehicleType"] == 2
    assert m["plannedHomePosition"] == list(HOME)
    items = m["items"]
    assert [it["doJumpId"] for it in items] == list(range(1, len(items) + 1))
    assert items[0]["frame"] == Frame.GLOBAL_RELATIVE_ALT and items[0]["AltitudeMode"] == 0
    assert items[0]["params"][3] is None, "NaN is written as null"
    assert items[0]["params"][4:] == [GTOWER[0], GTOWER[1], items[0]["Altitude"]]
    jump = next(it for it in items if it["command"] == Cmd.DO_JUMP)
    jump_seq = next(i for i, it in enumerate(c.items) if it.command == Cmd.DO_JUMP)
    assert jump["params"][0] == c.items[jump_seq].param1 + 1, "DO_JUMP names the target's doJumpId"
    assert plan["geoFence"]["polygons"][0] == {"inclusion": False, "version": 1, "polygon": [list(p) for p in zone]}
    back = from_plan(plan)
    assert back.fence_exclusions == (tuple(zone),) and back.rally_points == (HOME,)


def test_reads_a_plan_as_qgroundcontrol_writes_it() -> None:
    qgc = {
        "fileType": "Plan", "version": 1, "groundStation": "QGroundControl",
        "geoFence": {"circles": [], "polygons": [], "version": 2},
        "rallyPoints": {"points": [], "version": 2},
        "mission": {
            "version": 2, "firmwareType": 12, "vehicleType": 2, "cruiseSpeed": 15, "hoverSpeed": 5,
            "globalPlanAltitudeMode": 1, "plannedHomePosition": [47.3977419, 8.545594, 487.989],
            "items": [
                {"AMSLAltAboveTerrain": None, "Altitude": 50, "AltitudeMode": 1, "autoContinue": True,
                 "command": 22, "doJumpId": 1, "frame": 3, "params": [15, 0, 0, None, 47.3985099, 8.5451002, 50],
                 "type": "SimpleItem"},
                {"autoContinue": True, "command": 16, "doJumpId": 2, "frame": 3,
                 "params": [0, 0, 0, None, 47.399, 8.546, 50], "type": "SimpleItem"},
                {"autoContinue": True, "command": 177, "doJumpId": 3, "frame": 2,
                 "params": [2, 3, 0, 0, 0, 0, 0], "type": "SimpleItem"},
                {"autoContinue": True, "command": 20, "doJumpId": 4, "frame": 2,
                 "params": [0, 0, 0, 0, 0, 0, 0], "type": "SimpleItem"},
            ],
        },
    }
    p = from_plan(qgc)
    assert p.cruise_speed == 15 and p.home == (47.3977419, 8.545594, 487.989)
    takeoff, wp, jump, rtl = p.items
    assert wp.command == Cmd.NAV_WAYPOINT and wp.lat == 47.399
    assert takeoff.command == Cmd.NAV_TAKEOFF and takeoff.frame == Frame.GLOBAL_RELATIVE_ALT_INT
    assert (takeoff.lat, takeoff.lon, takeoff.alt, takeoff.param1) == (47.3985099, 8.5451002, 50, 15)
    assert math.isnan(takeoff.param4)
    assert jump.param1 == 1 and jump.param2 == 3, "doJumpId 2 is sequence 1"
    assert rtl.command == Cmd.NAV_RETURN_TO_LAUNCH and rtl.frame == Frame.MISSION


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: d.update(fileType="Mission"), r'fileType: must be "Plan"'),
        (lambda d: d.pop("mission"), "mission: missing"),
        (lambda d: d["mission"]["items"][1].update(type="ComplexItem"), r"items\[1\].type: 'ComplexItem' is not"),
        (lambda d: d["mission"]["items"][0].update(params=[1, 2]), r"items\[0\].params: expected a list of 7"),
        (lambda d: d["mission"]["items"][0]["params"].__setitem__(0, "x"), r"items\[0\].params: values must be"),
        (lambda d: d["mission"]["items"][2]["params"].__setitem__(0, 42), r"items\[2\].params\[0\]: DO_JUMP to "
                                                                          "doJumpId 42"),
        (lambda d: d["mission"]["items"][1]["params"].__setitem__(4, 123.0), "latitude/longitude out of range"),
        (lambda d: d["mission"].update(plannedHomePosition=[1]), r"plannedHomePosition: expected \[lat, lon, alt\]"),
        (lambda d: d["geoFence"].update(polygons=[{"polygon": [[1]]}]), r"geoFence.polygons\[0\].polygon"),
    ],
)
def test_bad_plans_are_refused_naming_the_field(mutate, message: str) -> None:
    items = [waypoint(*GTOWER, 30), waypoint(*CENTRAL_PARK, 30),
             MissionItem(Cmd.DO_JUMP, frame=Frame.MISSION, param1=0, param2=1, param4=0)]
    d = to_plan(items, home=HOME)
    mutate(d)
    with pytest.raises(PlanFormatError, match=message):
        from_plan(d)


def test_not_json_and_bad_jump_on_export() -> None:
    with pytest.raises(PlanFormatError, match="not JSON"):
        loads("{nope")
    with pytest.raises(PlanFormatError, match="DO_JUMP to item 7"):
        to_plan([MissionItem(Cmd.DO_JUMP, frame=Frame.MISSION, param1=7)], home=HOME)


finite = st.floats(allow_nan=False, allow_infinity=False, min_value=-1e6, max_value=1e6)
items_strategy = st.lists(
    st.one_of(
        st.builds(MissionItem, command=st.sampled_from([Cmd.NAV_WAYPOINT, Cmd.NAV_LOITER_TIME, Cmd.NAV_TAKEOFF]),
                  lat=st.floats(-90, 90), lon=st.floats(-180, 180), alt=st.floats(0, 150), param1=finite,
                  param2=finite, param3=finite, param4=st.one_of(st.just(float("nan")), finite),
                  frame=st.sampled_from([Frame.GLOBAL_RELATIVE_ALT_INT, Frame.GLOBAL_INT]),
                  autocontinue=st.booleans()),
        st.builds(MissionItem, command=st.sampled_from([Cmd.DO_CHANGE_SPEED, Cmd.DO_SET_ROI_NONE]),
                  frame=st.just(Frame.MISSION), param1=finite, param2=finite, param4=st.just(0.0)),
    ),
    min_size=1, max_size=20,
)


@given(items_strategy, st.data())
def test_round_trip_property(items, data) -> None:
    items = list(items)
    if len(items) > 1 and data.draw(st.booleans()):
        target = data.draw(st.integers(0, len(items) - 1))
        items.append(MissionItem(Cmd.DO_JUMP, frame=Frame.MISSION, param1=target, param2=2, param4=0))
    back = loads(qgc_plan.dumps(to_plan(items, home=HOME))).items
    assert all(same(a, b) for a, b in zip(back, items, strict=True))
