"""Every MAVLink protocol of the simulator, spoken by a pymavlink ground station over loopback UDP."""

from __future__ import annotations

import asyncio
import math
import struct
from collections.abc import AsyncIterator

import pytest
from pymavlink.dialects.v20 import common as mavlink

from dronedispatch.domain import mission_items as mi
from dronedispatch.domain.fleet import Dock, FleetConfig
from dronedispatch.sim import wire
from dronedispatch.sim.mission_server import opaque_id
from dronedispatch.sim.params import SPECS
from dronedispatch.sim.runner import SimFleet
from tests.sim.gcs import Gcs, eventually, free_port_block

HOME = (37.3918, 126.6393)
ITEMS = [mi.takeoff(HOME[0], HOME[1], 20), mi.waypoint(37.3925, 126.6393, 20), mi.land(HOME[0], HOME[1])]


def _opaque(ack: mavlink.MAVLink_message) -> int:
    buf = bytes(ack.get_msgbuf())
    return struct.unpack_from("<I", buf[10:10 + buf[1]] + bytes(8), 4)[0]


@pytest.fixture
async def env() -> AsyncIterator[tuple[SimFleet, Gcs]]:
    base = free_port_block(6)
    fleet = FleetConfig(
        city="t", docks=[Dock(id="a", name_ko="a", name_en="a", lat=HOME[0], lon=HOME[1], alt=5.0)]
    ).sized(2)
    sim = SimFleet(fleet, speed_factor=5.0, gcs_port=base, vehicle_port_base=base + 1, api_port_base=base + 3,
                   api_target_base=base + 5)
    async with sim:
        gcs = await Gcs.open(base, base + 1)
        gcs.start_heartbeats(0.3)
        await gcs.wait("HEARTBEAT", sysid=1)
        try:
            yield sim, gcs
        finally:
            gcs.close()


async def test_identity_ports_and_boot_state(env: tuple[SimFleet, Gcs]) -> None:
    _sim, gcs = env
    def autopilot(m: mavlink.MAVLink_message) -> bool:
        return m.get_type() == "HEARTBEAT" and m.get_srcComponent() == 1

    hb1 = await gcs.wait(autopilot, sysid=1)
    hb2 = await gcs.wait(autopilot, sysid=2)
    for hb in (hb1, hb2):
        assert (hb.type, hb.autopilot, hb.base_mode, hb.custom_mode) == (2, 12, 29, 0x03040000)
    cam = await gcs.wait(lambda m: m.get_type() == "HEARTBEAT" and m.get_srcComponent() == 100, sysid=1)
    assert cam.type == 30
    names = {m.get_type() for m in gcs.msgs if m.get_srcSystem() == 1}
    assert {"GLOBAL_POSITION_INT", "ATTITUDE", "SYS_STATUS", "EXTENDED_SYS_STATE", "MISSION_CURRENT",
            "VFR_HUD"} <= names
    mc = await gcs.wait_type("MISSION_CURRENT", sysid=1)
    assert mc.total == 65535 and mc.mission_state == 1


async def test_mission_upload_download_opaque_id_and_lost_final_ack(env: tuple[SimFleet, Gcs]) -> None:
    sim, gcs = env
    ack = await gcs.upload(1, ITEMS)
    assert ack.type == 0 and _opaque(ack) == opaque_id(sim.vehicles[0].mission_items) != 0
    assert sim.vehicles[1].mission_items == []
    # the last item again (as if our ACK was lost): ACCEPTED again, same id
    it = ITEMS[-1]
    again = asyncio.ensure_future(gcs.wait_type("MISSION_ACK", sysid=1))
    await asyncio.sleep(0)
    gcs.send(gcs.mav.mission_item_int_encode(1, 1, 2, it.frame, it.command, 0, 1, 0, 0, 0, 0, it.x, it.y, 0, 0))
    assert (await again).type == 0 and _opaque(await again) == _opaque(ack)
    # download
    count = asyncio.ensure_future(gcs.wait_type("MISSION_COUNT", sysid=1))
    await asyncio.sleep(0)
    gcs.send(gcs.mav.mission_request_list_encode(1, 1, 0))
    assert (await count).count == 3
    for seq, want in enumerate(ITEMS):
        got = asyncio.ensure_future(gcs.wait_type("MISSION_ITEM_INT", lambda m, s=seq: m.seq == s, sysid=1))
        await asyncio.sleep(0)
        gcs.send(gcs.mav.mission_request_int_encode(1, 1, seq, 0))
        item = await got
        assert (item.command, item.x, item.y) == (want.command, want.x, want.y)
    # past the end: ERROR
    err = asyncio.ensure_future(gcs.wait_type("MISSION_ACK", sysid=1))
    await asyncio.sleep(0)
    gcs.send(gcs.mav.mission_request_int_encode(1, 1, 9, 0))
    assert (await err).type == 1
    mc = await gcs.wait_type("MISSION_CURRENT", lambda m: m.total == 3, sysid=1)
    assert mc.mission_state == 2


