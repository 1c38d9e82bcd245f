"""A minimal ground station for tests: pymavlink over a real loopback UDP socket, asyncio-native."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Callable
from typing import Any

from pymavlink.dialects.v20 import common as mavlink

from dronedispatch.domain.mission_items import MissionItem


def free_port_block(n: int) -> int:
    """A base port p such that p..p+n-1 were all free a moment ago (UDP)."""
    for _ in range(200):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind(("127.0.0.1", 0))
        base = s.getsockname()[1]
        s.close()
        if base + n >= 65000:
            continue
        socks = []
        try:
            for k in range(n):
                t = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                socks.append(t)
                t.bind(("127.0.0.1", base + k))
            return base
        except OSError:
            continue
        finally:
            for t in socks:
                t.close()
    raise RuntimeError("no free port block")


class Gcs(asyncio.DatagramProtocol):
    """Binds a local port, collects every message, sends to a vehicle address."""

    def __init__(self, sysid: int = 255, compid: int = 190) -> None:
        self.mav = mavlink.MAVLink(None, srcSystem=sysid, srcComponent=compid)
        self.parser = mavlink.MAVLink(None)
        self.parser.robust_parsing = True
        self.msgs: list[Any] = []
        self.transport: asyncio.DatagramTransport | None = None
        self.vehicle: tuple[str, int] | None = None
        self._waiters: list[tuple[Callable[[Any], bool], asyncio.Future[Any]]] = []
        self._hb_task: asyncio.Task[None] | None = None

    @classmethod
    async def open(cls, port: int, vehicle_port: int | None = None, **kw: Any) -> Gcs:
        loop = asyncio.get_running_loop()
        _, proto = await loop.create_datagram_endpoint(lambda: cls(**kw), local_addr=("127.0.0.1", port))
        if vehicle_port is not None:
            proto.vehicle = ("127.0.0.1", vehicle_port)
        return proto

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        if self.vehicle is None:
            self.vehicle = addr
        for m in self.parser.parse_buffer(data) or []:
            m._t = time.monotonic()
            self.msgs.append(m)
            for pred, fut in list(self._waiters):
                if not fut.done() and pred(m):
                    fut.set_result(m)
        if len(self.msgs) > 20000:
            del self.msgs[:10000]

    def close(self) -> None:
        if self._hb_task:
            self._hb_task.cancel()
        if self.transport:
            self.transport.close()

    def send(self, msg: Any) -> None:
        assert self.transport is not None and self.vehicle is not None
        self.transport.sendto(bytes(msg.pack(self.mav)), self.vehicle)
        self.mav.seq = (self.mav.seq + 1) % 256

    def send_raw(self, data: bytes) -> None:
        assert self.transport is not None and self.vehicle is not None
        self.transport.sendto(data, self.vehicle)

    def start_heartbeats(self, period: float = 0.5) -> None:
        async def beat() -> None:
            while True:
                if self.vehicle is not None:
                    self.send(self.mav.heartbeat_encode(6, 8, 0, 0, 4))
                await asyncio.sleep(period)

        self._hb_task = asyncio.get_running_loop().create_task(beat())

    async def wait(self, pred: Callable[[Any], bool] | str, within: float = 10.0, sysid: int | None = None) -> Any:
        if isinstance(pred, str):
            name = pred
            base: Callable[[Any], bool] = lambda m: m.get_type() == name  # noqa: E731
        else:
            base = pred
        if sysid is not None:
            check: Callable[[Any], bool] = lambda m: m.get_srcSystem() == sysid and base(m)  # noqa: E731
        else:
            check = base
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        entry = (check, fut)
        self._waiters.append(entry)
        try:
            return await asyncio.wait_for(fut, within)
        finally:
            self._waiters.remove(entry)

    async def wait_type(self, name: str, cond: Callable[[Any], bool] = lambda m: True, within: float = 10.0,
                        sysid: int | None = None) -> Any:
        return await self.wait(lambda m: m.get_type() == name and cond(m), within, sysid)

    async def command(self, target: int, cmd: int, *params: float, compid: int = 1, within: float = 5.0) -> Any:
        p = list(params) + [0.0] * (7 - len(params))
        fut = self.wait_type("COMMAND_ACK", lambda m: m.command == cmd, within, sysid=target)
        task = asyncio.ensure_future(fut)
        await asyncio.sleep(0)
        self.send(self.mav.command_long_encode(target, compid, cmd, 0, *p))
        return await task

    async def command_int(self, target: int, cmd: int, frame: int, p1: float, p2: float, p3: float, p4: float,
                          x: int, y: int, z: float, compid: int = 1, within: float = 5.0) -> Any:
        task = asyncio.ensure_future(self.wait_type("COMMAND_ACK", lambda m: m.command == cmd, within, sysid=target))
        await asyncio.sleep(0)
        self.send(self.mav.command_int_encode(target, compid, frame, cmd, 0, 0, p1, p2, p3, p4, x, y, z))
        return await task

    async def upload(self, target: int, items: list[MissionItem], mission_type: int = 0,
                     within: float = 10.0) -> Any:
        """Upload items the way a careful client does; returns the final MISSION_ACK."""
        ack = asyncio.ensure_future(self.wait_type("MISSION_ACK", lambda m: m.mission_type == mission_type,
                                                   within, sysid=target))
        done = False

        async def serve() -> None:
            while not done:
                req = await self.wait(lambda m: m.get_type() in ("MISSION_REQUEST_INT", "MISSION_REQUEST")
                                      and m.mission_type == mission_type, within, sysid=target)
                it = items[req.seq]
                self.send(self.mav.mission_item_int_encode(
                    target, 1, req.seq, it.frame, it.command, 0, int(it.autocontinue), it.param1, it.param2,
                    it.param3, it.param4, it.x, it.y, it.alt, mission_type))

        server = asyncio.ensure_future(serve())
        await asyncio.sleep(0)
        self.send(self.mav.mission_count_encode(target, 1, len(items), mission_type))
        try:
            return await ack
        finally:
            done = True
            server.cancel()


async def eventually(pred: Callable[[], Any], within: float = 30.0, every: float = 0.05) -> None:
    """Wait until ``pred()`` (sync or async) is true; the simulator offers no event for model state."""
    deadline = time.monotonic() + within
    for _ in iter(int, 1):
        value = pred()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return
        if time.monotonic() > deadline:
            raise TimeoutError("condition not reached")
        await asyncio.sleep(every)
