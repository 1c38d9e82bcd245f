"""The simulator's fault port commands that hold a vehicle at a moment of its launch: uploads handled late,
arming refused for a while, and the count of mission transfers ground stations began."""

from __future__ import annotations

import asyncio

from pymavlink.dialects.v20 import common as mavlink

from dronedispatch.sim.fault_port import FaultPort
from dronedispatch.sim.vehicle import SimVehicle

GCS = ("127.0.0.1", 9)


class Wire:
    """Frames the vehicle sends, decoded as the ground station would."""

    def __init__(self, vehicle: SimVehicle) -> None:
        self.parser = mavlink.MAVLink(None)
        self.messages: list[mavlink.MAVLink_message] = []
        vehicle.links[0].sender = lambda data, _addr: self.messages.extend(self.parser.parse_buffer(data) or [])

    def of(self, kind: str) -> list[mavlink.MAVLink_message]:
        return [m for m in self.messages if m.get_type() == kind]


def vehicle() -> tuple[SimVehicle, Wire, FaultPort]:
    v = SimVehicle(0, 1, (37.39, 126.63, 5.0), gcs_peer=GCS, api_peer=None, video_uri="udp://x:1")
    v.tick(5.0, 0.0)  # past the pre-arm boot delay
    return v, Wire(v), FaultPort([v])


def send(v: SimVehicle, msg: mavlink.MAVLink_message) -> None:
    gcs = mavlink.MAVLink(None, srcSystem=255, srcComponent=190)
    v.on_datagram(v.links[0], bytes(msg.pack(gcs)), GCS, 0.0)


def arm(v: SimVehicle) -> None:
    send(v, mavlink.MAVLink_command_long_message(1, 1, 400, 0, 1, 0, 0, 0, 0, 0, 0))


def test_arming_is_refused_as_temporary_while_asked_then_accepted() -> None:
    v, wire, port = vehicle()
    assert port.run(["refuse_arming", "1", "30"]) == "ok"
    arm(v)
    assert [a.result for a in wire.of("COMMAND_ACK")] == [1] and not v.armed  # TEMPORARILY_REJECTED
    assert port.run(["refuse_arming", "1", "0"]) == "ok"
    arm(v)
    assert [a.result for a in wire.of("COMMAND_ACK")] == [1, 0] and v.armed


async def test_uploaded_items_are_handled_late_and_transfers_are_counted() -> None:
    v, wire, port = vehicle()
    assert port.run(["transfers", "1"]) == "uploads=0 downloads=0"
    assert port.run(["slow_mission_items", "1", "0.2"]) == "ok"
    send(v, mavlink.MAVLink_mission_count_message(1, 1, 2, 0))
    assert [r.seq for r in wire.of("MISSION_REQUEST_INT")] == [0]
    item = mavlink.MAVLink_mission_item_int_message(1, 1, 0, 6, 22, 0, 1, 0, 0, 0, 0, 373900000, 1266300000, 30, 0)
    send(v, item)
    assert [r.seq for r in wire.of("MISSION_REQUEST_INT")] == [0], "not handled yet"
    await asyncio.sleep(0.4)
    assert [r.seq for r in wire.of("MISSION_REQUEST_INT")] == [0, 1], "handled late"
    send(v, mavlink.MAVLink_mission_request_list_message(1, 1, 0))
    assert port.run(["transfers", "1"]) == "uploads=1 downloads=1"
    assert port.run(["transfers", "7"]).startswith("error: no vehicle")
    assert port.run(["melt", "1"]).startswith("error: unknown command")
