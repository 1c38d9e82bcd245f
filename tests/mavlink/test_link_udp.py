"""The link shell over real loopback UDP against a small pymavlink-based vehicle.

These cover what the simulator tests cannot stage easily: garbage on the socket, a vehicle that
goes silent and comes back, signing with an independent implementation (pymavlink's), and
denial text. Timeouts are generous; nothing asserts a duration.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Callable
from typing import Any

import pytest

from dronedispatch.domain.mission_items import takeoff, waypoint
from dronedispatch.mavlink.errors import CommandDenied, CommandTimeout, LinkFenced, VehicleNotFound
from dronedispatch.mavlink.events import StateChanged, VehicleDiscovered, VehicleLost, VehicleRecovered
from dronedispatch.mavlink.link import MavlinkLink
from dronedispatch.mavlink.transport import parse_url
from tests.fixtures.services import free_udp_port
from tests.mavlink.udp_vehicle import UdpVehicle

KEY = bytes(range(100, 132))


async def until(predicate: Callable[[], bool], within: float = 10.0) -> None:
    """Wait for a condition on counters and state that have no event of their own."""
    async with asyncio.timeout(within):
        while not predicate():  # noqa: ASYNC110 (counters have no event to await)
            await asyncio.sleep(0.02)


def test_connection_strings() -> None:
    assert parse_url("udpin:127.0.0.1:14550").kind == "udpin"
    assert parse_url("udpout:127.0.0.1:14540").port == 14540
    assert parse_url("serial:/dev/ttyUSB0:57600").host == "/dev/ttyUSB0"
    for bad in ("udpin:127.0.0.1", "ftp:1:2", "tcp:host:notaport"):
        with pytest.raises(ValueError, match=r"connection string|port"):
            parse_url(bad)


async def test_discover_state_upload_and_commands() -> None:
    port = free_udp_port()
    events: list[object] = []
    async with MavlinkLink(f"udpin:127.0.0.1:{port}") as link:
        link.add_listener(events.append)
        veh = UdpVehicle(7, ("127.0.0.1", port))
        await veh.start()
        try:
            v = await link.wait_vehicle(7, 10)
            assert any(isinstance(e, VehicleDiscovered) for e in events)
            await until(lambda: v.state.lat is not None and v.state.landed_state == 1)
            assert v.state.mode == "AUTO.LOITER" and v.state.autopilot == 12
            items = [takeoff(37.39, 126.63, 30)] + [waypoint(37.39 + i * 1e-4, 126.63, 40) for i in range(1, 30)]
            opaque = await v.mission.upload(items)
            assert opaque == veh.model.opaque_id and len(veh.model.plan) == 30
            assert await v.command.arm() == 0
            await until(lambda: v.state.armed)
            assert any(isinstance(e, StateChanged) and "armed" in e.changed for e in events)
            veh.results[176] = 2
            with pytest.raises(CommandDenied) as denied:
                await v.command.set_mode("AUTO.RTL")
            assert denied.value.result == 2
            last = veh.commands[-1]
            assert (last.param1, last.param2, last.param3) == (1, 4, 5)  # custom mode, AUTO, RTL
            await v.command.reposition(37.4, 126.64, 80.0)
            assert veh.commands[-1].get_type() == "COMMAND_INT" and veh.commands[-1].x == 374000000
        finally:
            await veh.stop()
        with pytest.raises(VehicleNotFound):
            await link.wait_vehicle(99, 0.2)


async def test_garbage_is_counted_and_lost_vehicle_recovers() -> None:
    port = free_udp_port()
    events: list[object] = []
    async with MavlinkLink(f"udpin:127.0.0.1:{port}", lost_after_s=1.0) as link:
        link.add_listener(events.append)
        veh = UdpVehicle(3, ("127.0.0.1", port))
        await veh.start()
        try:
            v = await link.wait_vehicle(3, 10)
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                s.sendto(b"\xfd\x09not mavlink at all", ("127.0.0.1", port))
                s.sendto(b"\x00" * 40, ("127.0.0.1", port))
                # A well-formed header with a broken CRC.
                s.sendto(bytes([0xFD, 9, 0, 0, 0, 3, 1, 0, 0, 0]) + bytes(11), ("127.0.0.1", port))
            await until(lambda: link.malformed >= 2)
            veh.silent = True
            await until(lambda: v.health.lost)
            assert any(isinstance(e, VehicleLost) for e in events)
            veh.silent = False
            await until(lambda: not v.health.lost)
            assert any(isinstance(e, VehicleRecovered) for e in events)
            # Mission state is read again from the vehicle after recovery.
            await until(lambda: v.state.mission_state != 0)
        finally:
            await veh.stop()


async def test_signed_vehicle_and_rejections() -> None:
    port = free_udp_port()
    # Our link holds the key: signed traffic both ways works.
    async with MavlinkLink(f"udpin:127.0.0.1:{port}", signing_keys={5: KEY}) as link:
        veh = UdpVehicle(5, ("127.0.0.1", port), key=KEY)
        await veh.start()
        try:
            v = await link.wait_vehicle(5, 10)
            assert await v.command.arm() == 0
            assert veh.mav.signing.goodsig_count > 0 and veh.mav.signing.reject_count == 0
        finally:
            await veh.stop()

    # Without the key our commands are unsigned: the signed vehicle ignores them.
    port = free_udp_port()
    async with MavlinkLink(f"udpin:127.0.0.1:{port}") as link:
        veh = UdpVehicle(5, ("127.0.0.1", port), key=KEY)
        await veh.start()
        try:
            v = await link.wait_vehicle(5, 10)
            with pytest.raises(CommandTimeout):
                await v.command.arm()
            assert veh.commands == [] and veh.mav.signing.reject_count > 0
        finally:
            await veh.stop()

    # We expect a key but the vehicle signs with another one: everything from it is dropped.
    port = free_udp_port()
    async with MavlinkLink(f"udpin:127.0.0.1:{port}", signing_keys={5: KEY}) as link:
        veh = UdpVehicle(5, ("127.0.0.1", port), key=bytes(32))
        await veh.start()
        try:
            with pytest.raises(VehicleNotFound):
                await link.wait_vehicle(5, 1.5)
            assert link.unknown_sysid_frames > 0
        finally:
            await veh.stop()


async def answer_commands(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    enc: Any,
    seen: list[Any] | None = None,
    heartbeat: bytes | None = None,
) -> None:
    """A vehicle at the far end of a stream: ACCEPTED for every COMMAND_LONG, and ``heartbeat``
    back for each of ours, until the connection closes."""
    from pymavlink.dialects.v20 import common as mav

    rx = mav.MAVLink(None)
    while data := await reader.read(4096):
        for m in rx.parse_buffer(data) or []:
            if seen is not None:
                seen.append(m)
            if m.get_type() == "COMMAND_LONG":
                writer.write(mav.MAVLink_command_ack_message(m.command, 0, 0, 0, 255, 190).pack(enc))
            elif m.get_type() == "HEARTBEAT" and heartbeat is not None:
                writer.write(heartbeat)
        await writer.drain()


async def test_tcp_stream_split_anywhere_and_commands_answered() -> None:
    from pymavlink.dialects.v20 import common as mav

    enc = mav.MAVLink(None, srcSystem=9, srcComponent=1)
    received: list[Any] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        hb = mav.MAVLink_heartbeat_message(2, 12, 29, 0x03040000, 3, 3).pack(enc)
        for _ in range(3):
            # one frame cut in two writes, as a serial or TCP stream may deliver it
            writer.write(hb[:5])
            await writer.drain()
            await asyncio.sleep(0.01)
            writer.write(hb[5:])
            await writer.drain()
        await answer_commands(reader, writer, enc, received)

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        async with MavlinkLink(f"tcp:127.0.0.1:{port}") as link:
            v = await link.wait_vehicle(9, 10)
            assert v.state.mode == "AUTO.LOITER"
            assert await v.command.set_message_interval(33, 10.0) == 0
            cmd = next(m for m in received if m.get_type() == "COMMAND_LONG")
            assert (cmd.command, cmd.param1, cmd.param2) == (511, 33, 100000.0)
            await until(lambda: any(m.get_type() == "HEARTBEAT" for m in received))
    finally:
        server.close()


async def test_serial_link_over_a_pseudo_terminal() -> None:
    import os
    import tty

    from pymavlink.dialects.v20 import common as mav

    master, slave = os.openpty()
    tty.setraw(slave)
    path = os.ttyname(slave)
    enc = mav.MAVLink(None, srcSystem=4, srcComponent=1)
    rx = mav.MAVLink(None)
    loop = asyncio.get_running_loop()
    got: list[Any] = []

    def readable() -> None:
        for m in rx.parse_buffer(os.read(master, 4096)) or []:
            got.append(m)
            if m.get_type() == "COMMAND_LONG":
                os.write(master, mav.MAVLink_command_ack_message(m.command, 0, 0, 0, 255, 190).pack(enc))

    loop.add_reader(master, readable)
    try:
        async with MavlinkLink(f"serial:{path}:57600") as link:
            os.write(master, mav.MAVLink_heartbeat_message(2, 12, 29, 0x04040000, 3, 3).pack(enc))
            v = await link.wait_vehicle(4, 10)
            assert v.state.mode == "AUTO.MISSION"
            assert await v.command.arm() == 0
            await until(lambda: any(m.get_type() == "HEARTBEAT" for m in got))  # our 1 Hz GCS heartbeat
    finally:
        loop.remove_reader(master)
        os.close(master)
        os.close(slave)


async def test_tcp_reconnects_and_a_frame_cut_by_the_drop_is_not_joined_to_the_next_connection() -> None:
    from pymavlink.dialects.v20 import common as mav

    enc = mav.MAVLink(None, srcSystem=9, srcComponent=1)
    connections = 0

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        hb = mav.MAVLink_heartbeat_message(2, 12, 29, 0x03040000 if connections == 1 else 0x04040000, 3, 3).pack(enc)
        if connections == 1:
            writer.write(hb + hb[:9])  # a whole heartbeat, then the vehicle drops mid-frame
            await writer.drain()
            writer.close()
            return
        writer.write(hb)
        await answer_commands(reader, writer, enc, heartbeat=hb)

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        async with MavlinkLink(f"tcp:127.0.0.1:{port}") as link:
            v = await link.wait_vehicle(9, 10)
            assert v.state.mode == "AUTO.LOITER"
            await until(lambda: v.state.mode == "AUTO.MISSION")  # heard again on the second connection
            ep = link.endpoints[0]
            assert connections == 2 and getattr(ep, "connections", 0) == 2
            assert link.malformed == 0 and v.health.malformed == 0  # the cut frame was dropped, not spliced
            assert await v.command.arm() == 0
    finally:
        server.close()


async def test_serial_device_unplugged_and_plugged_back_in(tmp_path: Any) -> None:
    """A USB radio goes away and comes back under the same name (udev's /dev/serial/by-id link)."""
    import os
    import tty

    from pymavlink.dialects.v20 import common as mav

    radio = tmp_path / "radio"
    loop = asyncio.get_running_loop()
    enc = mav.MAVLink(None, srcSystem=4, srcComponent=1)
    commands: list[int] = []

    def plug_in() -> tuple[int, int]:
        master, slave = os.openpty()
        tty.setraw(slave)
        radio.unlink(missing_ok=True)
        radio.symlink_to(os.ttyname(slave))
        rx = mav.MAVLink(None)

        def readable() -> None:
            try:
                data = os.read(master, 4096)
            except OSError:
                return
            for m in rx.parse_buffer(data) or []:
                if m.get_type() == "COMMAND_LONG":
                    commands.append(m.command)
                    os.write(master, mav.MAVLink_command_ack_message(m.command, 0, 0, 0, 255, 190).pack(enc))

        loop.add_reader(master, readable)
        return master, slave

    def unplug(master: int, slave: int) -> None:
        loop.remove_reader(master)
        os.close(slave)
        os.close(master)
        radio.unlink()

    master, slave = plug_in()
    try:
        async with MavlinkLink(f"serial:{radio}:57600") as link:
            ep = link.endpoints[0]
            os.write(master, mav.MAVLink_heartbeat_message(2, 12, 29, 0x04040000, 3, 3).pack(enc))
            v = await link.wait_vehicle(4, 10)
            unplug(master, slave)
            await until(lambda: not ep.connected.is_set())  # type: ignore[attr-defined]
            await asyncio.sleep(1.5)  # a reopen attempt or two while the device is missing
            master, slave = plug_in()
            await until(lambda: ep.connected.is_set())  # type: ignore[attr-defined]
            assert getattr(ep, "connections", 0) == 2
            os.write(master, mav.MAVLink_heartbeat_message(2, 12, 157, 0x04040000, 4, 3).pack(enc))
            await until(lambda: v.state.armed)
            assert await v.command.set_message_interval(33, 5.0) == 0
            assert commands[-1] == 511
    finally:
        with contextlib.suppress(OSError):
            unplug(master, slave)


async def test_a_fenced_link_sends_nothing_until_its_fence_opens() -> None:
    """A node that lost its lease must not send one more byte: no command, no heartbeat."""
    port = free_udp_port()
    holds_lease = False
    async with MavlinkLink(f"udpin:127.0.0.1:{port}", may_send=lambda: holds_lease) as link:
        veh = UdpVehicle(9, ("127.0.0.1", port))
        received: list[bytes] = []
        hear = veh.datagram_received

        def counting(data: bytes, addr: tuple[str, int]) -> None:
            received.append(data)
            hear(data, addr)

        veh.datagram_received = counting  # type: ignore[method-assign]
        await veh.start()
        try:
            v = await link.wait_vehicle(9, 10)  # hearing the vehicle is fine while fenced
            with pytest.raises(LinkFenced, match="no longer holds the link to vehicle 9"):
                await v.command.arm()
            await asyncio.sleep(2.5)  # two GCS heartbeat periods
            assert received == [] and not veh.commands
            assert link.fenced_sends >= 2, "the heartbeats were held back, and counted"
            holds_lease = True
            assert await v.command.arm() == 0
            await until(lambda: len(received) >= 2)  # the command, then heartbeats again
            assert veh.armed
        finally:
            await veh.stop()
