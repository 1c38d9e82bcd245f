"""Mission upload: dronedispatch's link against MAVSDK's mission_raw on the same simulated vehicle.

One simulated PX4 vehicle (SimFleet in a child process, as PX4 SITL runs on its own) exposes
two links: the GCS link (ours) and the API/offboard link (MAVSDK's, which binds udpin on the
vehicle's API target port). Both clients upload 50-item plans in turn (who goes first alternates),
clean and then with the given loss on every datagram in each direction (a new simulator process
per condition). Prints medians, the ratio ours/MAVSDK (goal ≤ 1.0) with a 95% bootstrap interval
(the machines are shared: a ratio is a claim only where its interval excludes 1.0), and completion
counts; a MAVSDK failure after which the vehicle does hold the plan is counted separately, since
that is the failure mode the link is built to avoid.

Clean, both clients spend a few tens of microseconds per item against the simulator's own
turnaround (real PX4 takes ~0.5 ms per item), so parity is what the wire allows; under loss the
difference is the protocol handling.

    .venv/bin/python bench/mission_upload.py [-n 20] [--clean-n 100] [--items 50] [--loss 0.05] [--latency 0]
        [--loop asyncio]

Our side runs on uvloop by default, the event loop `dronedispatch serve` gets from uvicorn.

Ports are chosen free at start, so a running demo is not disturbed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import logging
import random
import statistics
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from benchkit import connect_mavsdk, free_ports, sim_child

from dronedispatch.domain.fleet import Dock
from dronedispatch.domain.mission_items import MissionItem, return_to_launch, takeoff, waypoint
from dronedispatch.mavlink.errors import LinkError
from dronedispatch.mavlink.link import MavlinkLink
from dronedispatch.mavlink.mission_protocol import mission_checksum
from dronedispatch.mavlink.vehicle import Vehicle

DOCK = Dock(id="b", name_ko="벤치", name_en="Bench", lat=37.3918, lon=126.6393, alt=5.0)
TIMEOUT_S = 120.0
BOOTSTRAP_ROUNDS = 2000


def plan(n: int, variant: int) -> list[MissionItem]:
    # A different plan each run, so every upload really replaces the stored one.
    items = [takeoff(DOCK.lat, DOCK.lon, 20.0 + variant % 7)]
    items += [waypoint(DOCK.lat + i * 2e-5, DOCK.lon + variant * 1e-6, 25.0) for i in range(1, n - 1)]
    return [*items, return_to_launch()][:n]


@dataclass
class Tally:
    times: list[float] = field(default_factory=list)
    ok: int = 0
    failed: int = 0
    failed_but_stored: int = 0
    errors: list[str] = field(default_factory=list)

    def median_ms(self) -> float:
        return statistics.median(self.times) * 1000 if self.times else float("nan")


async def stored_checksum(vehicle: Vehicle) -> int | None:
    """What the vehicle holds now, read back over our link."""
    try:
        return mission_checksum(await vehicle.mission.download())
    except LinkError:
        return None


async def ours_upload(vehicle: Vehicle, items: list[MissionItem], tally: Tally) -> None:
    t0 = time.perf_counter()
    try:
        async with asyncio.timeout(TIMEOUT_S):
            await vehicle.mission.upload(items)
    except (LinkError, TimeoutError) as exc:
        tally.failed += 1
        tally.errors.append(str(exc))
        if await stored_checksum(vehicle) == mission_checksum(items):
            tally.failed_but_stored += 1
        return
    tally.times.append(time.perf_counter() - t0)
    tally.ok += 1


async def mavsdk_upload(mission_raw: Any, items: list[MissionItem], tally: Tally, vehicle: Vehicle) -> None:
    from mavsdk.plugins.mission_raw import MissionItem as RawItem

    raw = [
        RawItem(
            i, int(it.frame), int(it.command), 1 if i == 0 else 0, int(it.autocontinue),
            it.param1, it.param2, it.param3, it.param4, it.x, it.y, it.alt, 0,
        )
        for i, it in enumerate(items)
    ]  # fmt: skip
    loop = asyncio.get_running_loop()
    t0 = time.perf_counter()
    try:
        # The blocking call in a worker thread, as MAVSDK's own asyncio wrapper does.
        async with asyncio.timeout(TIMEOUT_S):
            await loop.run_in_executor(None, mission_raw.upload_mission, raw)
    except Exception as exc:
        tally.failed += 1
        tally.errors.append(str(exc)[:80])
        if await stored_checksum(vehicle) == mission_checksum(items):
            tally.failed_but_stored += 1
        return
    tally.times.append(time.perf_counter() - t0)
    tally.ok += 1


@contextlib.asynccontextmanager
async def sitl_process(loss: float, gcs_port: int, base: int, latency: float = 0.0) -> AsyncIterator[None]:
    """One simulated vehicle in its own process, as PX4 SITL is: no client shares its CPU."""
    proc = await sim_child(__file__, f"{loss},{gcs_port},{base},{latency}")
    try:
        yield
    finally:
        assert proc.stdin is not None
        proc.stdin.close()  # the child stops at the end of its input
        try:
            await asyncio.wait_for(proc.wait(), 10)
        except TimeoutError:
            proc.kill()
            await proc.wait()


def ratio_interval(ours: list[float], theirs: list[float], seed: int = 1) -> tuple[float, float]:
    """95% bootstrap interval of median(ours) / median(theirs): how far the ratio moves with the
    run-to-run noise of a shared machine."""
    rng = random.Random(seed)
    ratios = sorted(
        statistics.median(rng.choices(ours, k=len(ours))) / statistics.median(rng.choices(theirs, k=len(theirs)))
        for _ in range(BOOTSTRAP_ROUNDS)
    )
    return ratios[int(0.025 * len(ratios))], ratios[int(0.975 * len(ratios)) - 1]


def verdict(low: float, high: float) -> str:
    if high < 1.0:
        return "faster than MAVSDK"
    if low > 1.0:
        return "SLOWER than MAVSDK"
    return "no measurable difference (the interval holds 1.0)"


async def run_condition(label: str, loss: float, n: int, args: argparse.Namespace, latency: float = 0.0) -> None:
    gcs_port = free_ports(1)
    base = free_ports(4)  # vehicle GCS port, vehicle API port, MAVSDK's port, video
    async with sitl_process(loss, gcs_port, base, latency), MavlinkLink(f"udpin:127.0.0.1:{gcs_port}") as link:
        vehicle = await link.wait_vehicle(1, 30)
        from mavsdk.plugins.mission_raw import MissionRaw

        drone, system = await connect_mavsdk(base + 2)
        mission_raw = MissionRaw(system)
        try:
            ours, theirs = Tally(), Tally()
            for k in range(n):
                # Alternate who goes first, so neither always follows the other's traffic.
                mine = functools.partial(ours_upload, vehicle, plan(args.items, 2 * k), ours)
                peer = functools.partial(mavsdk_upload, mission_raw, plan(args.items, 2 * k + 1), theirs, vehicle)
                for step in (mine, peer) if k % 2 == 0 else (peer, mine):
                    await step()
        finally:
            drone.destroy()
    for name, t in (("ours", ours), ("MAVSDK", theirs)):
        done = f"{t.ok}/{n}"
        print(f"{label:<14}{name:<10}{t.median_ms():>10.1f}{done:>11}{t.failed_but_stored:>20}")
    if ours.times and theirs.times:
        low, high = ratio_interval(ours.times, theirs.times)
        ratio = ours.median_ms() / theirs.median_ms()
        interval = f"95% interval {low:.2f}-{high:.2f}: {verdict(low, high)}"
        print(f"{label:<14}{'ratio ours/MAVSDK':<20}{ratio:>10.2f}   {interval}")
    for e in sorted(set(theirs.errors))[:3]:
        print(f"    MAVSDK error: {e}")
    for e in sorted(set(ours.errors))[:3]:
        print(f"    our error: {e}")


async def serve_sim(spec: str) -> None:
    """Child process: one simulated vehicle with both links, until its standard input closes."""
    from dronedispatch.domain.fleet import FleetConfig
    from dronedispatch.sim.runner import SimFleet

    loss_s, gcs_s, base_s, latency_s = spec.split(",")
    base = int(base_s)
    fleet = FleetConfig(city="bench", docks=[DOCK]).sized(1)
    sim = SimFleet(
        fleet,
        loss=float(loss_s),
        gcs_port=int(gcs_s),
        vehicle_port_base=base,
        api_port_base=base + 1,
        api_target_base=base + 2,
        video_port_base=base + 3,
    )
    for v in sim.vehicles:
        v.set_latency(float(latency_s))
    async with sim:
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, sys.stdin.read)


async def main(args: argparse.Namespace) -> None:
    logging.basicConfig(level=logging.WARNING)
    loop_name = type(asyncio.get_running_loop()).__module__.split(".")[0]
    print(
        f"mission upload, {args.items} items, {args.clean_n} uploads per client clean and {args.n} lossy, "
        f"alternating; our event loop: {loop_name}"
    )
    print("vehicle: the simulator in its own process; ours on its GCS link, MAVSDK on its API link")
    print(f"{'condition':<14}{'client':<10}{'median ms':>10}{'completed':>11}{'failed, yet stored':>20}")
    await run_condition("clean", 0.0, args.clean_n, args)
    label = f"{args.loss:.0%} loss" + (f" {args.latency * 1000:.0f}ms" if args.latency else "")
    await run_condition(label, args.loss, args.n, args, args.latency)


def cli() -> None:
    if len(sys.argv) == 3 and sys.argv[1] == "--serve-sim":
        asyncio.run(serve_sim(sys.argv[2]))
        return
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-n", type=int, default=20, help="uploads per client in the lossy round")
    ap.add_argument("--clean-n", type=int, default=100, help="uploads per client in the clean round")
    ap.add_argument("--items", type=int, default=50)
    ap.add_argument("--loss", type=float, default=0.05, help="datagram loss per direction in the lossy round")
    ap.add_argument("--latency", type=float, default=0.0, help="one-way delay (s) added in the lossy round")
    ap.add_argument(
        "--loop", choices=("uvloop", "asyncio"), default="uvloop", help="our event loop (default: uvloop, as uvicorn's)"
    )
    args = ap.parse_args()
    if args.loop == "uvloop":
        import uvloop

        uvloop.run(main(args))
    else:
        asyncio.run(main(args))


if __name__ == "__main__":
    cli()
