"""The vehicle gateway over this process's own MAVLink link.

Implements :class:`dronedispatch.app.ports.VehicleGateway`: services ask it for a vehicle's
capabilities by system id and never see the link itself. A node that does not hold a vehicle's
link would implement the same port by asking the node that does.
"""

from __future__ import annotations

from collections.abc import Iterable

from dronedispatch.mavlink.camera import CameraCapability
from dronedispatch.mavlink.link import MavlinkLink
from dronedispatch.mavlink.vehicle import Vehicle


class LinkGateway:
    def __init__(self, link: MavlinkLink) -> None:
        self.link = link

    def vehicle(self, sysid: int) -> Vehicle | None:
        return self.link.vehicles.get(sysid)

    def camera(self, sysid: int) -> CameraCapability | None:
        vehicle = self.link.vehicles.get(sysid)
        return CameraCapability(vehicle) if vehicle is not None else None

    def vehicles(self) -> Iterable[Vehicle]:
        return list(self.link.vehicles.values())
