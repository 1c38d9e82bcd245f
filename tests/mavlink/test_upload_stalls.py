"""Mission uploads on a slow host or link: a backlog on the way back, an outage the vehicle times out in.

The vehicle side here is the simulator's own mission server (the PX4 behaviour the soak runs
against), driven in virtual time through the test harness; the ground station's intake is a real
UDP endpoint under a busy event loop.
"""

from __future__ import annotations

import asyncio
import random
import socket
from typing import Any

from pymavlink.dialects.v20 import common as mav

from dronedispatch.domain.mission_items import MissionItem, takeoff, waypoint
from dronedispatch.mavlink.mission_protocol import MissionUpload, mission_checksum
from dronedispatch.mavlink.transport import EndpointSpec, UdpEndpoint
from dronedispatch.sim.mission_server import MissionServer, MissionStore
from tests.mavlink.harness import Channel, run_pair
from tests.mavlink.px4_model import ack


def plan(n: int) -> list[MissionItem]:
    items = [takeoff(37.3918, 126.6393, 30.0)]
    items += [waypoint(37.3918 + i * 1e-4, 126.6393 + i * 2e-4, 40.0 + i % 7) for i in range(1, n)]
    return items[:n]


class SimVehicleSide:
    """The simulator's MissionServer behind the harness's vehicle interface."""

    def __init__(self) -> None:
        self.store = MissionStore()
        self.server = MissionServer(self.store, sysid=1)
        self.peer = (255, 190)

    @property
    def deadline(self) -> float | None:
        d = self.server.deadline
        return None if d == float("inf") else d

    def _out(self, out: list[Any]) -> list[Any]:
        msgs = []
        for o in out:
            if isinstance(o, tuple):  # MISSION_ACK (target, component, result, type, opaque_id)
                msgs.append(ack(o[1][2], o[1][3], o[1][4]))
            else:
                msgs.append(o)
        return msgs

    def receive(self, msg: Any, now: float) -> list[Any]:
        t = msg.get_type()
        if t == "MISSION_COUNT":
            return self._out(self.server.on_count(msg.count, msg.mission_type, self.peer, now))
        if t == "MISSION_ITEM_INT":
            return self._out(self.server.on_item(msg, self.peer, now))
        return []

    def on_timeout(self, now: float) -> list[Any]:
        return self._out(self.server.poll(now))

    def mission_current(self) -> Any:
        items = self.store.plans[0]
        m = mav.MAVLink_mission_current_message(0, len(items) or 65535, 2 if items else 1, 2)
        m.mission_id = self.store.ids[0]
        return m


def _upload(n: int, channel: Channel) -> tuple[MissionUpload, SimVehicleSide, list[str]]:
    vehicle = SimVehicleSide()
    texts: list[str] = []
    tx = MissionUpload(1, 1, plan(n))
    orig = vehicle.server._text

    def text(severity: int, said: str) -> None:  # every STATUSTEXT, also those the link would not send
        texts.append(said)
        orig(severity, said)

    vehicle.server._text = text  # type: ignore[method-assign,assignment]
    run_pair(tx, vehicle, channel, until=120.0)
    return tx, vehicle, texts


def test_stale_request_is_not_answered() -> None:
    tx = MissionUpload(1, 1, plan(3))
    tx.start(0.0)
    assert [m.seq for m in tx.receive(mav.MAVLink_mission_request_int_message(255, 190, 0, 0), 0.01)] == [0]
    assert [m.seq for m in tx.receive(mav.MAVLink_mission_request_int_message(255, 190, 1, 0), 0.02)] == [1]
    # a delayed re-request of item 0: the vehicle has it (it asked for 1 since)
    assert tx.receive(mav.MAVLink_mission_request_int_message(255, 190, 0, 0), 0.03) == []
    assert tx.unexpected == 1 and tx.last_sent_seq == 1
    # a repeated request for the item last asked for means ours was lost: answered again
    assert [m.seq for m in tx.receive(mav.MAVLink_mission_request_int_message(255, 190, 1, 0), 0.3)] == [1]


def test_upload_survives_a_backlog_on_the_way_back() -> None:
    """What the vehicle says reaches us 7 s late for a while (longer than PX4's 5 s transfer timeout),
    as on a host too busy to read its socket. Our answers to its re-requests keep the transfer alive
    (PX4 counts any item as a sign of life), and the stale re-requests in the backlog are not answered."""
    items = plan(20)
    tx, vehicle, texts = _upload(20, Channel(random.Random(1), delay=0.005, stalls=((0.05, 7.05),)))
    assert tx.error is None, (str(tx.error), texts)
    assert tx.result == mission_checksum(items) == vehicle.store.ids[0]
    assert "IGN MISSION_ITEM: No transfer" not in texts and "Operation timeout" not in texts


def test_upload_starts_again_after_the_vehicle_dropped_the_transfer() -> None:
    """A 6 s outage mid-upload: PX4 gives up after 5 s ("Operation timeout") and answers our next item
    with ERROR "No transfer". The upload starts again from MISSION_COUNT and completes, once."""
    items = plan(20)
    tx, vehicle, texts = _upload(20, Channel(random.Random(2), delay=0.005, outages=((0.05, 6.0),)))
    assert "Operation timeout" in texts and "IGN MISSION_ITEM: No transfer" in texts  # the failure happened
    assert tx.error is None, (str(tx.error), texts)
    assert tx.restarts == 1
    assert tx.result == mission_checksum(items) == vehicle.store.ids[0]
    assert vehicle.server.uploads_started == 2


def test_a_vehicle_that_keeps_refusing_still_fails_the_upload() -> None:
    """Starting again is bounded: a vehicle answering every item with ERROR fails the upload with it."""
    tx = MissionUpload(1, 1, plan(3))
    tx.start(0.0)
    now = 0.0
    while not tx.done:
        now += 0.01
        out = tx.receive(mav.MAVLink_mission_request_int_message(255, 190, 0, 0), now)
        assert out and out[0].get_type() == "MISSION_ITEM_INT"
        tx.receive(ack(1, 0), now + 0.005)
        assert tx.deadline is not None
        now = tx.deadline
        tx.on_timeout(now)
    assert tx.restarts == tx.max_restarts and tx.error is not None and tx.error.ack_result == 1  # type: ignore[attr-defined]
    assert now < 10.0


async def test_udp_intake_drains_a_burst_in_one_loop_pass() -> None:
    """Datagrams waiting in the socket are read together, not one per pass of the event loop: a loop
    kept busy by other work must not turn the socket's queue into seconds of delay."""
    got: list[bytes] = []
    ep = UdpEndpoint(EndpointSpec("udpin", "127.0.0.1", 0), lambda _ep, data, _peer: got.append(data))
    await ep.open()
    try:
        addr = ep.local_address
        assert addr is not None
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            for i in range(200):
                s.sendto(i.to_bytes(2, "big"), addr)
        loop = asyncio.get_running_loop()
        busy = 0

        def keep_busy() -> None:  # another ready callback every pass, as a working service has
            nonlocal busy
            busy += 1
            if busy < 50:
                loop.call_soon(keep_busy)

        loop.call_soon(keep_busy)
        for _ in range(5):
            await asyncio.sleep(0)
        assert len(got) == 200
        assert [int.from_bytes(d, "big") for d in got] == list(range(200))
    finally:
        await ep.close()
