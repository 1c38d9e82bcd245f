"""A minimal vehicle over real UDP for testing the link shell in isolation from the simulator.

It speaks through pymavlink (so framing, CRC and signing are independent of ours), sends
HEARTBEAT/GLOBAL_POSITION_INT/MISSION_CURRENT, serves missions with ``Px4MissionModel``, and
answers commands with results a test sets. With a signing key it signs what it sends and drops
unsigned or badly signed commands, counting them.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from pymavlink.dialects.v20 import common as mav

from tests.mavlink.px4_model import Px4MissionModel


class UdpVehicle(asyncio.DatagramProtocol):
    def __init__(self, sysid: int, gcs: tuple[str, int], key: bytes | None = None) -> None:
        self.sysid = sysid
        self.gcs = gcs
        self.mav = mav.MAVLink(None, srcSystem=sysid, srcComponent=1)
        self.mav.robust_parsing = True
        if key is not None:
            self.mav.signing.secret_key = key
            self.mav.signing.sign_outgoing = True
            self.mav.signing.timestamp = int((time.time() - 1420070400) * 100_000)
            self.mav.signing.allow_unsigned_callback = lambda _mav, _msgid: False
        self.model = Px4MissionModel(sysid)
        self.results: dict[int, int] = {}
        self.commands: list[Any] = []
        self.armed = False
        self.custom_mode = 0x03040000  # PX4 AUTO.LOITER (hold), as at boot
        self.silent = False
        self.transport: asyncio.DatagramTransport | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._timer: asyncio.TimerHandle | None = None
        self.t0 = time.monotonic()

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self.transport, _ = await loop.create_datagram_endpoint(lambda: self, local_addr=("127.0.0.1", 0))
        self._tasks.append(asyncio.create_task(self._stream()))

    async def stop(self) -> None:
        for t in self._tasks:
            t.cancel()
        if self.transport:
            self.transport.close()

    def send(self, msg: Any) -> None:
        if self.transport is not None and not self.silent:
            self.transport.sendto(msg.pack(self.mav), self.gcs)
            self.mav.seq = (self.mav.seq + 1) % 256

    async def _stream(self) -> None:
        n = 0
        while True:  # 20 Hz telemetry loop of the fake vehicle
            t_ms = int((time.monotonic() - self.t0) * 1000)
            base = 29 | (128 if self.armed else 0)
            if n % 20 == 0:
                self.send(mav.MAVLink_heartbeat_message(2, 12, base, self.custom_mode, 3, 3))
                self.send(self.model.mission_current())
                self.send(mav.MAVLink_extended_sys_state_message(0, 1))
            self.send(mav.MAVLink_global_position_int_message(t_ms, 373918000, 1266393000, 10000, 0, 0, 0, 0, 9000))
            n += 1
            await asyncio.sleep(0.05)

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        try:
            msgs = self.mav.parse_buffer(data) or []
        except mav.MAVError:
            return
        now = time.monotonic()
        for m in msgs:
            if m.get_type() == "BAD_DATA":
                continue
            t = m.get_type()
            if t.startswith("MISSION_"):
                for out in self.model.receive(m, now):
                    self.send(out)
                self._arm_timer()
            elif t in ("COMMAND_LONG", "COMMAND_INT"):
                self.commands.append(m)
                result = self.results.get(m.command, 0)
                if m.command == 400 and result == 0:
                    self.armed = m.param1 == 1
                self.send(mav.MAVLink_command_ack_message(m.command, result, 0, 0, 255, 190))

    def _arm_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self.model.deadline is not None:
            loop = asyncio.get_running_loop()
            delay = max(0.0, self.model.deadline - time.monotonic())

            def fire() -> None:
                for out in self.model.on_timeout(time.monotonic()):
                    self.send(out)
                self._arm_timer()

            self._timer = loop.call_later(delay, fire)
