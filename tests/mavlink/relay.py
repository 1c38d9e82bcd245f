"""A UDP relay between the link and the simulator that drops, delays and records datagrams.

The link binds ``udpin`` on ``link_port``; vehicles send to the relay's ``vehicle_side`` port,
and the relay forwards from its ``link_side`` socket, so the link answers the relay, which
passes replies back to every vehicle address it has heard. Loss and delay
apply per datagram in each direction. With ``record`` set, every MISSION_* message the link
sent or received (after loss) is kept with its time, ready to save as a capture.
"""

from __future__ import annotations

import asyncio
import random
import time
from typing import Any

from pymavlink.dialects.v20 import common as mav

from dronedispatch.mavlink import wire
from dronedispatch.mavlink.frames import FrameSplitter


class _Side(asyncio.DatagramProtocol):
    def __init__(self, relay: UdpRelay, name: str) -> None:
        self.relay = relay
        self.name = name
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.relay._received(self.name, data, addr)


class UdpRelay:
    def __init__(self, link_port: int, *, loss: float = 0.0, delay: float = 0.0, seed: int = 0) -> None:
        self.link_port = link_port
        self.loss = loss
        self.delay = delay
        self.rng = random.Random(seed)
        self.record = False
        #: Message ids never passed from vehicles to the link (to stage a lost ACK, say).
        self.block_to_link: set[int] = set()
        self.capture: list[dict[str, Any]] = []
        self._vehicle_side: _Side | None = None
        self._link_side: _Side | None = None
        self._vehicle_addr: dict[int, tuple[str, int]] = {}
        self._decoder = mav.MAVLink(None)

    async def start(self) -> int:
        """Opens both sockets; returns the port vehicles should send to."""
        loop = asyncio.get_running_loop()
        _, self._vehicle_side = await loop.create_datagram_endpoint(
            lambda: _Side(self, "vehicle"), local_addr=("127.0.0.1", 0)
        )
        _, self._link_side = await loop.create_datagram_endpoint(
            lambda: _Side(self, "link"), local_addr=("127.0.0.1", 0)
        )
        assert self._vehicle_side.transport is not None
        return int(self._vehicle_side.transport.get_extra_info("sockname")[1])

    def stop(self) -> None:
        for side in (self._vehicle_side, self._link_side):
            if side is not None and side.transport is not None:
                side.transport.close()

    def _received(self, side: str, data: bytes, addr: tuple[str, int]) -> None:
        frames = FrameSplitter().feed(data)
        if side == "vehicle":
            for f in frames:
                self._vehicle_addr[f.sysid] = addr
            if self.block_to_link and any(f.msgid in self.block_to_link for f in frames):
                kept = [f.raw for f in frames if f.msgid not in self.block_to_link]
                if not kept:
                    return
                data = b"".join(kept)
            out_side, targets = self._link_side, [("127.0.0.1", self.link_port)]
        else:
            # Vehicles ignore what is addressed to another system id, so every one gets it.
            out_side, targets = self._vehicle_side, list(set(self._vehicle_addr.values()))
            if self.record:
                self._log("gcs>veh", frames)
        if self.rng.random() < self.loss:
            return
        if side == "vehicle" and self.record:
            self._log("veh>gcs", frames)
        if out_side is None or out_side.transport is None:
            return
        for target in targets:
            if self.delay > 0:
                asyncio.get_running_loop().call_later(self.delay, out_side.transport.sendto, data, target)
            else:
                out_side.transport.sendto(data, target)

    def _log(self, direction: str, frames: list[Any]) -> None:
        now = time.monotonic()
        for f in frames:
            if f.msgid not in MISSION_IDS:
                continue
            m = self._decoder.decode(bytearray(f.raw))
            wire.add_extensions(f, m)
            d = m.to_dict()
            for extra in ("opaque_id", "mission_id"):
                if hasattr(m, extra):
                    d[extra] = getattr(m, extra)
            self.capture.append({"t": now, "dir": direction, "msg": d})


MISSION_IDS = frozenset(
    {
        mav.MAVLINK_MSG_ID_MISSION_COUNT,
        mav.MAVLINK_MSG_ID_MISSION_REQUEST_INT,
        mav.MAVLINK_MSG_ID_MISSION_REQUEST,
        mav.MAVLINK_MSG_ID_MISSION_ITEM_INT,
        mav.MAVLINK_MSG_ID_MISSION_ACK,
        mav.MAVLINK_MSG_ID_MISSION_CURRENT,
        mav.MAVLINK_MSG_ID_MISSION_CLEAR_ALL,
        mav.MAVLINK_MSG_ID_MISSION_REQUEST_LIST,
    }
)
