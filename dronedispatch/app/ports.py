"""The narrow interfaces the application services are given, and nothing more.

- repositories (:class:`IncidentRepository`, :class:`MissionRepository`, …): the store, the one
  source of truth; blocking calls, so services make them from a worker thread, never on the loop;
- a publisher (:class:`dronedispatch.bus.Publisher`): typed events to browsers and other nodes;
- the live fleet (:class:`dronedispatch.app.fleet.DroneRegistry`);
- a vehicle gateway (:class:`VehicleGateway`): a connected vehicle's capabilities (mission,
  command, camera) by system id. The MAVLink link implements it today; a node that does not hold
  a vehicle can implement it by asking the node that does.

The store in :mod:`dronedispatch.store.repo` implements every repository; tests may give a
service any object that does.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any, Protocol

from dronedispatch.domain.docks import DockState
from dronedispatch.domain.incidents import Report
from dronedispatch.domain.mission_items import MissionItem
from dronedispatch.mavlink.camera import StreamInfo
from dronedispatch.mavlink.state import LinkHealth, VehicleState
from dronedispatch.store.models import Evidence, Incident, IncidentReport, Mission, TelemetrySample

# -- repositories -------------------------------------------------------------------------------


class AuditLog(Protocol):
    def audit(self, actor: str, action: str, target_type: str, target_id: object, **detail: Any) -> None: ...


class IncidentRepository(Protocol):
    def create_incident(self, report: Report, lat: float, lon: float, *, district: str | None = None) -> Incident: ...
    def merge_report(self, incident_id: int, report: Report) -> Incident: ...
    def get_incident(self, incident_id: int) -> Incident: ...
    def open_incidents(self) -> Sequence[Incident]: ...
    def open_incidents_with_reports(self) -> list[tuple[Incident, Sequence[IncidentReport]]]: ...
    def incident_reports(self, incident_id: int) -> Sequence[IncidentReport]: ...
    def update_incident(self, incident_id: int, **fields: Any) -> Incident: ...


class MissionRepository(Protocol):
    def get_mission(self, mission_id: int) -> Mission: ...
    def update_mission(self, mission_id: int, **fields: Any) -> Mission: ...
    def list_missions(
        self, *, active: bool | None = None, incident_id: int | None = None, limit: int = 100, offset: int = 0
    ) -> Sequence[Mission]: ...
    def active_mission_for_drone(self, drone_id: str) -> Mission | None: ...
    def active_mission_for_sysid(self, sysid: int) -> Mission | None: ...
    def active_missions(self) -> dict[str, int]: ...
    def dispatch_mission(
        self, mission: Mission, *, actor: str, audit_detail: dict[str, Any]
    ) -> tuple[Mission, Incident]: ...
    def record_transition(
        self, mission_id: int, fields: dict[str, Any], *, actor: str, action: str, detail: dict[str, Any]
    ) -> Mission: ...


class EvidenceRepository(Protocol):
    def add_evidence(self, evidence: Evidence, *, actor: str = ..., **detail: Any) -> Evidence: ...
    def list_evidence(self, *, mission_id: int | None = None, incident_id: int | None = None) -> Sequence[Evidence]: ...


class DroneRepository(Protocol):
    def set_maintenance(self, drone_id: str, maintenance: bool) -> None: ...
    def maintenance_flags(self) -> dict[str, bool]: ...


class TelemetryRepository(Protocol):
    def add_samples(self, samples: Sequence[TelemetrySample]) -> None: ...
    def track(self, mission_id: int) -> list[TelemetrySample]: ...


class DispatchStore(IncidentRepository, MissionRepository, EvidenceRepository, AuditLog, Protocol):
    """What dispatching reads and writes."""


class MissionStore(IncidentRepository, MissionRepository, AuditLog, Protocol):
    """What flying missions reads and writes."""


class VideoStore(MissionRepository, EvidenceRepository, AuditLog, Protocol):
    """What live video and its recordings write."""


class FleetStore(DroneRepository, MissionRepository, AuditLog, Protocol):
    """What the live fleet reads and writes."""


# -- vehicles -----------------------------------------------------------------------------------


class MissionControl(Protocol):
    async def upload(self, items: list[MissionItem]) -> int:
        """Upload a mission; the vehicle's opaque_id of the plan it stored."""
        ...

    async def download(self) -> list[MissionItem]:
        """Read the plan the vehicle holds now."""
        ...


