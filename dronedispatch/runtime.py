"""The running service: builds every long-lived part and starts and stops them in order.

One :class:`Runtime` per process. It only wires: the application services in
:mod:`dronedispatch.app` get the narrow ports they use (store, publisher, live fleet, vehicle
gateway), never the runtime. The API reaches the services through ``app.state.runtime``;
nothing is created at import time.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from dronedispatch import cityfiles
from dronedispatch.app.alerts import Alerts
from dronedispatch.app.dispatch import DispatchService
from dronedispatch.app.errors import ServiceError
from dronedispatch.app.fleet import DroneRegistry, Fleet
from dronedispatch.app.live_video import LiveVideo
from dronedispatch.app.missions import MissionSupervisor
from dronedispatch.app.overview import Overview
from dronedispatch.app.vehicle_watch import VehicleWatch
from dronedispatch.bus import LocalEventBus
from dronedispatch.domain import templates as templates_mod
from dronedispatch.domain.airspace import Airspace
from dronedispatch.domain.assets import AssetRegistry, load_assets
from dronedispatch.domain.incidents import Report
from dronedispatch.ingest.base import IngestError, IngestStats, Problem
from dronedispatch.ingest.mqtt import MqttIngest, default_topics
from dronedispatch.link_gateway import LinkGateway
from dronedispatch.mavlink.link import MavlinkLink
from dronedispatch.settings import Settings
from dronedispatch.store.db import make_engine, migrate
from dronedispatch.store.repo import Store
from dronedispatch.video.relay import VideoHub

log = logging.getLogger(__name__)


class Runtime:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        # city files
        self.fleet_config = cityfiles.load_fleet(settings.fleet)
        self.airspace = Airspace.from_geojson(cityfiles.read_structured(settings.airspace))
        self.cameras: AssetRegistry = load_assets(settings.cameras)
        self.districts: dict[str, Any] = cityfiles.read_structured(settings.districts)
        self.templates = templates_mod.load_templates()
        # infrastructure
        self.engine = make_engine(settings.database_url)
        self.store = Store(self.engine)
        self.bus = LocalEventBus()
        self.link = MavlinkLink(
            settings.mavlink_urls,
            signing_keys=settings.signing_key_bytes,
            lost_after_s=settings.link_lost_after_s,
            telemetry_rate_hz=settings.telemetry_rate_hz,
            busy_poll_s=settings.link_busy_poll_ms / 1000,
        )
        self.vehicles = LinkGateway(self.link)
        self.ingest_stats = IngestStats()
        self.mqtt: MqttIngest | None = None
        # application services, each given only what it uses
        self.alerts = Alerts(self.bus)
        self.registry = DroneRegistry(self.fleet_config)
        self.fleet = Fleet(self.registry, self.store, self.bus)
        self.missions = MissionSupervisor(self.store, self.bus, self.fleet, self.vehicles, self.airspace, self.alerts)
        self.dispatcher = DispatchService(
            self.store,
            self.bus,
            self.fleet,
            self.missions,
            airspace=self.airspace,
            cameras=self.cameras,
            mission_templates=self.templates,
            max_auto_eta_s=settings.max_auto_eta_s,
        )
        self.video = LiveVideo(
            VideoHub.from_settings(settings), settings.recordings_dir, self.registry, self.vehicles, self.store,
            self.alerts,
        )  # fmt: skip
        self.missions.add_listener(self.video)
        self.overview = Overview(self.store, self.fleet, self.missions)
        self._watch = VehicleWatch(self.fleet, self.missions, self.video, self.alerts)
        self._unsubscribe: Callable[[], None] | None = None
        self.started_at = datetime.now(UTC)

    # -- lifecycle -----------------------------------------------------------------------------
    async def start(self) -> None:
        self.bus.bind(asyncio.get_running_loop())
        await asyncio.to_thread(migrate, self.engine)
        await asyncio.to_thread(self.fleet.load)
        await self.missions.fail_cut_off_launches()  # before the link: vehicles heard next adopt only flights
        self._unsubscribe = self.link.add_listener(self._watch)
        await self.link.start()
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
            len(self.fleet_config.drones),
            self.settings.mavlink_urls,
        )

    async def stop(self) -> None:
        if self.mqtt is not None:
            await self.mqtt.stop()
        await self.missions.stop()
        await self.video.close()
        if self._unsubscribe:
            self._unsubscribe()
        await self.link.stop()
        self.engine.dispose()

    # -- ingest -------------------------------------------------------------------------------
    def _mqtt_client_id(self) -> str:
        """Stable per store: a restarted node resumes its broker session (and the messages queued
        meanwhile); two services with different stores never knock each other off the broker."""
        city = self.fleet_config.city
        digest = hashlib.sha1(f"{self.settings.database_url}|{city}".encode()).hexdigest()[:12]
        return f"dronedispatch-{city}-{digest}"

    async def _on_ingested_report(self, report: Report) -> None:
        try:
            await asyncio.to_thread(self.dispatcher.ingest_report, report, actor=f"ingest:{report.source}")
        except ServiceError as exc:  # e.g. a camera id we do not know: counted as rejected, never fatal
            raise IngestError(report.source, Problem("camera_id" if report.camera_id else "$", exc.reason)) from exc

    def _on_ingest_error(self, source: str, reason: str) -> None:
        log.warning("ingest %s: rejected: %s", source, reason)
