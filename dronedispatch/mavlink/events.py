"""What the link tells its listeners. Listeners are called synchronously on the event loop."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from dronedispatch.mavlink.vehicle import Vehicle


@dataclass(frozen=True, slots=True)
class VehicleDiscovered:
    vehicle: Vehicle


@dataclass(frozen=True, slots=True)
class VehicleLost:
    vehicle: Vehicle


@dataclass(frozen=True, slots=True)
class VehicleRecovered:
    vehicle: Vehicle


@dataclass(frozen=True, slots=True)
class StateChanged:
    """Armed, mode, landed state, mission progress, home or system status changed."""

    vehicle: Vehicle
    changed: frozenset[str]


@dataclass(frozen=True, slots=True)
class Telemetry:
    """Position / battery update, at most telemetry_rate_hz per vehicle."""

    vehicle: Vehicle


@dataclass(frozen=True, slots=True)
class StatusText:
    vehicle: Vehicle
    severity: int
    text: str


VehicleEvent = VehicleDiscovered | VehicleLost | VehicleRecovered | StateChanged | Telemetry | StatusText