async def test_bad_uploads_keep_the_old_mission(env: tuple[SimFleet, Gcs]) -> None:
    sim, gcs = env
    await gcs.upload(1, ITEMS)
    before = sim.vehicles[0].mission_items
    bad_lat = [mi.takeoff(HOME[0], HOME[1], 20), mi.MissionItem(16, 95.0, 126.0, 20)]
    assert (await gcs.upload(1, bad_lat)).type == 13  # INVALID_PARAM5_X
    assert (await gcs.upload(1, [mi.MissionItem(31000, 37, 127, 1)])).type == 3  # UNSUPPORTED
    assert (await gcs.upload(1, [mi.MissionItem(16, 37, 127, 1, frame=1)])).type == 2  # UNSUPPORTED_FRAME
    jump_past_end = [mi.waypoint(37, 127, 10), mi.MissionItem(177, param1=5, param2=1, frame=2)]
    assert (await gcs.upload(1, jump_past_end)).type != 0
    assert sim.vehicles[0].mission_items == before
    # an item when no transfer runs: ERROR plus a STATUSTEXT saying so
    err = asyncio.ensure_future(gcs.wait_type("MISSION_ACK", sysid=1))
    text = asyncio.ensure_future(gcs.wait_type("STATUSTEXT", lambda m: "No transfer" in m.text, sysid=1))
    await asyncio.sleep(0)
    gcs.send(gcs.mav.mission_item_int_encode(1, 1, 0, 6, 16, 0, 1, 0, 0, 0, 0, 1, 1, 1, 0))
    assert (await err).type == 1
    await text


async def test_upload_rerequests_ignores_wrong_seq_and_times_out(env: tuple[SimFleet, Gcs]) -> None:
    sim, gcs = env
    gcs.send(gcs.mav.mission_count_encode(1, 1, 2, 0))
    await gcs.wait_type("MISSION_REQUEST_INT", lambda m: m.seq == 0, sysid=1)
    # wrong sequence number: ignored, seq 0 requested again
    gcs.send(gcs.mav.mission_item_int_encode(1, 1, 1, 6, 16, 0, 1, 0, 0, 0, 0, 1, 1, 1, 0))
    await gcs.wait_type("MISSION_REQUEST_INT", lambda m: m.seq == 0, sysid=1)
    # repeated COUNT before any item: seq 0 re-requested
    gcs.send(gcs.mav.mission_count_encode(1, 1, 5, 0))
    await gcs.wait_type("MISSION_REQUEST_INT", lambda m: m.seq == 0, sysid=1)
    it = ITEMS[0]
    gcs.send(gcs.mav.mission_item_int_encode(1, 1, 0, it.frame, it.command, 0, 1, 0, 0, 0, 0, it.x, it.y, 20, 0))
    await gcs.wait_type("MISSION_REQUEST_INT", lambda m: m.seq == 1, sysid=1)
    busy = asyncio.ensure_future(gcs.wait_type("MISSION_ACK", sysid=1))
    await asyncio.sleep(0)
    gcs.send(gcs.mav.mission_count_encode(1, 1, 5, 0))
    assert (await busy).type == 1
    await gcs.wait_type("STATUSTEXT", lambda m: m.text == "Operation timeout", within=15, sysid=1)
    assert sim.vehicles[0].mission_items == []


async def test_fence_and_rally_and_clear_all(env: tuple[SimFleet, Gcs]) -> None:
    sim, gcs = env
    fence = [mi.MissionItem(5003, HOME[0], HOME[1], 0, param1=200.0)]
    rally = [mi.MissionItem(5100, 37.392, 126.64, 30)]
    assert (await gcs.upload(1, fence, mission_type=1)).type == 0
    assert (await gcs.upload(1, rally, mission_type=2)).type == 0
    assert (await gcs.upload(1, [mi.MissionItem(16, 37, 127, 1)], mission_type=1)).type == 3
    m = sim.vehicles[0].model
    assert m.store.plans[1][0].param1 == 200.0 and len(m.store.plans[2]) == 1
    ack = asyncio.ensure_future(gcs.wait_type("MISSION_ACK", sysid=1))
    await asyncio.sleep(0)
    gcs.send(gcs.mav.mission_clear_all_encode(1, 1, 255))
    assert (await ack).type == 0
    assert m.store.plans == {0: [], 1: [], 2: []}


