"""Fan-in: many simulated vehicles into one MavlinkLink; CPU use and telemetry latency.

The simulator runs in a child process (as PX4 instances would), ``N`` vehicles (default 200) all
sending their GCS link to one ``udpin`` endpoint of ours, at PX4's stream rates. We listen to the
link's Telemetry events (4 Hz per vehicle by default) for ``--seconds`` and print:

- our process's CPU use (user + system time over wall time, in % of one core), and the frames
  and datagrams per second the link took in;
- telemetry latency percentiles, two ways. End to end: for each Telemetry event, our event
  time minus the simulated time in the GLOBAL_POSITION_INT it carries (``time_boot_ms``); the
  clocks have an unknown offset per vehicle, estimated as the smallest difference seen for that
  vehicle, so the figure is the delay above the best case (only meaningful while the simulator
  keeps real time: its tick overruns are printed). In process: a second phase timestamps each
  datagram as our socket hands it over and reports event time minus the arrival of the
  position it carries, i.e. what the link itself adds (queueing, decoding, the 4 Hz throttle);
- whether every vehicle was discovered and none was reported lost.

    .venv/bin/python bench/link_fanin.py [--vehicles 200] [--seconds 20]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import time
from collections import defaultdict

from benchkit import free_ports, sim_child

from dronedispatch.domain.fleet import Dock, FleetConfig
from dronedispatch.mavlink.events import Telemetry, VehicleEvent, VehicleLost
from dronedispatch.mavlink.link import MavlinkLink

DOCKS = [
    Dock(id="a", name_ko="가", name_en="A", lat=37.3918, lon=126.6393, alt=5.0),
    Dock(id="b", name_ko="나", name_en="B", lat=37.3780, lon=126.6600, alt=5.0),
]


async def serve_sim(spec: str) -> None:
    """Child process: the simulated fleet until stdin closes; prints tick statistics at the end."""
    from dronedispatch.sim.runner import SimFleet

    n_s, gcs_s, base_s = spec.split(",")
    n = int(n_s)
    fleet = FleetConfig(city="bench", docks=DOCKS).sized(n)
    sim = SimFleet(fleet, gcs_port=int(gcs_s), vehicle_port_base=int(base_s), api_port_base=None)
    t0 = time.process_time()
    w0 = time.monotonic()
    async with sim:
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
        cpu = (time.process_time() - t0) / (time.monotonic() - w0)
        print(json.dumps({"ticks": sim.ticks, "overruns": sim.overruns, "cpu": cpu}), flush=True)


async def in_process_latency(link: MavlinkLink, seconds: float) -> list[float]:
    """Event time minus the arrival time of the GLOBAL_POSITION_INT the event carries (ms)."""
    arrivals: dict[tuple[int, int], float] = {}
    out: list[float] = []
    endpoint = link.endpoints[0]
    inner = endpoint.on_data

    def on_data(ep, data: bytes, peer) -> None:  # type: ignore[no-untyped-def]
        now = time.monotonic()
        # MAVLink 2 frames: find GLOBAL_POSITION_INT (33) headers and their time_boot_ms.
        i = data.find(b"\xfd")
        while 0 <= i < len(data) - 14:
            plen = data[i + 1]
            if data[i + 7] == 33 and data[i + 8] == 0 and data[i + 9] == 0:
                tbm = int.from_bytes(data[i + 10 : i + 14], "little")
                arrivals[(data[i + 5], tbm)] = now
            i += 12 + plen + (13 if data[i + 2] & 1 else 0)
        inner(ep, data, peer)

    def on_event(ev: VehicleEvent) -> None:
        if isinstance(ev, Telemetry) and ev.vehicle.state.time_boot_ms is not None:
            t = arrivals.pop((ev.vehicle.sysid, ev.vehicle.state.time_boot_ms), None)
            if t is not None:
                out.append((time.monotonic() - t) * 1000)

    endpoint.on_data = on_data
    remove = link.add_listener(on_event)
    await asyncio.sleep(seconds)
    remove()
    endpoint.on_data = inner
    return out


async def main() -> None:
    if len(sys.argv) == 3 and sys.argv[1] == "--serve-sim":
        await serve_sim(sys.argv[2])
        return
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--vehicles", type=int, default=200)
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--warmup", type=float, default=5.0, help="seconds after discovery before measuring")
    args = ap.parse_args()
    n = args.vehicles

    gcs_port = free_ports(1)
    base = free_ports(n)
    child = await sim_child(__file__, f"{n},{gcs_port},{base}")
    latencies: list[float] = []
    offsets: dict[int, float] = {}
    samples: dict[int, list[float]] = defaultdict(list)
    lost: set[int] = set()
    measuring = False

    def on_event(ev: VehicleEvent) -> None:
        if isinstance(ev, VehicleLost):
            lost.add(ev.vehicle.sysid)
        if not measuring or not isinstance(ev, Telemetry):
            return
        tbm = ev.vehicle.state.time_boot_ms
        if tbm is None:
            return
        # event time minus the vehicle's clock: constant offset + delay
        samples[ev.vehicle.sysid].append(time.monotonic() - tbm / 1000.0)

    link = MavlinkLink(f"udpin:127.0.0.1:{gcs_port}")
    link.add_listener(on_event)
    async with link:
        t_disc = time.monotonic()
        await asyncio.gather(*(link.wait_vehicle(i, 60) for i in range(1, n + 1)))
        discovered_s = time.monotonic() - t_disc
        await asyncio.sleep(args.warmup)
        lost.clear()
        frames0 = sum(v.health.packets_received for v in link.vehicles.values())
        dgrams0 = sum(ep.bytes_in for ep in link.endpoints)
        cpu0 = os.times()
        wall0 = time.monotonic()
        measuring = True
        await asyncio.sleep(args.seconds)
        measuring = False
        cpu1 = os.times()
        wall = time.monotonic() - wall0
        internal = await in_process_latency(link, args.seconds / 2)
        frames = sum(v.health.packets_received for v in link.vehicles.values()) - frames0
        bytes_in = sum(ep.bytes_in for ep in link.endpoints) - dgrams0
        loss = statistics.mean(v.health.loss_ratio for v in link.vehicles.values())
    assert child.stdin is not None
    child.stdin.close()
    out, _ = await child.communicate()
    sim_stats = json.loads(out.decode().strip().splitlines()[-1]) if out.strip() else {}

    for sysid, xs in samples.items():
        offsets[sysid] = min(xs)
        latencies += [(x - offsets[sysid]) * 1000 for x in xs]
    latencies.sort()
    cpu = (cpu1.user - cpu0.user + cpu1.system - cpu0.system) / wall

    def pct(p: float) -> float:
        return latencies[min(len(latencies) - 1, int(p / 100 * len(latencies)))] if latencies else float("nan")

    print(f"fan-in: {n} simulated vehicles into one MavlinkLink endpoint, {wall:.0f} s measured")
    print(f"  discovered all {len(link.vehicles)}/{n} in {discovered_s:.1f} s; lost during run: {len(lost)}")
    print(f"  link input: {frames / wall:,.0f} frames/s, {bytes_in / wall / 1000:,.0f} kB/s; mean loss {loss:.2%}")
    print(f"  our CPU: {cpu:.0%} of one core ({cpu / (frames / wall) * 1e6:.1f} µs per frame)")
    print(
        f"  telemetry events: {len(latencies) / wall:,.0f}/s; latency ms p50 {pct(50):.1f}  p95 {pct(95):.1f}"
        f"  p99 {pct(99):.1f}  max {latencies[-1] if latencies else float('nan'):.1f}"
    )
    internal.sort()
    ip = [internal[min(len(internal) - 1, int(p / 100 * len(internal)))] for p in (50, 95, 99)] if internal else []
    if ip:
        print(f"  in-process latency (socket → event) ms p50 {ip[0]:.1f}  p95 {ip[1]:.1f}  p99 {ip[2]:.1f}")
    if sim_stats:
        print(
            f"  simulator (own process): {sim_stats['cpu']:.0%} of a core, "
            f"{sim_stats['overruns']} tick overruns in {sim_stats['ticks']} ticks"
        )


if __name__ == "__main__":
    asyncio.run(main())
