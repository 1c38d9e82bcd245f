"""Incident created → mission accepted by the vehicle and armed, with 20 simulated vehicles, on SQLite and PostgreSQL.

The simulator runs as its own process (`dronedispatch sitl`, PX4's port layout shifted to free
ports), the service in this process (Runtime: store, planner, airspace, link). For each sample an
incident is created next to a dock, dispatched to the recommended drone, and the clock stops
when the service publishes the mission as launched: the vehicle acknowledged the upload
(MISSION_ACK accepted), arming and MISSION_START (COMMAND_ACK accepted). Its next HEARTBEAT,
up to a second later at PX4's 1 Hz, only repeats what the acknowledgements said. Prints
p50/p95/p99 against the target (p95 < 300 ms) for each database, with where the time went:
the phases (incident stored; dispatch planned and recorded; upload, arm and launch recorded)
and the time spent inside store calls (any thread) while each dispatch was under way.

Each database gets a new simulator and a new store: SQLite in a temporary file (the service's
WAL settings), PostgreSQL on a new cluster this script starts from Debian's binaries
(/usr/lib/postgresql/N/bin) on a free 127.0.0.1 port, with PostgreSQL's default (durable)
settings, and stops at the end.

Peer measured once in the same run: MAVSDK on the same simulated fleet (a 21st vehicle, its API
link) doing only the vehicle part — mission_raw upload of an equally long mission plus arm — with
no incident, planning, airspace check or store. The ratio says what our whole path costs against
MAVSDK's upload-and-arm alone.

    .venv/bin/python bench/dispatch_latency.py [--database sqlite|postgresql|both] [--samples 20] [--verbose]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import logging
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from benchkit import connect_mavsdk, free_ports, start_postgres, stop_postgres  # bench/ is on sys.path

from dronedispatch import cityfiles
from dronedispatch.domain.geo import destination
from dronedispatch.domain.incidents import Category, Severity
from dronedispatch.domain.mission_items import MissionItem
from dronedispatch.events import MissionChanged
from dronedispatch.runtime import Runtime
from dronedispatch.scenario.broker import ServiceStartError, find_pg_bindir
from dronedispatch.schemas import DispatchRequest, IncidentCreate, LatLon
from dronedispatch.settings import Settings
from dronedispatch.store.repo import Store

TARGET_P95_MS = 300.0
CATEGORIES = (Category.TRAFFIC_ACCIDENT, Category.CRIME, Category.FACILITY, Category.ENVIRONMENT, Category.OTHER)
FLEET_SIZE = 20
DATABASES = ("sqlite", "postgresql")


def pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, round(q / 100 * (len(s) - 1)))]


class StoreTimer:
    """Times every public call on one Store instance (the services share it), from any thread.

    Calls are kept as (start, end, method, on the event loop's thread?) so a dispatch's window can
    say how much of it was spent waiting on the database, and in which calls.
    """

    def __init__(self, store: Store) -> None:
        self.calls: list[tuple[float, float, str, bool]] = []
        self._lock = threading.Lock()
        self._loop_thread = threading.get_ident()
        for name in dir(Store):
            if name.startswith("_") or name in ("session", "engine"):
                continue
            method = getattr(store, name)
            if callable(method):
                setattr(store, name, self._timed(name, method))

    def _timed(self, name: str, method: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(method)
        def timed(*args: Any, **kwargs: Any) -> Any:
            t0 = time.perf_counter()
            try:
                return method(*args, **kwargs)
            finally:
                t1 = time.perf_counter()
                with self._lock:
                    self.calls.append((t0, t1, name, threading.get_ident() == self._loop_thread))

        return timed

    def within(self, t0: float, t1: float) -> list[tuple[float, float, str, bool]]:
        with self._lock:
            return [c for c in self.calls if c[0] >= t0 and c[1] <= t1]


@dataclass
class Sample:
    total: float
    incident: float  # create_incident returned
    recorded: float  # dispatch returned: planned, mission and audit committed
    launch: float  # upload, arm, start and the launched transition recorded
    store_s: float  # inside store calls, summed over calls (any thread) within the window
    store_loop_s: float  # of which on the event loop's own thread (blocks everything else)
    store_calls: int
    by_method: dict[str, float]


@dataclass
class Result:
    database: str
    label: str
    samples: list[Sample] = field(default_factory=list)
    items: list[int] = field(default_factory=list)
    peer: list[float] = field(default_factory=list)
    peer_items: int = 0

    @property
    def totals(self) -> list[float]:
        return [s.total for s in self.samples]


async def mavsdk_peer(port: int, items: list[Any], n: int) -> list[float]:
    from mavsdk.plugins.action import Action
    from mavsdk.plugins.mission_raw import MissionItem as RawItem
    from mavsdk.plugins.mission_raw import MissionRaw

    loop = asyncio.get_running_loop()
    drone, system = await connect_mavsdk(port)
    mission_raw, action = MissionRaw(system), Action(system)
    raw = [
        RawItem(i, int(it.frame), int(it.command), 1 if i == 0 else 0, int(it.autocontinue),
                it.param1, it.param2, it.param3, 0.0 if it.param4 != it.param4 else it.param4, it.x, it.y, it.alt, 0)
        for i, it in enumerate(items)
    ]  # fmt: skip
    times = []
    try:
        for _ in range(n):
            t0 = time.perf_counter()
            await loop.run_in_executor(None, mission_raw.upload_mission, raw)
            await loop.run_in_executor(None, action.arm)
            times.append(time.perf_counter() - t0)
            await loop.run_in_executor(None, action.disarm)
            await asyncio.sleep(0.2)
    finally:
        drone.destroy()
    return times


async def run_on(database: str, label: str, database_url: str | None, args: argparse.Namespace, peer: bool) -> Result:
    """One measurement on a new simulator and a new store; ``database_url`` None: a new SQLite file."""
    n = FLEET_SIZE + 1  # the last vehicle is MAVSDK's
    gcs, vbase, abase, tbase = free_ports(1), free_ports(n), free_ports(n), free_ports(n)
    tmp = Path(tempfile.mkdtemp(prefix="dd-bench-"))
    fleet = cityfiles.load_fleet().sized(n)
    fleet_file = tmp / "fleet.yaml"
    fleet_file.write_text(yaml.safe_dump(fleet.model_dump(), allow_unicode=True), encoding="utf-8")
    sitl = subprocess.Popen(  # noqa: ASYNC220 (started before anything runs on the loop)
        [sys.executable, "-m", "dronedispatch.cli", "sitl", "--vehicles", str(n), "--fleet", str(fleet_file),
         "--no-video", "--gcs-port", str(gcs), "--vehicle-port-base", str(vbase), "--api-port-base", str(abase),
         "--api-target-base", str(tbase), "--video-port-base", str(free_ports(n))],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    settings = Settings(database_url=database_url or f"sqlite:///{tmp / 'dd.db'}", mavlink=f"udpin:127.0.0.1:{gcs}",
                        fleet=fleet_file, secret_key="bench-secret-bench-secret-bench-secret")  # fmt: skip
    runtime = Runtime(settings)
    timer = StoreTimer(runtime.store)
    launched: dict[int, asyncio.Future[float]] = {}
    result = Result(database, label)

    async def watch_launches() -> None:
        async for ev in runtime.bus.subscribe(maxsize=100_000):
            if isinstance(ev, MissionChanged) and ev.data.launched_at is not None:
                fut = launched.get(ev.data.id)
                if fut is not None and not fut.done():
                    fut.set_result(time.perf_counter())

    watcher: asyncio.Task[None] | None = None
    try:
        await runtime.start()
        watcher = asyncio.create_task(watch_launches())
        peer_entry = runtime.registry.by_sysid(n)
        assert peer_entry is not None
        # MAVSDK's vehicle is never dispatched
        await asyncio.to_thread(runtime.fleet.set_maintenance, peer_entry.spec.id, True, "bench")
        deadline = time.monotonic() + 60
        while sum(runtime.registry.state_of(e).value == "ready" for e in runtime.registry) < FLEET_SIZE:
            if time.monotonic() > deadline:
                raise RuntimeError("the simulated fleet did not become ready")
            await asyncio.sleep(0.2)

        docks = fleet.docks
        for k in range(args.samples):
            dock = docks[k % len(docks)]
            # a distinct place each time (reports of one event would merge) and never inside a zone
            bearing, dist = 45 + 20 * k, 250.0 + 60.0 * k
            lat, lon = destination(dock.lat, dock.lon, bearing, dist)
            while runtime.airspace.prohibited_at(lat, lon) is not None:
                bearing += 40
                lat, lon = destination(dock.lat, dock.lon, bearing, dist)
            category = CATEGORIES[(k // len(docks)) % len(CATEGORIES)]  # near one dock, never the same event
            body = IncidentCreate(category=category, severity=Severity.SEVERE,
                                  location=LatLon(lat=lat, lon=lon), description=f"bench {k}")  # fmt: skip
            t0 = time.perf_counter()
            incident = await asyncio.to_thread(runtime.dispatcher.create_incident, body, "bench")
            t_incident = time.perf_counter()
            assert incident.id is not None
            mission = await runtime.dispatcher.dispatch(incident.id, DispatchRequest(approval_ref="BENCH-1"), "bench")
            t_recorded = time.perf_counter()
            assert mission.id is not None
            launched[mission.id] = fut = asyncio.get_running_loop().create_future()
            try:
                t1 = await asyncio.wait_for(fut, 30)
            except TimeoutError:
                m = await asyncio.to_thread(runtime.store.get_mission, mission.id)
                raise RuntimeError(f"mission {m.id} on {m.drone_id} never launched: {m.state} {m.reason}") from None
            calls = timer.within(t0, t1)
            by_method: dict[str, float] = defaultdict(float)
            for c0, c1, name, _ in calls:
                by_method[name] += c1 - c0
            result.samples.append(Sample(
                total=t1 - t0, incident=t_incident - t0, recorded=t_recorded - t_incident, launch=t1 - t_recorded,
                store_s=sum(c1 - c0 for c0, c1, _, _ in calls),
                store_loop_s=sum(c1 - c0 for c0, c1, _, on_loop in calls if on_loop),
                store_calls=len(calls), by_method=dict(by_method),
            ))  # fmt: skip
            result.items.append(len(mission.items))
            if args.verbose:
                s = result.samples[-1]
                print(f"  {label:<14} {k:2d} {dock.id:<13} {mission.drone_id} {len(mission.items):3d} items "
                      f"{s.total * 1000:7.1f} ms  (incident {s.incident * 1000:6.1f}, recorded "
                      f"{s.recorded * 1000:6.1f}, launch {s.launch * 1000:6.1f}; store {s.store_s * 1000:6.1f} ms "
                      f"in {s.store_calls} calls)")  # fmt: skip
        if peer:
            newest = await asyncio.to_thread(runtime.store.list_missions, limit=1)
            sample_items = [MissionItem.from_dict(d) for d in newest[0].items]
            result.peer = await mavsdk_peer(tbase + n - 1, sample_items, args.peer_samples)
            result.peer_items = len(sample_items)
    finally:
        if watcher is not None:
            watcher.cancel()
        await runtime.stop()
        sitl.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            sitl.wait(10)
        shutil.rmtree(tmp, ignore_errors=True)
    return result


def report(r: Result) -> tuple[float, float]:
    """Prints one database's figures; returns its (p50, p95) in ms."""
    ms = 1000.0
    p50, p95, p99 = (pct(r.totals, q) * ms for q in (50, 95, 99))
    verdict = "met" if p95 < TARGET_P95_MS else "NOT met"
    print(f"  {r.label:<14} p50 {p50:7.1f} ms   p95 {p95:7.1f} ms   p99 {p99:7.1f} ms   "
          f"(target p95 < {TARGET_P95_MS:.0f} ms: {verdict})")  # fmt: skip

    def med(f: Callable[[Sample], float]) -> float:
        return statistics.median(f(s) for s in r.samples) * ms

    print(f"  {'':<14} medians: incident {med(lambda s: s.incident):5.1f} ms, dispatch recorded "
          f"{med(lambda s: s.recorded):5.1f} ms, upload+arm+launch {med(lambda s: s.launch):5.1f} ms; "
          f"store calls {med(lambda s: s.store_s):5.1f} ms "
          f"({med(lambda s: s.store_loop_s):.1f} ms on the event loop), "
          f"{statistics.median(s.store_calls for s in r.samples):.0f} calls")  # fmt: skip
    totals: dict[str, float] = defaultdict(float)
    for s in r.samples:
        for name, t in s.by_method.items():
            totals[name] += t
    top = sorted(totals.items(), key=lambda kv: -kv[1])[:4]
    per = ", ".join(f"{name} {t / len(r.samples) * ms:.1f}" for name, t in top)
    print(f"  {'':<14} store ms per dispatch (mean): {per}")
    return p50, p95


async def main(args: argparse.Namespace) -> int:
    databases = DATABASES if args.database == "both" else (args.database,)
    if "postgresql" in databases:
        try:
            find_pg_bindir()  # before the SQLite minute: a missing server fails at once
        except ServiceStartError as exc:
            print(f"dispatch_latency: cannot measure on PostgreSQL: {exc}", file=sys.stderr)
            return 1
    results: list[Result] = []
    print(f"incident → mission accepted and armed, {args.samples} dispatches, {FLEET_SIZE} vehicles")
    for i, database in enumerate(databases):
        peer = i == len(databases) - 1  # once, on the last simulator
        if database == "sqlite":
            results.append(await run_on("sqlite", "SQLite", None, args, peer))
        else:
            try:
                server = await asyncio.to_thread(start_postgres)
            except ServiceStartError as exc:
                print(f"dispatch_latency: PostgreSQL did not start: {exc}", file=sys.stderr)
                return 1
            try:
                results.append(await run_on("postgresql", f"PostgreSQL {server.version}", server.url(), args, peer))
            except Exception:
                print(f"PostgreSQL log tail:\n{server.log_tail()}", file=sys.stderr)
                raise
            finally:
                await asyncio.to_thread(stop_postgres, server)
        report(results[-1])

    theirs, n_items = results[-1].peer, results[-1].peer_items
    m50, m95 = pct(theirs, 50) * 1000, pct(theirs, 95) * 1000
    print(f"  {'MAVSDK':<14} p50 {m50:7.1f} ms   p95 {m95:7.1f} ms   (upload {n_items} items + arm only)")
    mean_items = statistics.mean(n for r in results for n in r.items)
    for r in results:
        p50, p95 = pct(r.totals, 50) * 1000, pct(r.totals, 95) * 1000
        print(f"  ratio {r.label}/MAVSDK p50 {p50 / m50:.2f}, p95 {p95 / m95:.2f}")
    print(f"  (mean mission length {mean_items:.0f} items)")
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database", choices=(*DATABASES, "both"), default="both", help="store(s) to measure on")
    parser.add_argument("--samples", type=int, default=FLEET_SIZE, help="dispatches per database (one drone each)")
    parser.add_argument("--peer-samples", type=int, default=10)
    parser.add_argument("--verbose", action="store_true", help="one line per dispatch")
    logging.basicConfig(level=logging.WARNING)
    if "--verbose" in sys.argv:
        logging.getLogger("dronedispatch.app.missions").setLevel(logging.DEBUG)
    sys.exit(asyncio.run(main(parser.parse_args())))