async def test_commands_and_clear_denials(env: tuple[SimFleet, Gcs]) -> None:
    sim, gcs = env
    # mission start with no mission: DENIED with a reason
    assert (await gcs.command(1, 300)).result == 2
    assert (await gcs.command(1, 31337)).result == 3  # unknown command
    assert (await gcs.command(1, 176, 1, 99, 0)).result == 2  # unknown custom mode
    assert (await gcs.command(1, 176, 1, 4, 4)).result == 1  # mission mode without a mission
    assert (await gcs.command(1, 193, 0)).result == 2  # pause on the ground
    await eventually(lambda: sim.vehicles[0].model.prearm_ok[0], 20)
    assert (await gcs.command(1, 400, 1)).result == 0
    assert (await gcs.command(1, 22, 0, 0, 0, math.nan, math.nan, math.nan, 5.0 + 15)).result == 0
    await eventually(lambda: sim.vehicles[0].mode == "AUTO.LOITER" and sim.vehicles[0].alt_rel > 14, 30)
    assert (await gcs.command(1, 400, 0)).result == 2  # disarm in the air
    ack = await gcs.command_int(1, 192, 6, -1, 1, 0, math.nan, round(37.3921e7), round(126.6393e7), 15)
    assert ack.result == 0
    await eventually(lambda: abs(sim.vehicles[0].lat - 37.3921) < 1e-5, 30)
    assert (await gcs.command_int(1, 34, 6, 20, 3, 0, 0, round(HOME[0] * 1e7), round(HOME[1] * 1e7), 15)).result == 0
    await gcs.wait(lambda m: m.get_type() == "HEARTBEAT" and m.custom_mode == (3 << 16 | 1 << 24), sysid=1)
    assert (await gcs.command(1, 20)).result == 0
    await gcs.wait(lambda m: m.get_type() == "HEARTBEAT" and m.custom_mode == 0x05040000, sysid=1)
    await eventually(lambda: not sim.vehicles[0].armed, 60)
    assert sim.vehicles[0].landed_state == 1


async def test_arm_denied_before_ready_with_statustext() -> None:
    base = free_port_block(3)
    fleet = FleetConfig(city="t", docks=[Dock(id="a", name_ko="a", name_en="a", lat=HOME[0], lon=HOME[1])]).sized(1)
    async with SimFleet(fleet, gcs_port=base, vehicle_port_base=base + 1, api_port_base=None) as sim:
        gcs = await Gcs.open(base, base + 1)
        try:
            gcs.send(gcs.mav.heartbeat_encode(6, 8, 0, 0, 4))
            text = asyncio.ensure_future(gcs.wait_type("STATUSTEXT", lambda m: "Arming denied" in m.text))
            assert (await gcs.command(1, 400, 1)).result == 1
            await text
            assert not sim.vehicles[0].armed
        finally:
            gcs.close()


async def test_mission_flight_reports_progress(env: tuple[SimFleet, Gcs]) -> None:
    sim, gcs = env
    await gcs.upload(1, ITEMS)
    await eventually(lambda: sim.vehicles[0].model.prearm_ok[0], 20)
    assert (await gcs.command(1, 300, 0, 2)).result == 0
    for seq in range(3):
        await gcs.wait_type("MISSION_ITEM_REACHED", lambda m, s=seq: m.seq == s, within=60, sysid=1)
    done = await gcs.wait_type("MISSION_CURRENT", lambda m: m.mission_state == 5, within=30, sysid=1)
    assert done.seq == 2
    await gcs.wait_type("EXTENDED_SYS_STATE", lambda m: m.landed_state == 1, within=30, sysid=1)
    # after the last item only that item is repeated (PX4 repeats its latest MISSION_ITEM_REACHED)
    await gcs.wait_type("MISSION_ITEM_REACHED", lambda m: m.seq == 2, within=10, sysid=1)
    reached = [m.seq for m in gcs.msgs if m.get_type() == "MISSION_ITEM_REACHED" and m.get_srcSystem() == 1]
    last = reached[reached.index(2):]
    assert len(last) >= 2 and set(last) == {2}
    assert reached == sorted(reached)


