"""Helpers shared by the benchmarks: free loopback ports, a simulator child, a MAVSDK connection
(the peer) and a throwaway durable PostgreSQL server (the package's, with PostgreSQL's defaults).

(`make bench` runs every other file in bench/ as a benchmark, so shared code lives here.)
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import shutil
import socket
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import websockets

from dronedispatch.scenario.broker import PostgresServer, find_pg_bindir


def free_ports(n: int) -> int:
    """The first of ``n`` consecutive UDP ports on 127.0.0.1 that were all free a moment ago."""
    for _ in range(500):
        base = random.randint(20000, 60000 - n)
        socks = []
        try:
            for p in range(base, base + n):
                s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                socks.append(s)
                s.bind(("127.0.0.1", p))
            return base
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    raise RuntimeError("no free ports")


async def sim_child(script: str, spec: str) -> asyncio.subprocess.Process:
    """``script --serve-sim spec`` in its own process (as PX4 instances run): it serves until its
    standard input closes, then may print a last line of statistics on standard output."""
    return await asyncio.create_subprocess_exec(
        sys.executable, script, "--serve-sim", spec, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE
    )


async def connect_mavsdk(port: int, timeout_s: float = 15.0) -> tuple[Any, Any]:
    """MAVSDK as a ground station listening on 127.0.0.1:``port``; returns (mavsdk, first autopilot).

    The blocking calls run in worker threads, as MAVSDK's own asyncio wrapper does.
    """
    from mavsdk import ComponentType, Configuration, LogLevel, Mavsdk, log_subscribe

    # MAVSDK's debug and info lines ("Mission changed" after every upload) would bury the results;
    # warnings and errors still print.
    log_subscribe(lambda level, _message, _file, _line: level < LogLevel.WARN)
    loop = asyncio.get_running_loop()
    drone = Mavsdk(Configuration.create_with_component_type(ComponentType.GROUND_STATION))
    await loop.run_in_executor(None, drone.add_any_connection, f"udpin://127.0.0.1:{port}")
    system = await loop.run_in_executor(None, drone.first_autopilot, timeout_s)
    if system is None:
        drone.destroy()
        raise RuntimeError("MAVSDK did not see the simulated vehicle")
    return drone, system


def start_postgres() -> PostgresServer:
    """A new cluster in a temporary directory with PostgreSQL's default (durable) settings, so the
    figure is that of a server as deployed; end it with :func:`stop_postgres`. It also dies with
    this process (setpriv's parent-death signal). Raises ServiceStartError."""
    bindir = find_pg_bindir()  # before the directory, which a missing server would leave behind
    server = PostgresServer(workdir=Path(tempfile.mkdtemp(prefix="dd-bench-pg-")), bindir=bindir, durable=True)
    try:
        server.init()
        return server.start()
    except BaseException:
        stop_postgres(server)
        raise


def stop_postgres(server: PostgresServer) -> None:
    """Fast shutdown, then the cluster's directory is removed."""
    server.stop()
    shutil.rmtree(server.workdir, ignore_errors=True)


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds a process has used so far (/proc/PID/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class FixClock:
    """Notes, on CLOCK_MONOTONIC (one clock for every process on this machine), when each simulated
    vehicle sent the fix stamped with each vehicle time (ms), while ``recording``."""

    def __init__(self, vehicles: Any) -> None:
        self.sent: dict[int, dict[int, float]] = {v.sysid: {} for v in vehicles}
        self.recording = False
        for v in vehicles:
            self._time(v)

    def _time(self, v: Any) -> None:
        tick, mine = v.tick, self.sent[v.sysid]

        def run(dt: float, now: float) -> None:
            start = time.monotonic()
            tick(dt, now)
            if self.recording:  # the fix this tick sent carries the vehicle's clock after it, in ms
                mine[int(v.model.t * 1000.0) & 0xFFFFFFFF] = start

        v.tick = run


async def serve_timed_sim(spec: str) -> None:
    """Child process, ``--serve-sim FLEET_FILE,GCS_PORT,VEHICLE_PORT_BASE,OUT_FILE``: the fleet at PX4's
    stream rates, vehicle ``i`` bound to 127.0.0.1:VEHICLE_PORT_BASE+i and answering whoever last wrote
    to it (so ``udpout:`` links of several nodes can take it over).

    Commands, one per line on standard input: ``record`` starts noting, on CLOCK_MONOTONIC (one clock
    for every process on this machine), when each vehicle sent the fix stamped with each vehicle time
    (ms); ``report`` writes those notes with the tick statistics and the simulator's CPU share as JSON
    to OUT_FILE, stops noting and answers ``ok``. End of input ends the child.
    """
    from dronedispatch import cityfiles
    from dronedispatch.sim.runner import SimFleet

    fleet_file, gcs_s, base_s, out_file = spec.split(",")
    fleet = cityfiles.load_fleet(Path(fleet_file))
    sim = SimFleet(fleet, gcs_port=int(gcs_s), vehicle_port_base=int(base_s), api_port_base=None)
    clock = FixClock(sim.vehicles)
    sent = clock.sent
    loop = asyncio.get_running_loop()
    async with sim:
        t0, w0, ticks0, over0 = time.process_time(), time.monotonic(), 0, 0
        while line := await loop.run_in_executor(None, sys.stdin.readline):
            if line.strip() == "record":
                for mine in sent.values():
                    mine.clear()
                t0, w0, ticks0, over0 = time.process_time(), time.monotonic(), sim.ticks, sim.overruns
                clock.recording = True
            elif line.strip() == "report":
                clock.recording = False
                cpu = (time.process_time() - t0) / max(time.monotonic() - w0, 1e-9)
                stats = {"sent": sent, "ticks": sim.ticks - ticks0, "overruns": sim.overruns - over0, "cpu": cpu}
                await asyncio.to_thread(Path(out_file).write_text, json.dumps(stats))
                print("ok", flush=True)


async def read_fixes(url: str, until: float, keep: Callable[[str, int, float], None]) -> int:
    """A WebSocket client of /api/v1/events until ``until`` (monotonic): ``keep(drone id,
    vehicle_time_ms, arrival)`` for every drone event carrying a fix; returns the events read."""
    events = 0
    async with websockets.connect(url, max_size=None) as ws:
        json.loads(await ws.recv())  # the snapshot
        while (left := until - time.monotonic()) > 0:
            try:
                raw = await asyncio.wait_for(ws.recv(), left)
            except TimeoutError:
                break
            arrived = time.monotonic()
            events += 1
            ev = json.loads(raw)
            pos = ev["data"].get("position") if ev["type"] == "drone" else None
            if pos and pos.get("vehicle_time_ms") is not None:
                keep(ev["data"]["id"], pos["vehicle_time_ms"], arrived)
    return events
