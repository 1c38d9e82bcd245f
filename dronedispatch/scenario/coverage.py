"""Continuous overwatch in a recorded run: coverage per incident, hand-overs, the drone the video
followed, and drones needed per hour of coverage against the fleet's theoretical minimum.

Pure functions of the :class:`~dronedispatch.scenario.recording.Recording` (and the fleet), plus
the charts and the HTML section the report embeds. Times are scenario seconds (simulated).

- A drone is *on scene* from its mission's ``on_scene`` to the state after it (the service's view,
  which the hand-over and the coverage timeline use); it is *actually over the scene* when its track
  is airborne within :data:`SCENE_RADIUS_M` of the incident (what ``video_followed`` compares with).
- Drones needed per hour of coverage = flight time of the incident's missions / time covered;
  its floor is endurance / (endurance - transit both ways) (:func:`dronedispatch.domain.overwatch.min_drones`),
  with the usable endurance (to the reserve) and the transit measured in the run.
"""

from __future__ import annotations

import base64
import html
import io
from dataclasses import dataclass
from statistics import mean
from typing import Any

import matplotlib

matplotlib.use("Agg")  # no display; must precede pyplot
import matplotlib.pyplot as plt

from dronedispatch.domain import overwatch
from dronedispatch.domain.fleet import FleetConfig
from dronedispatch.domain.geo import distance_m
from dronedispatch.domain.planning import DEFAULT_RESERVE_PCT
from dronedispatch.scenario.recording import MissionTrace, Recording, Sample

#: A drone within this distance of the incident, airborne, is over the scene (stand-off and orbit radii).
SCENE_RADIUS_M = 150.0
AIRBORNE_M = 5.0
TERMINAL = ("completed", "aborted", "failed")


def covered_incidents(rec: Recording) -> list[int]:
    """Incidents that asked for coverage at some point of the run."""
    return sorted(i for i, series in rec.coverage.items() if any(mode != "none" for _, _, mode in series))


def _interval(
    m: MissionTrace, end: float, track: list[Sample] | None = None, where: tuple[float, float] | None = None
) -> overwatch.Interval | None:
    """From the mission's ``on_scene`` to the state after it; with the drone's track and the scene's
    place, from when the drone was really over the scene (a stale progress report cannot start it early)."""
    start = m.first("on_scene")
    if start is None:
        return None
    left = next((t for t, s in m.states if t >= start and s != "on_scene"), None)
    if track is not None and where is not None:
        there = next((s.t for s in track if s.t >= start and _over_scene(s, *where)), None)
        if there is None or (left is not None and there > left):
            return None
        start = there
    return overwatch.Interval(m.drone_id, start, left if left is not None else end, m.id)


def timeline(rec: Recording, incident_id: int, where: tuple[float, float] | None = None) -> overwatch.Timeline:
    missions = [m for m in rec.missions.values() if m.incident_id == incident_id]
    ivs = [
        iv
        for m in missions
        if (iv := _interval(m, rec.ended_at, rec.tracks.get(m.drone_id) if where else None, where)) is not None
    ]
    return overwatch.timeline(ivs, rec.ended_at)


@dataclass(frozen=True)
class Rotation:
    """How many drones an hour of coverage took, against the theoretical minimum."""

    covered_s: float
    flight_s: float
    sorties: int
    endurance_s: float  # usable: to the reserve
    transit_s: float  # one way, measured: launch to on scene, and leaving to landed, averaged

    @property
    def drones_per_hour(self) -> float:
        return self.flight_s / self.covered_s if self.covered_s > 0 else float("inf")

    @property
    def sorties_per_hour(self) -> float:
        return self.sorties * 3600.0 / self.covered_s if self.covered_s > 0 else float("inf")

    @property
    def minimum(self) -> float:
        return overwatch.min_drones(self.endurance_s, self.transit_s)


def rotation(
    rec: Recording, incident_id: int, fleet: FleetConfig, where: tuple[float, float] | None = None
) -> Rotation | None:
    missions = [m for m in rec.missions.values() if m.incident_id == incident_id and m.first("on_scene") is not None]
    if not missions:
        return None
    flights, outs, backs = [], [], []
    for m in missions:
        start = m.states[0][0]
        on_scene = m.first("on_scene")
        iv = _interval(m, rec.ended_at)
        end = next((t for t, s in m.states if s in TERMINAL), rec.ended_at)
        assert on_scene is not None and iv is not None and iv.end is not None
        flights.append(end - start)
        outs.append(on_scene - start)
        if any(s in TERMINAL for _, s in m.states):
            backs.append(end - iv.end)
    drones = {d.id: d for d in fleet.drones}
    used = [drones[m.drone_id] for m in missions if m.drone_id in drones]
    endurance = mean(d.endurance_min for d in used) * 60.0 * (1 - DEFAULT_RESERVE_PCT / 100) if used else 0.0
    transit = (mean(outs) + (mean(backs) if backs else mean(outs))) / 2
    return Rotation(timeline(rec, incident_id, where).covered_s, sum(flights), len(missions), endurance, transit)


def _over_scene(s: Sample, lat: float, lon: float) -> bool:
    return not s.landed and s.alt > AIRBORNE_M and distance_m(s.lat, s.lon, lat, lon) <= SCENE_RADIUS_M