class CommandControl(Protocol):
    async def arm(self, force: bool = False) -> int: ...
    async def disarm(self, force: bool = False) -> int: ...
    async def mission_start(self, first: int = 0, last: int = -1) -> int: ...
    async def return_to_launch(self) -> int: ...
    async def land(self) -> int: ...
    async def pause(self) -> int: ...
    async def resume(self) -> int: ...
    async def reposition(self, lat: float, lon: float, alt: float) -> int: ...


class CameraControl(Protocol):
    async def stream_information(self, stream_id: int = 1) -> StreamInfo: ...
    async def start_streaming(self, stream_id: int = 0) -> int: ...
    async def stop_streaming(self, stream_id: int = 0) -> int: ...


class VehicleHandle(Protocol):
    """A connected vehicle as services use it: what it reports, and what it can be told."""

    @property
    def sysid(self) -> int: ...
    @property
    def state(self) -> VehicleState: ...
    @property
    def health(self) -> LinkHealth: ...
    @property
    def mission(self) -> MissionControl: ...
    @property
    def command(self) -> CommandControl: ...


class VehicleGateway(Protocol):
    def vehicle(self, sysid: int) -> VehicleHandle | None:
        """The vehicle with ``sysid`` if it has been heard (it may be lost since: see ``health``)."""
        ...

    def camera(self, sysid: int) -> CameraControl | None:
        """The camera of vehicle ``sysid``, if the vehicle has been heard."""
        ...

    def vehicles(self) -> Iterable[VehicleHandle]: ...


# -- docks --------------------------------------------------------------------------------------


class DockAdapter(Protocol):
    """The docks as devices: their states as they come, and open/close commands to them.

    :class:`dronedispatch.devices.dock_mqtt.MqttDockAdapter` speaks the JSON-over-MQTT layout of
    docs/docks-mqtt.md; a vendor's own protocol can implement this instead.
    """

    async def start(self, on_state: Callable[[DockState], None]) -> None:
        """Begin receiving (returns at once); ``on_state`` is called on the loop with each valid state."""
        ...

    async def stop(self) -> None: ...

    async def send(self, dock_id: str, command: str, request_id: str) -> None:
        """Send ``open`` or ``close``; raises ConnectionError when the dock cannot be reached now."""
        ...


# -- other nodes --------------------------------------------------------------------------------


class PeerNodes(Protocol):
    """The other service nodes, for what only the node holding a vehicle's link may do.

    One node alone has no peers (:class:`NoPeers`); with several, the cluster's request/reply
    carries launches and pilot commands to the holder and its answer (or refusal) back.
    """

    def holder_of(self, drone_id: str) -> str | None:
        """The other node that holds this drone's link now, or None (this node, or nobody)."""
        ...

    async def locate(self, drone_id: str) -> str | None:
        """:meth:`holder_of` from the nodes' latest heartbeats, read now (a link may have just moved)."""
        ...

    async def launch(self, node: str, mission_id: int, return_seq: int | None) -> None:
        """Have ``node`` fly the recorded mission; returns once it has taken it."""
        ...

    async def command(
        self, node: str, mission_id: int, command: str, actor: str, position: tuple[float, float] | None
    ) -> None:
        """Have ``node`` carry out a pilot command; raises the refusal it answered with."""
        ...


class NoPeers:
    """One node alone: every vehicle it can reach is its own."""

    def holder_of(self, drone_id: str) -> str | None:
        return None

    async def locate(self, drone_id: str) -> str | None:
        return None

    async def launch(self, node: str, mission_id: int, return_seq: int | None) -> None:
        raise RuntimeError("no other node")

    async def command(
        self, node: str, mission_id: int, command: str, actor: str, position: tuple[float, float] | None
    ) -> None:
        raise RuntimeError("no other node")
