"""What a run recorded: tracks, battery, link, mission states, arrivals, refusals, alerts.

Filled from the service's event bus by :class:`Recorder` (``drone``, ``mission``, ``incident``
and ``alert`` events), stamped with scenario time (simulated seconds since the start). Plain
data, so the expectations and the report are pure functions of it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class Sample:
    t: float
    lat: float
    lon: float
    alt: float
    battery: float | None
    link_ok: bool
    loss: float
    state: str
    armed: bool
    landed: bool
    mission_id: int | None


@dataclass
class MissionTrace:
    id: int
    incident_id: int
    drone_id: str
    states: list[tuple[float, str]] = field(default_factory=list)
    reason: str | None = None
    approval: bool = False

    @property
    def final(self) -> str:
        return self.states[-1][1] if self.states else "planned"

    def first(self, state: str) -> float | None:
        return next((t for t, s in self.states if s == state), None)


@dataclass
class Arrival:
    """One timeline incident as sent, and what became of it."""

    ref: str
    via: str
    sent_at: float
    incident_id: int | None = None
    error: str | None = None
    source_ref: str | None = None


@dataclass
class Refusal:
    t: float
    ref: str
    code: str
    reason: str
    final: bool = True  # False: retried later (no drone was free)
    incident_id: int | None = None


@dataclass
class Recording:
    tracks: dict[str, list[Sample]] = field(default_factory=dict)
    missions: dict[int, MissionTrace] = field(default_factory=dict)
    arrivals: dict[str, Arrival] = field(default_factory=dict)
    refusals: list[Refusal] = field(default_factory=list)
    alerts: list[tuple[float, dict[str, Any]]] = field(default_factory=list)
    events: list[tuple[float, str, str]] = field(default_factory=list)  # timeline for the report
    incidents_seen: dict[int, float] = field(default_factory=dict)
    pilot_commands: list[tuple[float, str, str, str]] = field(default_factory=list)  # t, ref, command, result
    video: dict[int, tuple[bool, str]] = field(default_factory=dict)  # mission → (frame seen, detail)
    dispatched_at: dict[int, float] = field(default_factory=dict)  # mission → when the operator clicked dispatch
    #: drone → (t, seq) of each mission item its simulated vehicle reached, stamped by the simulator itself
    reached: dict[str, list[tuple[float, int]]] = field(default_factory=dict)
    ended_at: float = 0.0
    notes: list[str] = field(default_factory=list)
    #: per incident: (t, the service's drone on scene, coverage mode) at each change, from incident events
    coverage: dict[int, list[tuple[float, str | None, str]]] = field(default_factory=dict)
    #: per dock: (t, door opening time the dock reported) at each dock event that carried one
    door_open_s: dict[str, list[tuple[float, float]]] = field(default_factory=dict)

    def note(self, t: float, kind: str, text: str) -> None:
        self.events.append((t, kind, text))

    def on_dock(self, t: float, d: dict[str, Any]) -> None:
        door = d.get("door_open_s")
        if door is not None:
            self.door_open_s.setdefault(str(d["dock_id"]), []).append((t, float(door)))

    def door_s_at(self, dock_id: str, t: float) -> float | None:
        """The door opening time ``dock_id`` had reported by ``t`` (None: it reported none)."""
        return next((s for at, s in reversed(self.door_open_s.get(dock_id, [])) if at <= t), None)

    def on_drone(self, t: float, d: dict[str, Any]) -> None:
        pos = d.get("position")
        if not pos or pos.get("lat") is None:
            return
        link = d.get("link") or {}
        self.tracks.setdefault(d["id"], []).append(
            Sample(
                t=t,
                lat=pos["lat"],
                lon=pos["lon"],
                alt=pos.get("alt") or 0.0,
                battery=d.get("battery"),
                link_ok=bool(link.get("ok", True)),
                loss=float(link.get("loss") or 0.0),
                state=d.get("state", ""),
                armed=bool(d.get("armed")),
                landed=bool(d.get("landed", True)),
                mission_id=d.get("mission_id"),
            )
        )

    def on_mission(self, t: float, m: dict[str, Any]) -> None:
        trace = self.missions.get(m["id"])
        if trace is None:
            check = m.get("airspace_check") or {}
            trace = self.missions[m["id"]] = MissionTrace(
                m["id"], m["incident_id"], m["drone_id"], approval=bool(check.get("approvals_used"))
            )
        if not trace.states or trace.states[-1][1] != m["state"]:
            trace.states.append((t, m["state"]))
            self.note(
                t,
                "mission",
                f"mission {m['id']} ({m['drone_id']}): {m['state']}" + (f" — {m['reason']}" if m.get("reason") else ""),
            )
        if m.get("reason"):
            trace.reason = m["reason"]

    def on_incident(self, t: float, d: dict[str, Any]) -> None:
        series = self.coverage.setdefault(d["id"], [])
        entry = (t, d.get("on_scene_drone_id"), d.get("coverage_mode") or "none")
        if not series or series[-1][1:] != entry[1:]:
            series.append(entry)

    def on_alert(self, t: float, a: dict[str, Any]) -> None:
        self.alerts.append((t, a))
        self.note(t, "alert", f"{a.get('level')}: {a.get('message')}")

    def ref_of(self, incident_id: int) -> str | None:
        return next((a.ref for a in self.arrivals.values() if a.incident_id == incident_id), None)

    def missions_for(self, ref: str) -> list[MissionTrace]:
        arrival = self.arrivals.get(ref)
        if arrival is None or arrival.incident_id is None:
            return []
        return sorted((m for m in self.missions.values() if m.incident_id == arrival.incident_id), key=lambda m: m.id)

    def on_scene_at(self, ref: str) -> tuple[float, str] | None:
        """When a drone was first on the scene of incident ``ref`` after its report arrived, and which.

        A report that merged into an incident whose drone is already there is answered on arrival;
        a drone that had already left the scene before the report came does not count.
        """
        arrival = self.arrivals.get(ref)
        since = arrival.sent_at if arrival is not None else 0.0
        hits = []
        for m in self.missions_for(ref):
            t = m.first("on_scene")
            if t is None:
                continue
            if t >= since:
                hits.append((t, m.drone_id))
                continue
            left = next((tt for tt, s in m.states if tt > t and s != "on_scene"), None)
            if left is None or left > since:
                hits.append((since, m.drone_id))
        return min(hits) if hits else None

    def response_s(self, ref: str) -> float | None:
        arrival = self.arrivals.get(ref)
        hit = self.on_scene_at(ref)
        if arrival is None or hit is None:
            return None
        return hit[0] - arrival.sent_at