async def test_params_list_read_set(env: tuple[SimFleet, Gcs]) -> None:
    sim, gcs = env
    gcs.send(gcs.mav.param_request_list_encode(1, 1))
    first = await gcs.wait_type("PARAM_VALUE", sysid=1)
    assert first.param_count == len(SPECS)
    setv = asyncio.ensure_future(gcs.wait_type("PARAM_VALUE", lambda m: m.param_id == "RTL_RETURN_ALT"
                                               and m.param_value == 45.0, sysid=1))
    await asyncio.sleep(0)
    gcs.send(gcs.mav.param_set_encode(1, 1, b"RTL_RETURN_ALT", 45.0, 9))
    await setv
    assert sim.vehicles[0].model.params["RTL_RETURN_ALT"] == 45.0
    raw = struct.unpack("<f", struct.pack("<i", 2))[0]  # INT32 sent bytewise
    gcs.send(gcs.mav.param_set_encode(1, 1, b"NAV_DLL_ACT", raw, 6))
    await eventually(lambda: sim.vehicles[0].model.params["NAV_DLL_ACT"] == 2, 5)
    text = asyncio.ensure_future(gcs.wait_type("STATUSTEXT", lambda m: "Unknown parameter" in m.text, sysid=1))
    await asyncio.sleep(0)
    gcs.send(gcs.mav.param_request_read_encode(1, 1, b"NO_SUCH", -1))
    await text


async def test_message_interval_request_message_timesync_home(env: tuple[SimFleet, Gcs]) -> None:
    _sim, gcs = env
    version = asyncio.ensure_future(gcs.wait_type("AUTOPILOT_VERSION", sysid=1))
    assert (await gcs.command(1, 512, 148)).result == 0
    await version
    home_f = asyncio.ensure_future(gcs.wait_type("HOME_POSITION", sysid=1))
    assert (await gcs.command(1, 410)).result == 0
    home = await home_f
    assert home.latitude == round(HOME[0] * 1e7)
    assert (await gcs.command(1, 512, 99999)).result == 3
    assert (await gcs.command(1, 511, 33, -1)).result == 0  # GLOBAL_POSITION_INT off
    await asyncio.sleep(0.3)
    n = len(gcs.msgs)
    await asyncio.sleep(0.5)
    assert not any(m.get_type() == "GLOBAL_POSITION_INT" and m.get_srcSystem() == 1 for m in gcs.msgs[n:])
    ts = asyncio.ensure_future(gcs.wait_type("TIMESYNC", lambda m: m.ts1 == 12345, sysid=1))
    await asyncio.sleep(0)
    gcs.send(gcs.mav.timesync_encode(0, 12345))
    assert (await ts).tc1 > 0


async def test_camera_protocol(env: tuple[SimFleet, Gcs]) -> None:
    sim, gcs = env
    info = asyncio.ensure_future(gcs.wait_type("CAMERA_INFORMATION", sysid=1))
    assert (await gcs.command(1, 512, 259, compid=100)).result == 0
    assert (await info).get_srcComponent() == 100
    vsi = asyncio.ensure_future(gcs.wait_type("VIDEO_STREAM_INFORMATION", sysid=1))
    assert (await gcs.command(1, 512, 269, compid=100)).result == 0
    stream = await vsi
    assert stream.uri == f"udp://127.0.0.1:{sim.video_port_base}" and stream.flags == 0
    assert (await gcs.command(1, 2502, 0, compid=100)).result == 0
    assert sim.vehicles[0].camera.streaming
    assert (await gcs.command(1, 2503, 0, compid=100)).result == 0
    assert not sim.vehicles[0].camera.streaming


async def test_malformed_input_does_not_hurt(env: tuple[SimFleet, Gcs]) -> None:
    sim, gcs = env
    gcs.send_raw(b"\xfd\x09garbage")
    gcs.send_raw(bytes(range(256)) * 4)
    frame = bytearray(gcs.mav.command_long_encode(1, 1, 400, 0, 1, 0, 0, 0, 0, 0, 0).pack(gcs.mav))
    frame[-1] ^= 0xFF  # bad CRC
    gcs.send_raw(bytes(frame))
    gcs.send_raw(b"")
    gcs.send(gcs.mav.command_long_encode(1, 1, 400, 0, math.nan, math.nan, math.nan, 0, 0, 0, 0))
    assert (await gcs.command(1, 31337)).result == 3  # still answering
    assert not sim.vehicles[0].armed
    assert sim.vehicles[0].links[0].bad_packets > 0
    # a command for another system id on this vehicle's port is ignored
    with pytest.raises(TimeoutError):
        await gcs.command(2, 31337, within=1.0)


