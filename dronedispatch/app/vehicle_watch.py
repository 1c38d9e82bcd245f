"""What the vehicles report, turned into the live fleet, mission progress, video telemetry and alerts.

Called by the link for every vehicle event, on the event loop: nothing here waits for anything
(mission transitions are written by the supervisor's ordered writes, off the loop).
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from dronedispatch.app.alerts import Alerts
from dronedispatch.app.fleet import Fleet
from dronedispatch.app.live_video import LiveVideo
from dronedispatch.app.missions import MissionSupervisor
from dronedispatch.app.ports import VehicleHandle
from dronedispatch.app.tracks import TrackRecorder
from dronedispatch.mavlink import events as link_events
from dronedispatch.schemas import AlertLevel

log = logging.getLogger(__name__)

#: STATUSTEXT severities (MAV_SEVERITY) that reach the operator: WARNING (4) and worse.
SHOWN_SEVERITY = 4
CRITICAL_SEVERITY = 2


class VehicleWatch:
    def __init__(
        self, fleet: Fleet, missions: MissionSupervisor, video: LiveVideo, alerts: Alerts, tracks: TrackRecorder
    ) -> None:
        self._fleet = fleet
        self._missions = missions
        self._video = video
        self._alerts = alerts
        self._tracks = tracks

    def __call__(self, ev: link_events.VehicleEvent) -> None:
        vehicle: VehicleHandle | None = getattr(ev, "vehicle", None)
        if vehicle is None:
            return
        registry = self._fleet.registry
        entry = registry.by_sysid(vehicle.sysid)
        if entry is None or entry.vehicle is not vehicle:
            entry = registry.attach(vehicle)
        drone_id = entry.spec.id
        if isinstance(ev, link_events.VehicleDiscovered):
            log.info("vehicle %d discovered (%s)", vehicle.sysid, drone_id)
            self._missions.vehicle_appeared(vehicle.sysid)
        elif isinstance(ev, link_events.VehicleLost):
            self._alerts.raise_("critical", "link_lost", f"{drone_id}: link lost", drone_id=drone_id,
                                mission_id=entry.mission_id)  # fmt: skip
        elif isinstance(ev, link_events.VehicleRecovered):
            self._alerts.raise_("info", "link_recovered", f"{drone_id}: link recovered", drone_id=drone_id,
                                mission_id=entry.mission_id)  # fmt: skip
        elif isinstance(ev, link_events.StatusText) and ev.severity <= SHOWN_SEVERITY:
            level: AlertLevel = "warning" if ev.severity > CRITICAL_SEVERITY else "critical"
            self._alerts.raise_(level, "vehicle_message", f"{drone_id}: {ev.text}", drone_id=drone_id,
                                mission_id=entry.mission_id)  # fmt: skip
        elif isinstance(ev, link_events.Telemetry):
            s = vehicle.state
            if s.lat is not None and s.lon is not None:
                self._video.telemetry(drone_id, s.lat, s.lon, s.alt_rel or 0.0, s.heading_deg or 0.0)
                if entry.mission_id is not None:
                    self._tracks.observe(entry.mission_id, drone_id, datetime.now(UTC), s.lat, s.lon,
                                         s.alt_rel or 0.0, s.battery_pct, s.groundspeed)  # fmt: skip
        self._missions.observe(vehicle)
        self._fleet.publish(entry)
