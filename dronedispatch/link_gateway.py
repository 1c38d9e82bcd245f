"""The vehicle gateway over this process's own MAVLink links.

Implements :class:`dronedispatch.app.ports.VehicleGateway`: services ask it for a vehicle's
capabilities by system id and never see a link itself. One node holds one link with every
``DD_MAVLINK`` entry; with several nodes, each holds the links its leases give it, opened and
closed as the leases come and go (``links`` changes under the gateway).
"""

from __future__ import annotations

from collections.abc import Iterable

from dronedispatch.mavlink.camera import CameraCapability
from dronedispatch.mavlink.link import MavlinkLink
from dronedispatch.mavlink.vehicle import Vehicle


class LinkGateway:
    def __init__(self, links: Iterable[MavlinkLink] = ()) -> None:
        self.links: list[MavlinkLink] = list(links)

    def vehicle(self, sysid: int) -> Vehicle | None:
        for link in self.links:
            vehicle = link.vehicles.get(sysid)
            if vehicle is not None:
                return vehicle
        return None

    def camera(self, sysid: int) -> CameraCapability | None:
        vehicle = self.vehicle(sysid)
        return CameraCapability(vehicle) if vehicle is not None else None

    def vehicles(self) -> Iterable[Vehicle]:
        return [v for link in self.links for v in link.vehicles.values()]