def video_mismatches(
    rec: Recording, incident_id: int, where: tuple[float, float], *, tolerance_s: float, step_s: float = 1.0
) -> tuple[list[tuple[float, float, str]], float]:
    """Stretches longer than ``tolerance_s`` when the service's drone on scene (``on_scene_drone_id``)
    was not a drone actually over the scene (or named none while one was there): (from, to, what),
    and the time checked."""
    series = rec.coverage.get(incident_id, [])
    tracks = {d: samples for d, samples in rec.tracks.items() if samples}
    first = min((s.t for samples in tracks.values() for s in samples if _over_scene(s, *where)), default=None)
    if first is None:
        return [], 0.0
    idx = {d: 0 for d in tracks}
    k = 0
    bad: list[tuple[float, float, str]] = []
    open_at: float | None = None
    why = ""
    t = first
    while t <= rec.ended_at:
        over = set()
        for d, samples in tracks.items():
            while idx[d] + 1 < len(samples) and samples[idx[d] + 1].t <= t:
                idx[d] += 1
            if samples[idx[d]].t <= t and _over_scene(samples[idx[d]], *where):
                over.add(d)
        while k + 1 < len(series) and series[k + 1][0] <= t:
            k += 1
        named = series[k][1] if series and series[k][0] <= t else None
        wrong = (named is not None and named not in over) or (named is None and bool(over))
        if wrong and open_at is None:
            open_at = t
            why = f"service showed {named or 'no drone'}, over the scene: {', '.join(sorted(over)) or 'none'}"
        elif not wrong and open_at is not None:
            if t - open_at > tolerance_s:
                bad.append((open_at, t, why))
            open_at = None
        t += step_s
    if open_at is not None and rec.ended_at - open_at > tolerance_s:
        bad.append((open_at, rec.ended_at, why))
    return bad, rec.ended_at - first


# -- report ----------------------------------------------------------------------------------------
def _png(fig: Any) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def coverage_png(rec: Recording, incident_id: int, where: tuple[float, float] | None = None) -> str:
    """One bar per drone on scene over time (the hand-overs overlap), gaps in red; battery below."""
    tl = timeline(rec, incident_id, where)
    drones = sorted({i.drone_id for i in tl.intervals})
    fig, (ax, bx) = plt.subplots(2, 1, figsize=(9, 4.8), sharex=True, height_ratios=(1, 1.3))
    for i in tl.intervals:
        end = i.end if i.end is not None else rec.ended_at
        ax.barh(drones.index(i.drone_id), end - i.start, left=i.start, height=0.6)
    for a, b in tl.gaps:
        ax.axvspan(a, b, color="#d62728", alpha=0.3)
    ax.set_yticks(range(len(drones)), drones)
    ax.set_title("on scene (red: uncovered)")
    ax.grid(alpha=0.3)
    for d in drones:
        pts = [(s.t, s.battery) for s in rec.tracks.get(d, []) if s.battery is not None]
        if pts:
            bx.plot([p[0] for p in pts], [p[1] for p in pts], linewidth=1.1, label=d)
    bx.set_ylabel("battery, %")
    bx.set_xlabel("scenario time, s (simulated)")
    bx.grid(alpha=0.3)
    if bx.get_legend_handles_labels()[0]:
        bx.legend(fontsize=7, ncol=6, loc="best")
    return _png(fig)


def html_section(rec: Recording, fleet: FleetConfig, incidents: dict[int, dict[str, Any]]) -> list[str]:
    """Per covered incident: the coverage and battery chart, each hand-over's overlap or gap, and drones
    needed per hour of coverage against the theoretical minimum."""
    out: list[str] = []
    for incident_id in covered_incidents(rec):
        inc = incidents.get(incident_id)
        where = (inc["lat"], inc["lon"]) if inc else None
        tl = timeline(rec, incident_id, where)
        out.append(f"<h2>Coverage of incident {incident_id}</h2>")
        png = coverage_png(rec, incident_id, where)
        out.append(f"<img alt='coverage and battery' src='data:image/png;base64,{png}'>")
        out.append("<table><tr><th>hand-over</th><th>from</th><th>to</th><th>at</th><th>overlap</th><th>gap</th></tr>")
        for n, h in enumerate(tl.handovers, 1):
            out.append(
                f"<tr><td>{n}</td><td>{html.escape(h.from_drone)}</td><td>{html.escape(h.to_drone)}</td>"
                f"<td>{h.at:.0f} s</td><td>{max(h.overlap_s, 0.0):.0f} s</td><td>{h.gap_s:.0f} s</td></tr>"
            )
        out.append("</table>")
        rot = rotation(rec, incident_id, fleet, where)
        if rot is not None:
            out.append(
                f"<p>Covered {rot.covered_s / 60:.1f} min with {rot.sorties} sorties ({rot.sorties_per_hour:.1f} per "
                f"hour); gaps {sum(b - a for a, b in tl.gaps):.0f} s. Drones needed per hour of coverage: "
                f"<b>{rot.drones_per_hour:.2f}</b> (flight time / time covered) against the theoretical minimum "
                f"<b>{rot.minimum:.2f}</b> = endurance / (endurance − transit both ways), with {rot.endurance_s:.0f} s "
                f"usable endurance and {rot.transit_s:.0f} s transit each way.</p>"
            )
    return out
