"""Soak: a simulated week of incidents through the whole service, with faults, watching for leaks and loss.

The service runs in this process as the scenario runner runs it (the real Runtime and HTTP app,
the MAVLink link on UDP, the built-in simulated fleet on its own ports, an automatic operator
dispatching through the API) with a generated timeline: ``--incidents`` over ``--days`` at random
times and places in the city's districts, about 2% of them malformed reports that must be refused,
and faults at random - link loss, packet loss bursts, a vehicle going silent for minutes.

Printed while it runs (one line per ``--sample-s`` wall seconds): resident memory and open file
descriptors of the process (the service, the simulated fleet and the runner share it: the trend
after warm-up is what counts), event-loop lag p99 since the last line, and progress. At the end:
memory and descriptors first against last after warm-up, lag p99 over the run, and counts of
anything lost - reports sent against stored, incidents without a decision (no mission, no final
refusal), missions stuck in an active state - plus the runner's own ``nothing_lost`` verdict.
Exit status 1 when anything was lost.

A week at the largest speed factor the simulator takes (200x) is 50 wall minutes; ``--minutes``
caps the wall time (roughly), and the run then covers as much of the week as fits (the same
incident rate, the timeline cut short, then time for the missions in flight to end).

    .venv/bin/python bench/soak.py [--days 7] [--speed-factor 200] [--incidents 2000] [--drones 20] [--minutes 5]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import random
import re
import statistics
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dronedispatch.domain.mission_state import TERMINAL
from dronedispatch.scenario.loader import load_scenario
from dronedispatch.scenario.runner import RunResult, ScenarioRun

#: Places known to be reachable and outside no-fly zones (the surge scenario's), spread over three districts.
PLACES = [
    (37.4034, 126.6437), (37.5427, 126.6497), (37.3702, 126.6655), (37.3854, 126.6307), (37.3995, 126.6416),
    (37.394, 126.6339), (37.4931, 126.548), (37.5277, 126.6347), (37.493, 126.5534), (37.3851, 126.657),
    (37.5244, 126.6372), (37.5253, 126.6359), (37.3851, 126.6349), (37.3923, 126.6506), (37.4893, 126.551),
    (37.367, 126.6521), (37.5354, 126.6318), (37.4895, 126.5543), (37.4924, 126.547),
]  # fmt: skip
CATEGORIES = ["fire", "crime", "facility", "missing_person", "traffic_accident", "environment", "other"]
MALFORMED = [
    '{"category": "fire", "severity": 3, "location": {"lat": 37.39, ',  # cut short
    {"category": "fire", "severity": 3, "location": {"lat": 999, "lon": 126.63}},  # off the planet
    {"category": "volcano", "severity": 9, "location": {"lat": 37.39, "lon": 126.63}},  # no such category
    {"severity": 2},  # nowhere
]
SETTLE_S = 3600.0  # simulated seconds at the end with no new incidents or faults: missions in flight land
SETTLE_WALL_S = 60.0  # ... and at least this much wall time
FEED_SHARE = 0.7  # of the wall budget, incidents keep arriving; the rest is for the last missions to end
WARMUP = 0.25  # the first quarter of the samples is warm-up


@dataclass
class Sample:
    wall_s: float
    sim_s: float
    rss_mb: float
    fds: int
    lag_p99_ms: float
    progress: str


@dataclass
class Monitor:
    """Samples the process and the event loop while the run goes on."""

    run: ScenarioRun
    every_s: float
    quiet: bool = False
    samples: list[Sample] = field(default_factory=list)
    lags: list[float] = field(default_factory=list)
    progress: str = "starting"
    _window: list[float] = field(default_factory=list)

    async def lag_probe(self, period: float = 0.05) -> None:
        loop = asyncio.get_running_loop()
        while True:
            t = loop.time()
            await asyncio.sleep(period)
            lag = max(loop.time() - t - period, 0.0)
            self.lags.append(lag)
            self._window.append(lag)

    async def sampler(self, started: float) -> None:
        while True:
            await asyncio.sleep(self.every_s)
            self.take(started)

    def take(self, started: float) -> None:
        window, self._window = self._window, []
        s = Sample(
            time.monotonic() - started, self.run.clock_now(), rss_mb(), open_fds(), p99(window) * 1000, self.progress
        )
        self.samples.append(s)
        if not self.quiet:
            print(
                f"  wall {s.wall_s:7.0f} s  sim {s.sim_s / 3600:7.2f} h  RSS {s.rss_mb:7.1f} MB  fds {s.fds:5d}  "
                f"lag p99 {s.lag_p99_ms:7.1f} ms  {s.progress}",
                flush=True,
            )


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1e6


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def p99(values: list[float]) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))]


def plan(args: argparse.Namespace) -> tuple[float, float]:
    """(simulated seconds the run may last, simulated seconds in which incidents and faults arrive).

    After the last incident the run waits for every mission to end (it stops as soon as they
    have): at least an hour simulated and a minute of wall time, since uploads, launches and the
    link's timeouts run on the wall clock whatever the speed factor."""
    week = args.days * 86400.0
    feed = week if args.minutes <= 0 else min(week, args.minutes * 60 * args.speed_factor * FEED_SHARE)
    return feed + max(SETTLE_S, SETTLE_WALL_S * args.speed_factor), feed


