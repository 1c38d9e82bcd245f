"""A UDP port on 127.0.0.1 through which a test injects faults into a running ``dronedispatch sitl``.

One command per datagram, answered with ``ok`` or ``error: <why>``:

- ``vehicle_reboot SYSID [keep|clear] [SILENT_S]``: the vehicle's autopilot restarts in flight (see
  :meth:`SimVehicle.reboot`): silent for SILENT_S seconds (default 3), then heard with a new boot
  clock, its plan kept or, with ``clear``, gone.
- ``slow_mission_items SYSID SECONDS``: each mission item uploaded to the vehicle is handled SECONDS late
  (0 to stop), so an upload stays in progress long enough to cut the ground station off during it.
- ``refuse_arming SYSID SECONDS``: arming is answered "temporarily rejected" for the next SECONDS.
- ``transfers SYSID``: answered ``uploads=N downloads=M``, the mission transfers ground stations began with
  the vehicle since the simulator started (a restarted service must check the plan, not upload it again).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import cast

from dronedispatch.sim.vehicle import SimVehicle

log = logging.getLogger(__name__)

COMMANDS = ("vehicle_reboot", "slow_mission_items", "refuse_arming", "transfers")


class FaultPort(asyncio.DatagramProtocol):
    def __init__(self, vehicles: Sequence[SimVehicle]) -> None:
        self._vehicles = {v.sysid: v for v in vehicles}
        self._transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        try:
            answer = self.run(data.decode("utf-8", "replace").split())
        except (ValueError, IndexError) as exc:
            answer = f"error: {exc}"
        if self._transport is not None:
            self._transport.sendto(answer.encode(), addr)

    def run(self, words: list[str]) -> str:
        if not words or words[0] not in COMMANDS:
            return f"error: unknown command; expected one of: {', '.join(COMMANDS)}"
        vehicle = self._vehicles.get(int(words[1]))
        if vehicle is None:
            return f"error: no vehicle with system id {words[1]}"
        if words[0] == "slow_mission_items":
            vehicle.slow_mission_items(float(words[2]))
            return "ok"
        if words[0] == "refuse_arming":
            vehicle.refuse_arming(float(words[2]))
            return "ok"
        if words[0] == "transfers":
            uploads, downloads = vehicle.transfer_counts()
            return f"uploads={uploads} downloads={downloads}"
        rest = words[2:]
        clear = "clear" in rest
        numbers = [w for w in rest if w not in ("clear", "keep")]
        silent_s = float(numbers[0]) if numbers else 3.0
        vehicle.reboot(clear_mission=clear, silent_s=silent_s)
        log.info("fault: vehicle %d autopilot restarted (plan %s, silent %.1f s)", vehicle.sysid,
                 "cleared" if clear else "kept", silent_s)  # fmt: skip
        return "ok"


async def open_fault_port(vehicles: Sequence[SimVehicle], port: int) -> asyncio.DatagramTransport:
    loop = asyncio.get_running_loop()
    transport, _ = await loop.create_datagram_endpoint(lambda: FaultPort(vehicles), local_addr=("127.0.0.1", port))
    return transport
