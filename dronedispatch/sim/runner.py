"""The simulated fleet in one process: UDP sockets in PX4 SITL's layout and one ticker for all.

Ports (instance ``i``): the GCS link binds 127.0.0.1:(vehicle_port_base+i) and sends to
target_host:gcs_port; the API/offboard link binds api_port_base+i and sends to api_target_base+i;
video goes to video_port_base+i. Like PX4, a link replies to the address it last heard from.

Time: one clock per fleet. Every ``TICK_S`` of wall-clock time the ticker advances simulated time by
the elapsed wall time × ``speed_factor`` (physics sub-stepped at ≤ 50 ms). Streams are scheduled in
simulated time, so per simulated second every link carries PX4's message counts, but a stream sends
at most once per tick: at K > 1 the 50 Hz streams stay at 50 Hz wall clock (so per simulated second
they are thinned to 50/K) while the slow ones (HEARTBEAT, MISSION_CURRENT...) speed up K×.
Vehicle timeouts (auto-disarm, COM_DL_LOSS_T, hold times) are simulated seconds; protocol timers
(mission re-requests, STATUSTEXT gating) are wall-clock, since the peer on the wire runs on wall time.
Data-link loss therefore never fires sooner than 3 wall seconds after the last GCS heartbeat.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from types import TracebackType

from dronedispatch.domain.fleet import DroneSpec, FleetConfig
from dronedispatch.sim.docks import SimDocks
from dronedispatch.sim.fault_port import open_fault_port
from dronedispatch.sim.vehicle import Addr, Link, SimVehicle

log = logging.getLogger(__name__)

TICK_S = 0.02
MAX_TICK_WALL_S = 0.2  # after a stall, do not jump the physics by more than this much wall time
DLL_FLOOR_WALL_S = 3.0


class _LinkProtocol(asyncio.DatagramProtocol):
    """The thin socket shell of one link: loss, latency and link drops applied in both directions."""

    def __init__(self, vehicle: SimVehicle, link: Link) -> None:
        self.vehicle = vehicle
        self.link = link
        self.transport: asyncio.DatagramTransport | None = None
        self.loop = asyncio.get_running_loop()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.link.sender = self.send

    def _lost(self) -> bool:
        v = self.vehicle
        return v.link_dropped or (v.loss > 0.0 and v.rng.random() < v.loss)

    def send(self, data: bytes, addr: Addr) -> None:
        if self.transport is None or self._lost():
            return
        if self.vehicle.latency > 0:
            self.loop.call_later(self.vehicle.latency, self._sendto, data, addr)
        else:
            self._sendto(data, addr)

    def _sendto(self, data: bytes, addr: Addr) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.sendto(data, addr)

    def datagram_received(self, data: bytes, addr: Addr) -> None:
        if self._lost():
            return
        if self.vehicle.latency > 0:
            self.loop.call_later(self.vehicle.latency, self._deliver, data, addr)
        else:
            self._deliver(data, addr)

    def _deliver(self, data: bytes, addr: Addr) -> None:
        self.vehicle.on_datagram(self.link, data, addr, time.monotonic())

    def error_received(self, exc: Exception) -> None:
        # ICMP port unreachable when nobody listens on the GCS port: normal for a simulator
        log.debug("vehicle %d %s link: %s", self.vehicle.sysid, self.link.name, exc)

    def close(self) -> None:
        self.link.sender = None
        if self.transport is not None:
            self.transport.close()
            self.transport = None


class SimFleet:
    """N simulated PX4 vehicles, their sockets and one ticker task. Usable as ``async with``."""

    def __init__(
        self,
        fleet: FleetConfig,
        *,
        speed_factor: float = 1.0,
        loss: float = 0.0,
        latency: float = 0.0,
        video: bool = False,
        seed: int = 0,
        target_host: str = "127.0.0.1",
        gcs_port: int = 14550,
        vehicle_port_base: int = 18570,
        api_port_base: int | None = 14580,
        api_target_base: int = 14540,
        video_port_base: int = 5600,
        signing_keys: dict[int, bytes] | None = None,
    ) -> None:
        if speed_factor <= 0:
            raise ValueError("speed_factor must be positive")
        self.fleet = fleet
        self.speed_factor = speed_factor
        self.video = video
        self.target_host = target_host
        self.gcs_port = gcs_port
        self.vehicle_port_base = vehicle_port_base
        self.api_port_base = api_port_base
        self.api_target_base = api_target_base
        self.video_port_base = video_port_base
        self.vehicles: list[SimVehicle] = []
        specs: list[DroneSpec | None] = list(fleet.drones) or [None]
        for i, spec in enumerate(specs):
            dock = fleet.dock(spec.dock) if spec is not None else fleet.docks[i % len(fleet.docks)]
            v = SimVehicle(
                i,
                spec.sysid if spec is not None else i + 1,
                (dock.lat, dock.lon, dock.alt),
                gcs_peer=(target_host, gcs_port),
                api_peer=(target_host, api_target_base + i) if api_port_base is not None else None,
                video_uri=f"udp://{target_host}:{video_port_base + i}",
                cruise_speed=spec.cruise_speed if spec is not None else 5.0,
                climb_speed=spec.climb_speed if spec is not None else None,
                endurance_min=spec.endurance_min if spec is not None else 35.0,
                seed=seed,
                drone_id=spec.id if spec is not None else "",
            )
            v.set_link_loss(loss)
            v.set_latency(latency)
            if signing_keys and v.sysid in signing_keys:
                v.set_signing_key(signing_keys[v.sysid])
            v.model.dll_floor_s = DLL_FLOOR_WALL_S * speed_factor
            v.camera.video_enabled = video
            v.camera.video_target = (target_host, video_port_base + i)
            self.vehicles.append(v)
        self._protocols: list[_LinkProtocol] = []
        self._task: asyncio.Task[None] | None = None
        self.ticks = 0
        self.overruns = 0
        self._failed: set[int] = set()

    def ports(self, i: int) -> dict[str, int | None]:
        """The UDP ports of instance ``i``."""
        return {
            "gcs_bind": self.vehicle_port_base + i,
            "gcs_target": self.gcs_port,
            "api_bind": self.api_port_base + i if self.api_port_base is not None else None,
            "api_target": self.api_target_base + i if self.api_port_base is not None else None,
            "video": self.video_port_base + i,
        }

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            for i, v in enumerate(self.vehicles):
                binds = [self.vehicle_port_base + i]
                if self.api_port_base is not None:
                    binds.append(self.api_port_base + i)
                for link, port in zip(v.links, binds, strict=True):
                    _, proto = await loop.create_datagram_endpoint(
                        functools.partial(_LinkProtocol, v, link), local_addr=("127.0.0.1", port)
                    )
                    self._protocols.append(proto)
        except OSError:
            await self.stop()
            raise
        self._task = loop.create_task(self._run(), name="sim-fleet-ticker")

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        last = time.monotonic()
        next_at = loop.time() + TICK_S
        while True:
            # sleep until the next tick boundary (absolute schedule, so ticks do not drift)
            await asyncio.sleep(max(0.0, next_at - loop.time()))
            now = time.monotonic()
            wall_dt = min(now - last, MAX_TICK_WALL_S)
            last = now
            sim_dt = wall_dt * self.speed_factor
            for v in self.vehicles:
                try:
                    v.tick(sim_dt, now)
                except Exception:  # one broken vehicle must not silence the fleet
                    if v.sysid not in self._failed:
                        self._failed.add(v.sysid)
                        log.exception("vehicle %d: tick failed; it keeps running", v.sysid)
            self.ticks += 1
            next_at += TICK_S
            if next_at < loop.time():
                self.overruns += 1
                next_at = loop.time() + TICK_S

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        for v in self.vehicles:
            await v.stop()
        for p in self._protocols:
            p.close()
        self._protocols.clear()

    async def __aenter__(self) -> SimFleet:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()


async def run_sitl(sim: SimFleet, docks: SimDocks | None = None, fault_port: int | None = None) -> None:
    """Run the fleet (and its simulated docks, if any) until cancelled (Ctrl-C), logging where each vehicle
    listens and sends; with ``fault_port``, faults are taken on that UDP port (:mod:`dronedispatch.sim.fault_port`)."""
    await sim.start()
    faults = await open_fault_port(sim.vehicles, fault_port) if fault_port else None
    if faults is not None:
        log.info("fault injection on udp://127.0.0.1:%d", fault_port)
    if docks is not None:
        await docks.start()
        log.info(
            "simulated docks %s publishing on mqtt://%s:%d (door interlock %s)",
            ", ".join(docks.docks), docks.host, docks.port, "on" if docks.interlock else "off",
        )  # fmt: skip
    try:
        host = sim.target_host
        for i, v in enumerate(sim.vehicles):
            p = sim.ports(i)
            log.info(
                "vehicle %s sysid %d: GCS link 127.0.0.1:%d -> %s:%d, API link %s, video %s:%d%s",
                v.drone_id, v.sysid, p["gcs_bind"], host, p["gcs_target"],
                f"127.0.0.1:{p['api_bind']} -> {host}:{p['api_target']}" if p["api_bind"] else "off",
                host, p["video"], ", signed" if v.signing_key is not None else "",
            )  # fmt: skip
        v0 = sim.vehicles[0]
        log.info(
            "%d vehicles running, speed factor %g, loss %g, latency %g ms; Ctrl-C to stop",
            len(sim.vehicles), sim.speed_factor, v0.loss, v0.latency * 1000,
        )  # fmt: skip
        await asyncio.Event().wait()  # until cancelled
    finally:
        if faults is not None:
            faults.close()
        if docks is not None:
            await docks.stop()
        await sim.stop()
        log.info("simulator stopped")
