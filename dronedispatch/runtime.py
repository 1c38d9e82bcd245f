"""The running service: every long-lived part, started and stopped in order.

One :class:`Runtime` per process. The API reaches it through ``app.state.runtime``; nothing
is created at import time.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from datetime import UTC, datetime
from typing import Any

from dronedispatch import cityfiles
from dronedispatch.domain import templates as templates_mod
from dronedispatch.domain.airspace import Airspace
from dronedispatch.domain.assets import AssetRegistry, load_assets
from dronedispatch.domain.incidents import Report
from dronedispatch.drones import DroneEntry, DroneRegistry
from dronedispatch.events import Event, LocalEventBus
from dronedispatch.ingest.base import IngestError, IngestStats, Problem
from dronedispatch.ingest.mqtt import MqttIngest, default_topics
from dronedispatch.live_video import LiveVideo
from dronedispatch.mavlink import events as link_events
from dronedispatch.mavlink.link import MavlinkLink
from dronedispatch.mavlink.vehicle import Vehicle
from dronedispatch.schemas import Alert, AlertLevel, IncidentPublic, MissionPublic
from dronedispatch.settings import Settings
from dronedispatch.store.db import make_engine, migrate
from dronedispatch.store.models import Incident, Mission
from dronedispatch.store.repo import Store

log = logging.getLogger(__name__)


class Runtime:
    def __init__(self, settings: Settings) -> None:
        from dronedispatch.dispatch import Dispatcher
        from dronedispatch.missions import MissionSupervisor

        self.settings = settings
        self.engine = make_engine(settings.database_url)
        self.store = Store(self.engine)
        self.bus = LocalEventBus()
        self.fleet = cityfiles.load_fleet(settings.fleet)
        self.registry = DroneRegistry(self.fleet)
        self.airspace = Airspace.from_geojson(cityfiles.read_structured(settings.airspace))
        self.cameras: AssetRegistry = load_assets(settings.cameras)
        self.ingest_stats = IngestStats()
        self.districts: dict[str, Any] = cityfiles.read_structured(settings.districts)
        self.templates = templates_mod.load_templates()
        self.link: MavlinkLink | None = None
        self.mqtt: MqttIngest | None = None
        self.dispatcher = Dispatcher(self)
        self.missions = MissionSupervisor(self)
        self.video = LiveVideo(self)
        self.started_at = datetime.now(UTC)
        self._unsubscribe: Any = None

    # -- lifecycle -----------------------------------------------------------------------------
    async def start(self) -> None:
        self.bus.bind(asyncio.get_running_loop())
        await asyncio.to_thread(migrate, self.engine)
        self.link = MavlinkLink(
            self.settings.mavlink_urls,
            signing_keys=self.settings.signing_key_bytes,
            lost_after_s=self.settings.link_lost_after_s,
            telemetry_rate_hz=self.settings.telemetry_rate_hz,
            busy_poll_s=self.settings.link_busy_poll_ms / 1000,
        )
        self._unsubscribe = self.link.add_listener(self._on_link_event)
        await self.link.start()
        for drone_id, detail in self.store.latest_audit_detail("drone.maintenance", "drone").items():
            entry = self.registry.get(drone_id)
            if entry is not None:
                entry.maintenance = bool(detail.get("maintenance"))
        self.missions.resume_from_store()
        if self.settings.mqtt_url:
            self.mqtt = MqttIngest(
                self.settings.mqtt_url,
                default_topics(),
                self._on_ingested_report,
                self._on_ingest_error,
                client_id=self._mqtt_client_id(),
                stats=self.ingest_stats,
                error_topic="dronedispatch/ingest-errors",
            )
            await self.mqtt.start()
        log.info(
            "service started: %d drones in the fleet file, MAVLink on %s",
            len(self.fleet.drones),
            self.settings.mavlink_urls,
        )

    async def stop(self) -> None:
        if self.mqtt is not None:
            await self.mqtt.stop()
        await self.missions.stop()
        await self.video.close()
        if self._unsubscribe:
            self._unsubscribe()
        if self.link is not None:
            await self.link.stop()
        self.engine.dispose()

    # -- ingest -------------------------------------------------------------------------------
    def _mqtt_client_id(self) -> str:
        """Stable per store: a restarted node resumes its broker session (and the messages queued
        meanwhile); two services with different stores never knock each other off the broker."""
        digest = hashlib.sha1(f"{self.settings.database_url}|{self.fleet.city}".encode()).hexdigest()[:12]
        return f"dronedispatch-{self.fleet.city}-{digest}"

    async def _on_ingested_report(self, report: Report) -> None:
        from dronedispatch.dispatch import DispatchError

        try:
            self.dispatcher.ingest_report(report, actor=f"ingest:{report.source}")
        except DispatchError as exc:  # e.g. a camera id we do not know: counted as rejected, never fatal
            raise IngestError(report.source, Problem("camera_id" if report.camera_id else "$", exc.reason)) from exc

    def _on_ingest_error(self, source: str, reason: str) -> None:
        log.warning("ingest %s: rejected: %s", source, reason)

    # -- link events ---------------------------------------------------------------------------
    def _on_link_event(self, ev: object) -> None:
        vehicle: Vehicle | None = getattr(ev, "vehicle", None)
        if vehicle is None:
            return
        entry = self.registry.by_sysid(vehicle.sysid)
        if entry is None or entry.vehicle is not vehicle:
            entry = self.registry.attach(vehicle)
        if isinstance(ev, link_events.VehicleDiscovered):
            log.info("vehicle %d discovered (%s)", vehicle.sysid, entry.spec.id)
        elif isinstance(ev, link_events.VehicleLost):
            self.alert(
                "critical",
                "link_lost",
                f"{entry.spec.id}: link lost",
                drone_id=entry.spec.id,
                mission_id=entry.mission_id,
            )
        elif isinstance(ev, link_events.VehicleRecovered):
            self.alert(
                "info",
                "link_recovered",
                f"{entry.spec.id}: link recovered",
                drone_id=entry.spec.id,
                mission_id=entry.mission_id,
            )
        elif isinstance(ev, link_events.StatusText) and ev.severity <= 4:
            self.alert(
                "warning" if ev.severity > 2 else "critical",
                "vehicle_message",
                f"{entry.spec.id}: {ev.text}",
                drone_id=entry.spec.id,
                mission_id=entry.mission_id,
            )
        elif isinstance(ev, link_events.Telemetry):
            s = vehicle.state
            if s.lat is not None and s.lon is not None:
                self.video.telemetry(entry.spec.id, s.lat, s.lon, s.alt_rel or 0.0, s.heading_deg or 0.0)
        self.missions.observe(vehicle)
        self.publish_drone(entry)

    # -- publishing ----------------------------------------------------------------------------
    def publish_drone(self, entry: DroneEntry) -> None:
        data = self.registry.public(entry).model_dump(mode="json")
        self.bus.publish(Event(type="drone", data=data, key=f"drone:{entry.spec.id}"))

    def publish_incident(self, incident: Incident) -> None:
        self.bus.publish(Event(type="incident", data=IncidentPublic.of(incident).model_dump(mode="json")))

    def publish_mission(self, mission: Mission) -> None:
        view = MissionPublic.of(mission, self.missions.progress(mission.sysid))
        self.bus.publish(Event(type="mission", data=view.model_dump(mode="json")))

    def alert(
        self, level: AlertLevel, code: str, message: str, *, drone_id: str | None = None, mission_id: int | None = None
    ) -> None:
        alert = Alert(
            level=level,
            code=code,
            message=message,
            drone_id=drone_id,
            mission_id=mission_id,  # type: ignore[arg-type]
            at=datetime.now(UTC),
        )
        log.log(logging.WARNING if level != "info" else logging.INFO, "alert %s: %s", code, message)
        self.bus.publish(Event(type="alert", data=alert.model_dump(mode="json")))

    def snapshot(self) -> dict[str, Any]:
        """What a browser needs on connect, before the stream of changes."""
        return {
            "drones": [self.registry.public(e).model_dump(mode="json") for e in self.registry],
            "incidents": [IncidentPublic.of(i).model_dump(mode="json") for i in self.store.open_incidents()],
            "missions": [
                MissionPublic.of(m, self.missions.progress(m.sysid)).model_dump(mode="json")
                for m in self.store.list_missions(active=True)
            ],
        }
