"""Hostile input straight into a vehicle's message handler (no sockets): nothing may crash or poison state."""

from __future__ import annotations

import logging
import math

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pymavlink.dialects.v20 import common as mavlink

from dronedispatch.sim.params import SPECS
from dronedispatch.sim.vehicle import SimVehicle

COMMANDS = [16, 20, 21, 22, 34, 176, 177, 178, 179, 192, 193, 224, 300, 400, 410, 511, 512, 520, 521, 2502, 2503,
            2504, 31000, 0, 65535]
floats = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True, width=32),
    st.sampled_from([0.0, 1.0, -1.0, 4.0, 21196.0, 37.39, 126.63, 1e9, -1e9]),
)
ints = st.integers(-(2**31), 2**31 - 1)


def _messages(f: mavlink.MAVLink) -> st.SearchStrategy[mavlink.MAVLink_message]:
    cmd = st.sampled_from(COMMANDS)
    target = st.sampled_from([0, 1, 2])
    comp = st.sampled_from([0, 1, 100, 42])
    mtype = st.sampled_from([0, 1, 2, 3, 255])
    return st.one_of(
        st.builds(lambda t, c, k, p: f.command_long_encode(t, c, k, 0, *p), target, comp, cmd,
                  st.tuples(*[floats] * 7)),
        st.builds(lambda t, c, k, fr, p, x, y, z: f.command_int_encode(t, c, fr, k, 0, 0, *p, x, y, z), target, comp,
                  cmd, st.integers(0, 20), st.tuples(*[floats] * 4), ints, ints, floats),
        st.builds(lambda n, t: f.mission_count_encode(1, 1, n, t), st.integers(0, 65535), mtype),
        st.builds(lambda s, fr, c, p, x, y, z, t: f.mission_item_int_encode(1, 1, s, fr, c, 0, 1, *p, x, y, z, t),
                  st.integers(0, 65535), st.integers(0, 20), cmd, st.tuples(*[floats] * 4), ints, ints, floats, mtype),
        st.builds(lambda s, t: f.mission_request_int_encode(1, 1, s, t), st.integers(0, 65535), mtype),
        st.builds(lambda t: f.mission_request_list_encode(1, 1, t), mtype),
        st.builds(lambda t: f.mission_clear_all_encode(1, 1, t), mtype),
        st.builds(lambda s: f.mission_set_current_encode(1, 1, s), st.integers(0, 65535)),
        st.builds(lambda n, v, t: f.param_set_encode(1, 1, n.encode(), v, t),
                  st.sampled_from([s.name for s in SPECS] + ["", "X" * 16]), floats, st.integers(0, 12)),
        st.builds(lambda n, i: f.param_request_read_encode(1, 1, n.encode(), i), st.sampled_from(["NAV_ACC_RAD", "?"]),
                  st.integers(-32768, 32767)),
        st.builds(lambda m: f.set_mode_encode(1, 1, m), st.integers(0, 2**32 - 1)),
        st.builds(lambda a, b: f.timesync_encode(a, b), st.integers(-(2**63), 2**63 - 1),
                  st.integers(-(2**63), 2**63 - 1)),
    )


_F = mavlink.MAVLink(None, 255, 190)


@pytest.mark.filterwarnings("ignore")
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(msgs=st.lists(_messages(_F), min_size=1, max_size=25), mid=st.floats(0.0, 1.0), airborne=st.booleans())
def test_any_message_sequence_keeps_the_vehicle_sane(
    msgs: list[mavlink.MAVLink_message], mid: float, airborne: bool, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.clear()
    v = SimVehicle(0, 1, (37.39, 126.63, 5.0), gcs_peer=("127.0.0.1", 9), api_peer=None, video_uri="udp://x:1")
    link = v.links[0]
    v.tick(5.0, 0.0)  # past the pre-arm boot delay
    if airborne:
        assert v.model.arm()[0]
        v.model.takeoff(20.0)
        for _ in range(30):
            v.tick(0.5, 0.0)
    cut = int(len(msgs) * mid)
    for k, msg in enumerate(msgs):
        data = bytes(msg.pack(_F))
        if k == cut:
            data = data[: len(data) // 2]  # one truncated frame in the stream
        v.on_datagram(link, data, ("127.0.0.1", 9), float(k))
        v.tick(0.5, float(k))
    for _ in range(40):
        v.tick(0.5, 100.0)
    m = v.model
    assert all(math.isfinite(x) for x in (m.lat, m.lon, m.alt_rel, m.vn, m.ve, m.vd, m.battery, m.heading))
    assert -90 <= m.lat <= 90 and -180 <= m.lon <= 180
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], [r.getMessage() for r in caplog.records]
