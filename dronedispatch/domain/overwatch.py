"""Continuous overwatch: when the drone on scene must leave, and when its relief must launch.

Pure: every function takes the figures it needs (battery, drain rate, distances, ETAs, the time
"now" on the caller's clock) and returns plain values; nothing reads a clock, a socket or a store.

The energy model is :mod:`dronedispatch.domain.planning`'s: the battery falls at a constant rate
(the drone's measured drain, else 100 % / endurance), and a drone must reach its dock with its
reserve. So the drone on scene must leave when

    battery - drain × (now → leave) = reserve + drain × (time to fly home and land)

or earlier, when its mission ends on its own (a finite time on scene). Its relief must be over the
scene ``overlap_s`` (30 s by default) before that, so it launches at

    launch_at = must_leave_at - overlap_s - relief ETA

and of the drones that can make it the best-ranked one is chosen (the candidates come from the
same recommendation as any dispatch, so the fastest one launches last and wastes the least
battery). When none can arrive in time the plan says so, with the gap it predicts: the earliest
arrival minus the moment the drone on scene must leave.

Coverage over time is a list of intervals, one per drone on scene: :func:`timeline` finds the
overlaps at every hand-over and the gaps between them. The theoretical least number of drones for
continuous coverage is endurance / (endurance - transit both ways) (:func:`min_drones`): every
sortie spends the transit out and back off the scene.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import pairwise
from typing import Any

from dronedispatch.domain.planning import DESCENT_SPEED_M_S

#: Seconds both drones are over the scene at a hand-over.
DEFAULT_OVERLAP_S = 30.0


@dataclass(frozen=True, slots=True)
class OnScene:
    """The drone covering the scene now, as the planner needs it."""

    drone_id: str
    battery_pct: float
    drain_pct_per_s: float
    home_m: float  # route length back to its dock
    cruise_speed: float  # m/s
    alt_m: float  # above home: the descent at the dock
    reserve_pct: float = 20.0
    #: When its mission ends by itself (a finite time on scene), on the caller's clock; None: it holds.
    scene_ends_at: float | None = None

    @property
    def home_s(self) -> float:
        """Seconds to fly home and land."""
        return self.home_m / self.cruise_speed + max(self.alt_m, 0.0) / DESCENT_SPEED_M_S


@dataclass(frozen=True, slots=True)
class ReliefOption:
    """A drone that could relieve the one on scene: its ETA from launch, and when it can launch."""

    drone_id: str
    eta_s: float
    ready_at: float | None = None  # None: ready now


@dataclass(frozen=True, slots=True)
class ReliefPlan:
    now: float
    must_leave_at: float
    #: The relief chosen; None when no drone can go at all.
    relief: ReliefOption | None
    launch_at: float | None
    arrive_at: float | None
    #: Seconds between the relief's arrival and the moment the drone on scene must leave (negative: a gap).
    overlap_s: float | None
    #: Seconds the scene is predicted to stay uncovered (0 when the relief arrives in time).
    gap_s: float
    #: The relief arrives in time but with less overlap than asked.
    short_overlap: bool

    @property
    def launch_now(self) -> bool:
        return self.launch_at is not None and self.launch_at <= self.now

    @property
    def gap_predicted(self) -> bool:
        return self.gap_s > 0.0

    def as_dict(self) -> dict[str, object]:
        return {
            "must_leave_in_s": self.must_leave_at - self.now,
            "relief_drone_id": self.relief.drone_id if self.relief else None,
            "launch_in_s": None if self.launch_at is None else self.launch_at - self.now,
            "arrive_in_s": None if self.arrive_at is None else self.arrive_at - self.now,
            "overlap_s": self.overlap_s,
            "gap_s": self.gap_s,
            "short_overlap": self.short_overlap,
        }


def must_leave_at(now: float, d: OnScene) -> float:
    """When the drone on scene must turn for home to land with its reserve (never before ``now``)."""
    if d.drain_pct_per_s <= 0:
        raise ValueError("drain rate must be positive")
    spare_pct = d.battery_pct - d.reserve_pct - d.home_s * d.drain_pct_per_s
    leave = now + max(0.0, spare_pct / d.drain_pct_per_s)
    if d.scene_ends_at is not None:
        leave = min(leave, max(now, d.scene_ends_at))
    return leave


def plan_relief(
    now: float,
    on_scene: OnScene,
    options: Sequence[ReliefOption],
    *,
    overlap_s: float = DEFAULT_OVERLAP_S,
    eta_margin: float = 0.0,
) -> ReliefPlan:
    """The relief for ``on_scene``: the first of ``options`` (best first) that can be over the scene
    ``overlap_s`` before it must leave, launched as late as that allows; else the one arriving
    first, launched as soon as it can, with the gap (or the shortened overlap) it leaves.
    ``eta_margin`` (a fraction) lengthens every ETA: a flight takes longer than the model's
    (upload, arming, accelerating), and arriving early costs only battery."""
    leave = must_leave_at(now, on_scene)
    if not options:
        return ReliefPlan(now, leave, None, None, None, None, float("inf"), False)

    def eta(o: ReliefOption) -> float:
        return o.eta_s * (1.0 + eta_margin)

    def earliest(o: ReliefOption) -> float:
        return max(now, o.ready_at if o.ready_at is not None else now)

    for o in options:
        launch = leave - overlap_s - eta(o)
        if launch >= earliest(o):
            return ReliefPlan(now, leave, o, launch, launch + eta(o), overlap_s, 0.0, False)
    # none in time: whoever is over the scene first, as early as it can launch
    best = min(options, key=lambda o: (earliest(o) + eta(o), o.drone_id))
    launch = earliest(best)
    arrive = launch + eta(best)
    return ReliefPlan(now, leave, best, launch, arrive, leave - arrive, max(0.0, arrive - leave), arrive <= leave)


def drain_from_samples(samples: Sequence[tuple[float, float]], *, min_span_s: float = 20.0) -> float | None:
    """Measured drain (% per second) from (time, battery %) samples of one flight: the least-squares
    slope, or None when they span too little time or show no fall."""
    if len(samples) < 2 or samples[-1][0] - samples[0][0] < min_span_s:
        return None
    n = len(samples)
    mt = sum(t for t, _ in samples) / n
    mb = sum(b for _, b in samples) / n
    var = sum((t - mt) ** 2 for t, _ in samples)
    if var <= 0:
        return None
    slope = sum((t - mt) * (b - mb) for t, b in samples) / var
    return -slope if slope < 0 else None


def min_drones(endurance_s: float, transit_s: float) -> float:
    """The theoretical least number of drones for continuous coverage: endurance / (endurance -
    transit both ways), each flying whole sorties back to back (charging and the overlap at the
    hand-over cost more). ``endurance_s`` is the usable flight time (to the reserve); ``transit_s``
    one way, climb and landing included. Infinite when a sortie leaves no time on scene."""
    on_scene = endurance_s - 2.0 * transit_s
    if endurance_s <= 0 or on_scene <= 0:
        return float("inf")
    return endurance_s / on_scene


@dataclass(frozen=True, slots=True)
class Interval:
    """One drone over the scene, from its arrival to its departure (``end`` None: still there)."""

    drone_id: str
    start: float
    end: float | None
    mission_id: int | None = None


@dataclass(frozen=True, slots=True)
class HandOver:
    from_drone: str
    to_drone: str
    at: float  # when the drone relieved left the scene
    overlap_s: float  # both over the scene; negative: a gap of that length
    from_mission: int | None = None
    to_mission: int | None = None

    @property
    def gap_s(self) -> float:
        return max(0.0, -self.overlap_s)


@dataclass(frozen=True, slots=True)
class Timeline:
    intervals: tuple[Interval, ...]
    handovers: tuple[HandOver, ...]
    gaps: tuple[tuple[float, float], ...]  # uncovered (from, to) within the covered period
    covered_s: float  # at least one drone on scene
    span_s: float  # first arrival to the last departure (or ``now``)

    def as_dict(self) -> dict[str, Any]:
        return {
            "intervals": [
                {"drone_id": i.drone_id, "mission_id": i.mission_id, "start": i.start, "end": i.end}
                for i in self.intervals
            ],
            "handovers": [
                {
                    "from_drone": h.from_drone,
                    "to_drone": h.to_drone,
                    "from_mission": h.from_mission,
                    "to_mission": h.to_mission,
                    "at": h.at,
                    "overlap_s": h.overlap_s,
                    "gap_s": h.gap_s,
                }
                for h in self.handovers
            ],
            "gaps": [{"start": a, "end": b, "seconds": b - a} for a, b in self.gaps],
            "covered_s": self.covered_s,
            "span_s": self.span_s,
        }


def timeline(intervals: Sequence[Interval], now: float) -> Timeline:
    """Coverage from the drones' intervals on scene: hand-overs (each interval to the next one to
    arrive, with their overlap or gap), the uncovered stretches, and the time covered."""
    ivs = sorted(intervals, key=lambda i: (i.start, i.mission_id or 0))
    if not ivs:
        return Timeline((), (), (), 0.0, 0.0)

    def end(i: Interval) -> float:
        return now if i.end is None else i.end

    handovers = [
        HandOver(a.drone_id, b.drone_id, end(a), end(a) - b.start, a.mission_id, b.mission_id) for a, b in pairwise(ivs)
    ]
    gaps: list[tuple[float, float]] = []
    covered = 0.0
    cur_start, cur_end = ivs[0].start, end(ivs[0])
    for i in ivs[1:]:
        if i.start > cur_end:
            gaps.append((cur_end, i.start))
            covered += cur_end - cur_start
            cur_start, cur_end = i.start, end(i)
        else:
            cur_end = max(cur_end, end(i))
    covered += cur_end - cur_start
    span = max(end(i) for i in ivs) - ivs[0].start
    return Timeline(tuple(ivs), tuple(handovers), tuple(gaps), covered, span)
