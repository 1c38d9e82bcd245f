"""Faults from the timeline applied to the simulated vehicles (and undone after their duration).

Each fault maps onto the simulator's fault-injection calls on :class:`~dronedispatch.sim.vehicle.SimVehicle`:
packet loss and latency act on the vehicle's UDP links in both directions, a link drop cuts them,
GPS loss, a battery fault (the charge jumps to ``value`` percent), a motor failure and wind act
on the vehicle model. A fault the fleet cannot apply (a real PX4 instance has no such hook) is
recorded as a note, never silently ignored.
"""

from __future__ import annotations

import logging
from typing import Any

from dronedispatch.scenario.model import FaultEntry
from dronedispatch.scenario.recording import Recording

log = logging.getLogger(__name__)


class FaultInjector:
    def __init__(self, fleet: Any, rec: Recording, clock: Any) -> None:
        self.fleet = fleet
        self.rec = rec
        self.clock = clock

    def _vehicles(self, f: FaultEntry) -> list[Any]:
        vehicles = self.fleet.vehicles(f.drone)
        if not vehicles:
            self.rec.notes.append(
                f"fault {f.kind} on {f.drone} at {f.at:.0f} s: no vehicle to apply it to "
                "(this fleet has no fault hooks)"
            )
        return vehicles

    def apply(self, f: FaultEntry) -> None:
        vehicles = self._vehicles(f)
        for v in vehicles:
            _apply(v, f, on=True)
        if vehicles:
            what = f"{f.kind}" + (f" {f.value:g}" if f.value is not None else "")
            until = f" for {f.duration:.0f} s" if f.duration is not None else ""
            self.rec.note(self.clock.now(), "fault", f"{what} on {f.drone}{until}")

    def undo(self, f: FaultEntry) -> None:
        vehicles = self._vehicles(f)
        for v in vehicles:
            _apply(v, f, on=False)
        if vehicles:
            self.rec.note(self.clock.now(), "fault", f"{f.kind} on {f.drone} cleared")


def _apply(v: Any, f: FaultEntry, *, on: bool) -> None:
    kind, value = f.kind, f.value or 0.0
    if kind == "packet_loss":
        v.set_link_loss(value if on else 0.0)
    elif kind == "latency":
        v.set_latency(value if on else 0.0)
    elif kind == "link_drop":
        v.drop_link(on)
    elif kind == "gps_loss":
        v.gps_loss(on)
    elif kind == "battery":
        if on:
            v.battery_fault(value)
    elif kind == "motor_failure":
        if on:
            v.motor_failure()
    elif kind == "wind":
        v.set_wind(value if on else 0.0, f.direction)