def scenario(args: argparse.Namespace, drone_ids: list[str], span: float, feed: float) -> dict[str, Any]:
    rng = random.Random(args.seed)
    rate = args.incidents / (args.days * 86400.0)
    count = max(1, round(rate * feed))
    times = sorted(rng.uniform(5.0, feed) for _ in range(count))
    incidents: list[dict[str, Any]] = []
    for k, at in enumerate(times):
        entry: dict[str, Any] = {"id": f"i{k:05d}", "at": round(at, 1), "via": "webhook"}
        if rng.random() < args.malformed:
            entry.update(payload=rng.choice(MALFORMED), expect_rejected=True)
        else:
            lat, lon = rng.choice(PLACES)
            lat, lon = round(lat + rng.uniform(-4e-4, 4e-4), 6), round(lon + rng.uniform(-4e-4, 4e-4), 6)
            entry.update(
                category=rng.choice(CATEGORIES),
                severity=rng.randint(1, 4),
                location={"lat": lat, "lon": lon},
                via=rng.choice(["webhook", "webhook", "operator"]),
            )
        incidents.append(entry)
    faults: list[dict[str, Any]] = []
    n_faults = max(1, round(args.faults_per_hour * feed / 3600.0))
    for _ in range(n_faults):
        at = round(rng.uniform(30.0, feed), 1)
        drone = rng.choice(drone_ids)
        kind = rng.choice(["link_drop", "packet_loss", "silent"])
        if kind == "link_drop":
            faults.append({"at": at, "drone": drone, "kind": "link_drop", "duration": round(rng.uniform(5, 60), 1)})
        elif kind == "packet_loss":
            faults.append({"at": at, "drone": drone, "kind": "packet_loss", "value": round(rng.uniform(0.3, 0.9), 2),
                           "duration": round(rng.uniform(10, 180), 1)})  # fmt: skip
        else:  # the vehicle goes silent for minutes: the link's and the vehicle's link-loss handling
            faults.append({"at": at, "drone": drone, "kind": "link_drop", "duration": round(rng.uniform(180, 600), 1)})
    return {
        "name": "soak",
        "description": f"{count} incidents and {len(faults)} faults over {feed / 3600:.1f} simulated hours",
        "seed": args.seed,
        "speed_factor": args.speed_factor,
        "duration": span,
        "fleet": {"vehicles": args.drones},
        "operator": {"dispatch": "auto", "params": {"time_on_scene_s": 30}, "retry_when_busy": True},
        "incidents": incidents,
        "faults": faults,
        "expect": [{"check": "nothing_lost"}, {"check": "failures_have_reasons"}],
    }


def losses(result: RunResult) -> dict[str, Any]:
    """Counts of anything lost, from what was sent and what the store holds at the end."""
    spec, rec, facts = result.scenario.spec, result.recording, result.facts
    good = [e for e in spec.incidents if not e.expect_rejected]
    bad = [e for e in spec.incidents if e.expect_rejected]
    stored = 0
    for e in good:
        a = rec.arrivals.get(e.id)
        if a is not None and a.incident_id is not None:
            if a.source_ref is None or facts.reports.get(a.source_ref) == a.incident_id:
                stored += 1
    refused = sum(1 for e in bad if (a := rec.arrivals.get(e.id)) is not None and a.error)
    with_mission = {m["incident_id"] for m in facts.missions}
    finally_refused = {r.incident_id for r in rec.refusals if r.final and r.incident_id is not None}
    undecided = sorted(i for i in facts.incidents if i not in with_mission and i not in finally_refused)
    stuck = [m for m in facts.missions if m["state"] not in {str(s) for s in TERMINAL}]
    # how missions ended, and why the failed ones failed (reasons with their numbers stripped, most common first)
    by_state = Counter(str(m["state"]) for m in facts.missions)
    reasons = Counter(re.sub(r"[\d.]+", "N", str(m["reason"]))[:120] for m in facts.missions if m["state"] == "failed")
    verdicts = {v.name: (v.passed, v.detail) for v in result.verdicts}
    return {
        "reports_sent": len(good),
        "reports_stored": stored,
        "reports_lost": len(good) - stored,
        "malformed_sent": len(bad),
        "malformed_refused": refused,
        "malformed_accepted": len(bad) - refused,
        "incidents": len(facts.incidents),
        "incidents_without_decision": len(undecided),
        "undecided_ids": undecided[:20],
        "missions": len(facts.missions),
        "missions_stuck_active": len(stuck),
        "stuck": [(m["id"], m["state"]) for m in stuck[:20]],
        "missions_by_state": dict(by_state),
        "failure_reasons": reasons.most_common(5),
        "verdicts": verdicts,
        "error": result.error,
    }