async def test_link_faults_loss_and_drop(env: tuple[SimFleet, Gcs]) -> None:
    sim, gcs = env
    v = sim.vehicles[0]
    v.drop_link(True)
    await asyncio.sleep(0.3)
    n = len(gcs.msgs)
    await asyncio.sleep(0.5)
    assert not any(m.get_srcSystem() == 1 for m in gcs.msgs[n:])
    assert any(m.get_srcSystem() == 2 for m in gcs.msgs[n:])
    v.drop_link(False)
    v.set_latency(0.05)
    v.set_link_loss(0.3)
    # the vehicle re-requests lost items; a lost COUNT or final ACK makes this simple client retry
    for _ in range(10):
        try:
            ack = await gcs.upload(1, ITEMS, within=3)
        except TimeoutError:
            if len(v.mission_items) == 3:
                break  # stored; only the ACK was lost
            continue
        assert ack.type == 0
        break
    assert len(v.mission_items) == 3


class _Sink(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.packets: list[bytes] = []

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.packets.append(data)


async def test_video_streaming_sends_rtp_only_while_on() -> None:
    base = free_port_block(4)
    fleet = FleetConfig(city="t", docks=[Dock(id="a", name_ko="a", name_en="a", lat=HOME[0], lon=HOME[1])]).sized(1)
    loop = asyncio.get_running_loop()
    transport, sink = await loop.create_datagram_endpoint(_Sink, local_addr=("127.0.0.1", base + 3))
    try:
        async with SimFleet(fleet, gcs_port=base, vehicle_port_base=base + 1, api_port_base=None, video=True,
                            video_port_base=base + 3) as sim:
            gcs = await Gcs.open(base, base + 1)
            try:
                await asyncio.sleep(0.3)
                assert sink.packets == []
                assert (await gcs.command(1, 2502, 1, compid=100)).result == 0
                await eventually(lambda: len(sink.packets) > 5, 30)
                assert sink.packets[0][0] >> 6 == 2  # RTP version 2
                assert (await gcs.command(1, 2503, 1, compid=100)).result == 0
                await eventually(lambda: not sim.vehicles[0].camera.streaming, 5)
            finally:
                gcs.close()
    finally:
        transport.close()


async def test_run_sitl_logs_each_vehicle_and_stops_on_cancel(caplog: pytest.LogCaptureFixture) -> None:
    from dronedispatch.sim.runner import SimFleet, run_sitl

    base = free_port_block(7)
    fleet = FleetConfig(city="t", docks=[Dock(id="a", name_ko="a", name_en="a", lat=HOME[0], lon=HOME[1])]).sized(2)
    gcs = await Gcs.open(base)
    caplog.set_level("INFO", logger="dronedispatch.sim.runner")
    sim = SimFleet(fleet, gcs_port=base, vehicle_port_base=base + 1, api_port_base=base + 3, api_target_base=base + 5)
    task = asyncio.ensure_future(run_sitl(sim))
    try:
        await gcs.wait("HEARTBEAT", sysid=2)
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        gcs.close()
    lines = [r.getMessage() for r in caplog.records if "sysid" in r.getMessage()]
    assert len(lines) == 2 and f"127.0.0.1:{base + 2}" in lines[1]
    assert any("simulator stopped" in r.getMessage() for r in caplog.records)


async def test_signing_vehicle_signs_and_drops_unsigned_commands() -> None:
    key = bytes(range(100, 132))
    base = free_port_block(3)
    fleet = FleetConfig(city="t", docks=[Dock(id="a", name_ko="a", name_en="a", lat=HOME[0], lon=HOME[1])]).sized(1)
    async with SimFleet(fleet, gcs_port=base, vehicle_port_base=base + 1, api_port_base=None,
                        signing_keys={1: key}) as sim:
        gcs = await Gcs.open(base, base + 1)
        try:
            # without the key we can read the vehicle (signatures are only checked with a key), but it ignores us
            hb = await gcs.wait("HEARTBEAT", sysid=1)
            assert bytes(hb.get_msgbuf())[2] & 0x01  # incompat flag: signed
            gcs.send(gcs.mav.command_long_encode(1, 1, 31337, 0, 0, 0, 0, 0, 0, 0, 0))
            await asyncio.sleep(0.3)
            assert not any(m.get_type() == "COMMAND_ACK" for m in gcs.msgs)
            assert sim.vehicles[0].links[0].bad_packets >= 1
            # with the key: signed both ways
            for mav in (gcs.mav, gcs.parser):
                mav.signing.secret_key = key
                mav.signing.timestamp = wire.signing_timestamp()
            gcs.mav.signing.sign_outgoing = True
            await gcs.wait("HEARTBEAT", sysid=1)
            assert (await gcs.command(1, 31337)).result == 3
            bad = asyncio.ensure_future(gcs.wait("BAD_DATA"))
            await asyncio.sleep(0.3)
            assert not bad.done()
            bad.cancel()
        finally:
            gcs.close()
