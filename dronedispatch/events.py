"""Every event on the bus and every message on the WebSocket ``/api/v1/events``, in one place.

An event is a pydantic model whose ``type`` names it and whose ``data`` is the same public model
the HTTP API returns for that object, so a browser reads a drone from ``GET /drones`` and from a
``drone`` event alike. :data:`EVENT` reads any of them back from JSON (a broker-backed bus
carries the JSON between nodes).

WebSocket messages, in order: one :class:`SnapshotMessage` on connect, then every event as it
happens. Telemetry is coalesced per drone for a slow client (``DroneChanged.key``).
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, Field, TypeAdapter

from dronedispatch.bus import BusEvent
from dronedispatch.domain.docks import DockState
from dronedispatch.schemas import Alert, DronePublic, IncidentPublic, MissionPublic


class DroneChanged(BusEvent):
    """A drone's live state: position, battery, mode, link, mission (several times a second in flight)."""

    type: Literal["drone"] = "drone"
    data: DronePublic

    @property
    def key(self) -> str:
        return f"drone:{self.data.id}"


class IncidentChanged(BusEvent):
    """An incident was created, merged into, dispatched, requeued or closed."""

    type: Literal["incident"] = "incident"
    data: IncidentPublic


class MissionChanged(BusEvent):
    """A mission changed state (or was launched); ``data.progress`` is the vehicle's item/total."""

    type: Literal["mission"] = "mission"
    data: MissionPublic


class AlertRaised(BusEvent):
    """Something a person must see: a lost link, a failed mission, a vehicle's warning."""

    type: Literal["alert"] = "alert"
    data: Alert


class DockChanged(BusEvent):
    """A dock's live state changed: door, drone present, charging, fault, weather (as the dock published it)."""

    type: Literal["dock"] = "dock"
    data: DockState

    @property
    def key(self) -> str:
        return f"dock:{self.data.dock_id}"


Event = Annotated[
    DroneChanged | IncidentChanged | MissionChanged | AlertRaised | DockChanged, Field(discriminator="type")
]
#: Reads any event back from its JSON (``EVENT.validate_json(text)``).
EVENT: TypeAdapter[DroneChanged | IncidentChanged | MissionChanged | AlertRaised | DockChanged] = TypeAdapter(Event)


class Snapshot(BaseModel):
    """What a browser needs on connect, before the stream of changes."""

    drones: list[DronePublic]
    incidents: list[IncidentPublic]
    missions: list[MissionPublic]


class SnapshotMessage(BaseModel):
    """The first WebSocket message: the snapshot and who the connection speaks for."""

    type: Literal["snapshot"] = "snapshot"
    data: Snapshot
    user: str
    role: str
