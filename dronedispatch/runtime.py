"""The running service: builds every long-lived part and starts and stops them in order.

One :class:`Runtime` per process. It only wires: the application services in
:mod:`dronedispatch.app` get the narrow ports they use (store, publisher, live fleet, vehicle
gateway), never the runtime. The API reaches the services through ``app.state.runtime``;
nothing is created at import time.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import secrets
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from dronedispatch import cityfiles
from dronedispatch.app.access import Access
from dronedispatch.app.alerts import Alerts
from dronedispatch.app.cctv import CameraVideo
from dronedispatch.app.dispatch import DispatchService
from dronedispatch.app.docks import DockService
from dronedispatch.app.errors import ServiceError
from dronedispatch.app.fleet import DroneRegistry, Fleet
from dronedispatch.app.flight_log import PublicFlightLog
from dronedispatch.app.ingest_keys import IngestKeyService
from dronedispatch.app.live_video import LiveVideo
from dronedispatch.app.logins import LoginService
from dronedispatch.app.missions import MissionSupervisor
from dronedispatch.app.overview import Overview
from dronedispatch.app.overwatch import OverwatchService
from dronedispatch.app.shares import ShareService
from dronedispatch.app.statistics import StatisticsService, utc_offset_min
from dronedispatch.app.tracks import TrackRecorder
from dronedispatch.app.vehicle_watch import VehicleWatch
from dronedispatch.bus import LocalEventBus
from dronedispatch.cluster.nats_bus import NatsEventBus
from dronedispatch.cluster.node import ClusterNode
from dronedispatch.cluster.peers import ClusterPeers
from dronedispatch.devices.dock_mqtt import MqttDockAdapter
from dronedispatch.domain import templates as templates_mod
from dronedispatch.domain.airspace import Airspace
from dronedispatch.domain.assets import AssetRegistry, load_assets
from dronedispatch.domain.districts import DistrictIndex
from dronedispatch.domain.incidents import Report
from dronedispatch.events import DockChanged
from dronedispatch.ingest.base import IngestError, IngestStats, Problem
from dronedispatch.ingest.mqtt import MqttIngest, default_topics
from dronedispatch.ingest.onvif import OnvifIngest, rendezvous_owner
from dronedispatch.link_gateway import LinkGateway
from dronedispatch.mavlink.link import MavlinkLink
from dronedispatch.settings import Settings
from dronedispatch.store.db import make_engine, migrate
from dronedispatch.store.flight_log import FlightLogStore
from dronedispatch.store.ingest_keys import IngestKeyStore
from dronedispatch.store.logins import LoginStore
from dronedispatch.store.repo import Store
from dronedispatch.store.shares import ShareStore
from dronedispatch.store.stats import StatsStore
from dronedispatch.store.telemetry import TelemetryStore
from dronedispatch.store.users import hash_password, verify_password
from dronedispatch.video.cctv import CctvRelay
from dronedispatch.video.relay import VideoHub

log = logging.getLogger(__name__)

#: How long a survivor tries to resume a gone node's MQTT session.
MQTT_DRAIN_CONNECT_S = 10.0


class Runtime:
    def __init__(self, settings: Settings, *, http_url: str = "") -> None:
        self.settings = settings
        # city files
        self.fleet_config = cityfiles.load_fleet(settings.fleet)
        self.airspace = Airspace.from_geojson(cityfiles.read_structured(settings.airspace))
        self.cameras: AssetRegistry = load_assets(settings.cameras)
        self.districts: dict[str, Any] = cityfiles.read_structured(settings.districts)
        self.district_index = DistrictIndex(self.districts)
        self.templates = templates_mod.load_templates(cityfiles.TEMPLATES_DIR)
        # infrastructure
        self.engine = make_engine(settings.database_url)
        self.store = Store(self.engine)
        self.node_id = settings.node_id or "single"
        self.bus: LocalEventBus | NatsEventBus = NatsEventBus() if settings.bus_url else LocalEventBus()
        # one node opens every link at once; several lease each link to one node, which opens it then
        self.link: MavlinkLink | None = None if settings.bus_url else self._make_link(settings.mavlink_urls, None)
        self.vehicles = LinkGateway([self.link] if self.link is not None else [])
        self.peers = ClusterPeers(self.node_id) if settings.bus_url else None
        self.ingest_stats = IngestStats()
        self.mqtt: MqttIngest | None = None
        # ONVIF PullPoint subscriptions, only when some camera of the cameras file has an onvif block
        self.onvif: OnvifIngest | None = None
        if any(c.onvif is not None for c in self.cameras.cameras):
            self.onvif = OnvifIngest(
                self.cameras.cameras, self._on_ingested_report, on_alert=self._on_camera_alert,
                stats=self.ingest_stats, subscription_s=settings.onvif_subscription_s,
                pull_timeout_s=settings.onvif_pull_timeout_s, silent_after_s=settings.onvif_silent_after_s,
                owns=self._owns_camera if settings.bus_url else None,  # several nodes: one subscribes per camera
            )  # fmt: skip
        # application services, each given only what it uses
        self.alerts = Alerts(self.bus, self.store)
        self.registry = DroneRegistry(self.fleet_config)
        self.fleet = Fleet(self.registry, self.store, self.bus)
        # docks as devices once an MQTT broker is configured (on start); until then open, healthy, no weather
        self.docks = DockService(self.bus, self.fleet_config.docks)
        self.missions = MissionSupervisor(
            self.store, self.bus, self.fleet, self.vehicles, self.airspace, self.alerts, node_id=self.node_id,
            peers=self.peers, docks=self.docks,
        )  # fmt: skip
        self.dispatcher = DispatchService(
            self.store,
            self.bus,
            self.fleet,
            self.missions,
            airspace=self.airspace,
            cameras=self.cameras,
            mission_templates=self.templates,
            max_auto_eta_s=settings.max_auto_eta_s,
            districts=self.district_index,
            docks=self.docks,
        )
        offset_min = utc_offset_min(settings.timezone)
        # continuous overwatch: relief planned and launched for incidents under coverage; the drone on scene
        self.overwatch = OverwatchService(
            self.store, self.bus, self.fleet, self.missions, self.dispatcher, self.airspace, self.alerts
        )
        self.missions.add_listener(self.overwatch)
        self.statistics = StatisticsService(
            StatsStore(self.engine, offset_min=offset_min), districts=self.district_index,
            drone_ids=[d.id for d in self.fleet_config.drones], offset_min=offset_min,
            reference_lat=self.fleet_config.docks[0].lat if self.fleet_config.docks else 37.45,
        )  # fmt: skip
        self._backfill: asyncio.Future[tuple[int, int]] | None = None
        self._dock_weather: asyncio.Task[None] | None = None  # flying missions follow their docks' weather
        self.video = LiveVideo(
            VideoHub.from_settings(settings), settings.recordings_dir, self.registry, self.vehicles, self.store,
            self.alerts,
        )  # fmt: skip
        self.missions.add_listener(self.video)
        # fixed cameras: live CCTV relayed on demand, and their picture kept when they report an incident
        self.cctv = CameraVideo(
            CctvRelay(ice_hosts=settings.ice_hosts, ice_servers=settings.ice_servers), self.cameras, self.store,
            settings.recordings_dir,
        )  # fmt: skip
        self.overview = Overview(self.store, self.fleet, self.missions)
        self.flight_log = PublicFlightLog(FlightLogStore(self.engine), self.districts)
        self.shares = ShareService(ShareStore(self.engine), self.store, self.fleet, self.video)
        # per-district access: what a district account sees, for every router and the event stream
        self.access = Access(
            self.store, ShareStore(self.engine), self.district_index, docks=self.fleet_config.docks,
            drones=self.fleet_config.drones, cameras=self.cameras,
        )  # fmt: skip
        self.ingest_keys = IngestKeyService(IngestKeyStore(self.engine), settings.ingest_api_keys)
        self.logins = LoginService(
            LoginStore(self.engine), self.store, verify_password, timedelta(minutes=settings.token_ttl_minutes),
            hash_password(secrets.token_urlsafe(16)),
        )
        self.telemetry = TelemetryStore(self.engine)
        self.tracks = TrackRecorder(self.telemetry)
        self._watch = VehicleWatch(self.fleet, self.missions, self.video, self.alerts, self.tracks)
        self.cluster: ClusterNode | None = None
        if settings.bus_url:
            assert self.peers is not None and isinstance(self.bus, NatsEventBus)
            self.cluster = ClusterNode(
                bus_url=settings.bus_url, node_id=self.node_id, http_url=http_url, links=settings.mavlink_urls,
                lease_ttl_s=settings.lease_ttl_s, bus=self.bus, fleet=self.fleet, missions=self.missions,
                peers=self.peers, gateway=self.vehicles, open_link=self._make_link, watch=self._watch,
                audit=self.store, on_node_gone=self._drain_mqtt_session,
            )  # fmt: skip
        self._unsubscribe: Callable[[], None] | None = None
        self.started_at = datetime.now(UTC)

    # -- lifecycle -----------------------------------------------------------------------------
    async def start(self) -> None:
        self.bus.bind(asyncio.get_running_loop())
        self.cctv.start(self.bus)
        await asyncio.to_thread(migrate, self.engine)
        await asyncio.to_thread(self.fleet.load)
        # incidents stored before districts were known get theirs, off the loop, while the service starts
        self._backfill = asyncio.ensure_future(asyncio.to_thread(self.statistics.backfill))
        self.tracks.start()
        if self.cluster is None:
            assert self.link is not None
            await self.missions.fail_cut_off_launches()  # before the link: vehicles heard next adopt only flights
            self._unsubscribe = self.link.add_listener(self._watch)
            await self.link.start()
        else:  # another node may be launching right now: a cut-off launch is failed by whoever takes its link
            assert isinstance(self.bus, NatsEventBus)
            await self.bus.start(self.settings.bus_url, self.node_id)
            await self.cluster.start()
        if self.settings.mqtt_url:
            self.mqtt = MqttIngest(
                self.settings.mqtt_url,
                default_topics(),
                self._on_ingested_report,
                self._on_ingest_error,
                # several nodes: one shared subscription of the store's group, a session per node
                client_id=self._mqtt_client_id(self.node_id if self.cluster is not None else None),
                shared_group=self._mqtt_client_id() if self.cluster is not None else None,
                stats=self.ingest_stats,
                error_topic="dronedispatch/ingest-errors",
            )
            await self.mqtt.start()
        if self.settings.mqtt_url:
            await self.docks.start(MqttDockAdapter(self.settings.mqtt_url))
            self._dock_weather = asyncio.create_task(self._follow_docks(), name="dock-weather")
        if self.onvif is not None:
            await self.onvif.start()
        self.overwatch.start()
        log.info(
            "service started: %d drones in the fleet file, MAVLink on %s",
            len(self.fleet_config.drones),
            self.settings.mavlink_urls,
        )

    async def stop(self) -> None:
        if self.onvif is not None:
            await self.onvif.stop()
        if self.mqtt is not None:
            await self.mqtt.stop()
        if self._dock_weather is not None:
            self._dock_weather.cancel()
        await self.docks.stop()
        await self.overwatch.stop()
        await self.missions.stop()
        await self.video.close()
        await self.cctv.close()
        if self._unsubscribe:
            self._unsubscribe()
        if self.link is not None:
            await self.link.stop()
        if self.cluster is not None:
            await self.cluster.stop()
            assert isinstance(self.bus, NatsEventBus)
            await self.bus.stop()
        await self.tracks.stop()  # after the links: the last samples heard are written too
        await self.alerts.stop()
        if self._backfill is not None:
            with contextlib.suppress(Exception):
                await self._backfill
        self.engine.dispose()

    def _make_link(self, urls: list[str] | str, may_send: Callable[[], bool] | None) -> MavlinkLink:
        settings = self.settings
        return MavlinkLink(
            urls,
            signing_keys=settings.signing_key_bytes,
            lost_after_s=settings.link_lost_after_s,
            telemetry_rate_hz=settings.telemetry_rate_hz,
            busy_poll_s=settings.link_busy_poll_ms / 1000,
            may_send=may_send,
        )

    # -- ingest -------------------------------------------------------------------------------
    def _mqtt_client_id(self, node: str | None = None) -> str:
        """Stable per store (and per ``node`` of several): a restarted node resumes its broker session
        (and the messages queued meanwhile); services with different stores, or two nodes of one store,
        never knock each other off the broker. Without ``node``: also the store's shared subscription group."""
        city = self.fleet_config.city
        digest = hashlib.sha1(f"{self.settings.database_url}|{city}".encode()).hexdigest()[:12]
        group = f"dronedispatch-{city}-{digest}".translate(str.maketrans("/+#", "___"))
        return group if node is None else f"{group}-{node}"

    async def _drain_mqtt_session(self, node: str) -> None:
        """Several nodes: ``node`` is gone, but the broker still queues its share of the reports in its
        session. Resume that session once, take what it holds, and let it end at the disconnect."""
        if not self.settings.mqtt_url:
            return
        drain = MqttIngest(
            self.settings.mqtt_url, default_topics(), self._on_ingested_report, self._on_ingest_error,
            client_id=self._mqtt_client_id(node), shared_group=self._mqtt_client_id(), session_expiry_s=0,
            stats=self.ingest_stats, error_topic="dronedispatch/ingest-errors",
        )  # fmt: skip
        await drain.start()
        try:
            async with asyncio.timeout(MQTT_DRAIN_CONNECT_S):
                await drain.connected.wait()
            before = -1
            while before != (seen := sum(self.ingest_stats.received.values())):  # until a quiet second
                before = seen
                await asyncio.sleep(1.0)
            log.info("took up the MQTT reports queued for node %s", node)
        except TimeoutError:
            log.warning("could not resume node %s's MQTT session to take up its queued reports", node)
        finally:
            await drain.stop()

    async def _follow_docks(self) -> None:
        """Every dock change reaches the missions in flight (weather go/no-go)."""
        sub = self.bus.subscribe()
        try:
            async for event in sub:
                if isinstance(event, DockChanged):
                    self.missions.dock_changed(event.data)
        finally:
            sub.close()

    async def _on_ingested_report(self, report: Report) -> None:
        try:
            await asyncio.to_thread(self.dispatcher.ingest_report, report, actor=f"ingest:{report.source}")
        except ServiceError as exc:  # e.g. a camera id we do not know: counted as rejected, never fatal
            raise IngestError(report.source, Problem("camera_id" if report.camera_id else "$", exc.reason)) from exc

    async def _owns_camera(self, camera_id: str) -> bool:
        """Several nodes: whether this one subscribes to the camera's ONVIF events (one node per camera,
        chosen among the nodes with a live heartbeat, so a node's cameras move when it goes)."""
        assert self.cluster is not None
        live = [n.node_id for n in await self.cluster.nodes()] or [self.node_id]
        return rendezvous_owner(camera_id, live) == self.node_id

    def _on_camera_alert(self, level: str, code: str, message: str) -> None:
        self.alerts.raise_("info" if level == "info" else "warning", code, message)

    def _on_ingest_error(self, source: str, reason: str) -> None:
        log.warning("ingest %s: rejected: %s", source, reason)
