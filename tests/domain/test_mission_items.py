import json
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dronedispatch.domain.mission_items import Cmd, Frame, MissionItem, change_speed, return_to_launch, waypoint

finite = st.floats(allow_nan=False, allow_infinity=False, width=32)
param = st.one_of(finite, st.just(math.nan))


def same(a: MissionItem, b: MissionItem) -> bool:
    def eq(x: float, y: float) -> bool:
        return (math.isnan(x) and math.isnan(y)) or x == y

    return (a.command, a.frame, a.autocontinue) == (b.command, b.frame, b.autocontinue) and all(
        eq(x, y)
        for x, y in zip(
            (a.lat, a.lon, a.alt, a.param1, a.param2, a.param3, a.param4),
            (b.lat, b.lon, b.alt, b.param1, b.param2, b.param3, b.param4),
            strict=True,
        )
    )


@given(
    command=st.sampled_from(list(Cmd)),
    frame=st.sampled_from(list(Frame)),
    lat=st.floats(-90, 90),
    lon=st.floats(-180, 180),
    alt=finite,
    params=st.tuples(param, param, param, param),
    autocontinue=st.booleans(),
)
def test_an_item_survives_json_both_ways(command, frame, lat, lon, alt, params, autocontinue) -> None:  # type: ignore[no-untyped-def]
    item = MissionItem(command, lat, lon, alt, *params, frame=frame, autocontinue=autocontinue)
    text = json.dumps(item.to_dict(3), allow_nan=False)  # strict JSON: NaN must have become null
    back = MissionItem.from_dict(json.loads(text))
    assert same(item, back)
    assert json.loads(text)["seq"] == 3


def test_nan_means_unchanged_and_travels_as_null() -> None:
    d = waypoint(37.39, 126.63, 50).to_dict(0)
    assert d["params"][3] is None  # yaw: PX4's "keep heading"
    assert math.isnan(MissionItem.from_dict(d).param4)
    assert return_to_launch().to_dict(5)["params"] == [0.0, 0.0, 0.0, 0.0]
    assert change_speed(8).to_dict(1)["params"] == [1, 8, -1, 0.0]


@pytest.mark.parametrize(
    ("broken", "says"),
    [
        ({"command": 16, "frame": 6, "lat": 1, "lon": 2, "alt": 3}, "'params'"),
        ({"command": 16, "frame": 6, "lat": 1, "lon": 2, "alt": 3, "params": [0, 0]}, "4"),
        ({"command": "go", "frame": 6, "lat": 1, "lon": 2, "alt": 3, "params": [0, 0, 0, 0]}, "go"),
        ({"command": 16, "frame": 6, "lat": None, "lon": 2, "alt": 3, "params": [0, 0, 0, 0]}, "mission item"),
    ],
)
def test_a_broken_stored_item_is_a_clear_value_error(broken: dict, says: str) -> None:
    with pytest.raises(ValueError, match=says):
        MissionItem.from_dict(broken)