def lost_anything(out: dict[str, Any]) -> bool:
    return bool(
        out["error"]
        or out["reports_lost"]
        or out["malformed_accepted"]
        or out["incidents_without_decision"]
        or out["missions_stuck_active"]
        or not all(ok for ok, _ in out["verdicts"].values())
    )


def trend(samples: list[Sample]) -> dict[str, Any]:
    after = samples[int(len(samples) * WARMUP) :] or samples
    if not after:
        return {}
    return {
        "samples": len(samples),
        "rss_mb_after_warmup_first_last": [round(after[0].rss_mb, 1), round(after[-1].rss_mb, 1)],
        "rss_mb_peak": round(max(s.rss_mb for s in samples), 1),
        "fds_after_warmup_first_last": [after[0].fds, after[-1].fds],
        "fds_peak": max(s.fds for s in samples),
    }


async def soak(args: argparse.Namespace) -> dict[str, Any]:
    span, feed = plan(args)
    with tempfile.TemporaryDirectory(prefix="dd-soak-") as tmp_name:
        path = Path(tmp_name) / "soak.yaml"
        # the fleet's drone ids first (faults name them), from the same scenario without faults
        path.write_text(yaml.safe_dump(scenario(args, ["x"], span, feed) | {"faults": []}), "utf-8")
        drone_ids = [d.id for d in load_scenario(path).fleet.drones]
        path.write_text(yaml.safe_dump(scenario(args, drone_ids, span, feed)), "utf-8")
        loaded = load_scenario(path)
    spec = loaded.spec
    print(
        f"soak: {len(spec.incidents)} incidents ({sum(e.expect_rejected for e in spec.incidents)} malformed), "
        f"{len(spec.faults)} faults, {len(loaded.fleet.drones)} drones over {feed / 3600:.1f} simulated hours "
        f"({feed / (args.days * 86400) * 100:.0f}% of {args.days:g} days) at {args.speed_factor:g}x",
        flush=True,
    )
    run = ScenarioRun(loaded)
    mon = Monitor(run, args.sample_s, quiet=args.json)
    run.progress = lambda t, d, what: setattr(mon, "progress", what)
    started = time.monotonic()
    mon.take(started)
    probes = [asyncio.create_task(mon.lag_probe()), asyncio.create_task(mon.sampler(started))]
    try:
        result = await run.run()
    finally:
        for t in probes:
            t.cancel()
    out = {
        "simulated_h": round(result.recording.ended_at / 3600, 2),
        "wall_s": round(time.monotonic() - started, 1),
        "speed_factor": args.speed_factor,
        "drones": len(loaded.fleet.drones),
        "faults": len(spec.faults),
        "event_loop_lag_p99_ms": round(p99(mon.lags) * 1000, 1),
        "event_loop_lag_median_ms": round(statistics.median(mon.lags) * 1000, 2) if mon.lags else 0.0,
        **trend(mon.samples),
        "after_stop_rss_mb_fds": [round(rss_mb(), 1), open_fds()],  # the service stopped: what it let go
        **losses(result),
        "notes": result.notes[-5:],
    }
    out["lost_anything"] = lost_anything(out)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--days", type=float, default=7.0, help="simulated days the incidents are spread over")
    ap.add_argument("--speed-factor", type=float, default=200.0, help="simulated seconds per wall second (<= 200)")
    ap.add_argument("--incidents", type=int, default=2000, help="incidents over --days")
    ap.add_argument("--drones", type=int, default=20)
    # 5 wall minutes are ~17 simulated hours at 200x: past warm-up, long enough for a trend (--minutes 10 or 0 for more)
    ap.add_argument("--minutes", type=float, default=5.0, help="wall budget (0: the whole of --days)")
    ap.add_argument("--faults-per-hour", type=float, default=2.0, help="faults per simulated hour, fleet-wide")
    ap.add_argument("--malformed", type=float, default=0.02, help="share of reports that are malformed")
    ap.add_argument("--sample-s", type=float, default=10.0, help="wall seconds between samples")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--json", action="store_true", help="print only the summary, as JSON")
    ap.add_argument("--verbose", action="store_true", help="log the service's warnings too")
    args = ap.parse_args(argv)
    # faults make the service warn all the time (links lost, alerts): errors only, unless asked
    level = logging.WARNING if args.verbose else logging.ERROR
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    out = asyncio.run(soak(args))
    if args.json:
        print(json.dumps(out))
    else:
        print("summary:")
        for k, v in out.items():
            print(f"  {k}: {v}")
    return 1 if out["lost_anything"] else 0


if __name__ == "__main__":
    sys.exit(main())
