"""Run a scenario: the whole service in-process, a simulated fleet, real sources, a verdict.

Order of a run: temporary SQLite store and city files → mosquitto (only when an incident comes
over MQTT) → :class:`~dronedispatch.runtime.Runtime` with MAVLink on a free UDP port → the
simulated fleet on free ports (never the demo's) → wait until every drone is ready → feed the
timeline in scenario time → wait until every mission has ended (or the duration is up) → read
the store → stop everything in reverse → judge.

Scenario time is simulated seconds since the fleet was ready, read from the simulator's own
clock, so the timeline keeps step with the vehicles even when the machine is slow. Incidents go
in over their real path (HTTP into the app through an in-process ASGI transport, MQTT through
the broker) and the operator's and pilot's actions go through the HTTP API with their roles.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import shutil
import socket
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any, Protocol

import aiomqtt
import httpx
import yaml
from sqlmodel import col, select

from dronedispatch.api.security import issue_token
from dronedispatch.bus import BusEvent
from dronedispatch.domain.airspace import Airspace
from dronedispatch.domain.assets import load_assets
from dronedispatch.domain.docks import Weather, parse_weather_spec
from dronedispatch.domain.fleet import FleetConfig
from dronedispatch.runtime import Runtime
from dronedispatch.scenario import sources
from dronedispatch.scenario.broker import (
    MosquittoServer,
    find_mosquitto,
    free_tcp_port,
    free_udp_block,
    free_udp_port,
)
from dronedispatch.scenario.expectations import Context, StoreFacts, Verdict, evaluate
from dronedispatch.scenario.faults import FaultInjector
from dronedispatch.scenario.loader import LoadedScenario
from dronedispatch.scenario.model import ActionEntry, IncidentEntry
from dronedispatch.scenario.operator import Operator
from dronedispatch.scenario.px4 import Px4Fleet
from dronedispatch.scenario.recording import Arrival, Recording
from dronedispatch.service import create_app
from dronedispatch.settings import Settings
from dronedispatch.sim.cctv_site import CctvSite
from dronedispatch.sim.docks import SimDocks
from dronedispatch.sim.runner import SimFleet
from dronedispatch.store.models import IncidentReport

log = logging.getLogger(__name__)

READY_TIMEOUT_S = 90.0  # wall: every vehicle discovered and ready (boot, first telemetry)
API_KEY = "scenario-ingest-key"
ProgressFn = Callable[[float, float, str], None]  # (scenario time, duration, what is happening)


@dataclass
class RunResult:
    scenario: LoadedScenario
    recording: Recording
    verdicts: list[Verdict]
    facts: StoreFacts
    airspace: Airspace
    districts: dict[str, Any]
    wall_s: float
    error: str | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return self.error is None and all(v.passed for v in self.verdicts)


class Clock:
    """Scenario time: simulated seconds since :meth:`start`, from the simulator's clock when there is one."""

    def __init__(self, speed_factor: float, sim_time: Callable[[], float] | None) -> None:
        self.speed = speed_factor
        self._sim_time = sim_time
        self._t0 = 0.0

    def _raw(self) -> float:
        return self._sim_time() if self._sim_time is not None else time.monotonic() * self.speed

    def start(self) -> None:
        self._t0 = self._raw()

    def now(self) -> float:
        return self._raw() - self._t0

    async def until(self, t: float) -> None:
        """Sleep until scenario time ``t`` (re-checked: the simulator may run behind the wall clock)."""
        # the simulator's clock is another process's notion of time: nothing to await but its passing
        while (left := t - self.now()) > 0:  # noqa: ASYNC110
            await asyncio.sleep(max(left / self.speed, 0.005))

    def wall(self, sim_s: float) -> float:
        return sim_s / self.speed


class ScenarioRun:
    def __init__(self, loaded: LoadedScenario, *, progress: ProgressFn | None = None, px4: Path | None = None) -> None:
        self.loaded = loaded
        self.spec = loaded.spec
        self.progress = progress or (lambda t, d, what: None)
        self.px4 = px4
        self.rec = Recording()
        self.notes: list[str] = []
        self._snapshot_tried: set[int] = set()
        self.clock_now: Callable[[], float] = lambda: 0.0
        self.cctv: CctvSite | None = None
        self.docks: SimDocks | None = None

    # -- the run -------------------------------------------------------------------------------
    async def run(self) -> RunResult:
        started = time.monotonic()
        spec = self.spec
        with tempfile.TemporaryDirectory(prefix="dd-scenario-") as tmp_name:
            tmp = Path(tmp_name)
            fleet = self._fleet_backend(free_udp_port(), tmp)  # Px4Unavailable here, before anything starts
            self.notes.extend(fleet.notes)
            fleet_file = tmp / "fleet.yaml"
            fleet_file.write_text(yaml.safe_dump(fleet.fleet.model_dump(), allow_unicode=True), "utf-8")
            if spec.uses_cameras:
                # the cameras the actions act on, on free ports, and a cameras file pointing the service at them
                self.cctv, cameras_path = _cctv_site(self.loaded.cameras_path, tmp)
            else:
                cameras_path = _without_live_cameras(self.loaded.cameras_path, tmp)
            broker: MosquittoServer | None = None
            if spec.uses_mqtt or spec.uses_docks:
                # its own directory, outside ours (which only we may enter): the broker runs as its own user
                broker = MosquittoServer(workdir=Path(tempfile.mkdtemp(prefix="dd-scenario-mqtt-")), binary="")
            settings = Settings(
                database_url=f"sqlite:///{tmp / 'dronedispatch.db'}",
                mavlink=f"udpin:127.0.0.1:{fleet.gcs_port}",
                fleet=fleet_file,
                airspace=self.loaded.airspace_path,
                cameras=cameras_path,
                secret_key=f"scenario-{spec.name}-{spec.seed}-secret-key-0123456789",
                ingest_api_keys=[API_KEY],
                recordings_dir=tmp / "recordings",
                telemetry_rate_hz=10.0,  # finer tracks for the airspace check at high speed factors
            )
            runtime = Runtime(settings)
            app = create_app(settings, runtime)
            sub = runtime.bus.subscribe(maxsize=10_000_000)
            error: str | None = None
            try:
                if broker is not None:
                    broker.binary = find_mosquitto()
                    await asyncio.to_thread(broker.start)
                    settings.mqtt_url = broker.url  # the runtime reads it on start
                if self.cctv is not None:
                    await self.cctv.start()
                await runtime.start()
                await fleet.start()
                if spec.uses_docks and broker is not None:
                    await self._start_docks(fleet, broker)
                clock = Clock(spec.speed_factor, fleet.sim_time)
                # overwatch plans relief on simulated time (ETAs, drain, durations), a few simulated seconds apart
                runtime.overwatch.use_clock(
                    fleet.sim_time or (lambda: time.monotonic() * spec.speed_factor), scale=spec.speed_factor,
                    tick_s=max(0.05, 3.0 / spec.speed_factor),
                )  # fmt: skip
                async with httpx.AsyncClient(
                    transport=httpx.ASGITransport(app=app), base_url="http://scenario.local", timeout=60
                ) as http:
                    key = settings.secret_key
                    for role in ("operator", "pilot"):  # tokens are honoured only for accounts that exist
                        runtime.store.upsert_user(f"scenario-{role}", "!no-password-login", role)
                    tokens = {
                        role: {"Authorization": f"Bearer {issue_token(key, f'scenario-{role}', role, 600)}"}
                        for role in ("operator", "pilot")
                    }
                    operator = Operator(spec, self.rec, clock, http, tokens)
                    error = await self._drive(runtime, sub, clock, operator, fleet, broker, http)
                    self._vehicle_reached(fleet, clock)
            except Exception as exc:  # the verdict must say what broke, never a bare traceback
                log.exception("scenario %s: run failed", spec.name)
                error = f"{type(exc).__name__}: {exc}"
            finally:
                sub.close()
                if self.docks is not None:
                    with contextlib.suppress(Exception):
                        await self.docks.stop()
                with contextlib.suppress(Exception):
                    await fleet.stop()
                video = getattr(runtime, "video", None)
                if video is not None:  # recordings of missions that just ended are still being closed
                    with contextlib.suppress(Exception):
                        await asyncio.wait_for(video.settle(), 30)
                facts = await asyncio.to_thread(read_facts, runtime)
                with contextlib.suppress(Exception):
                    await runtime.stop()
                if self.cctv is not None:
                    with contextlib.suppress(Exception):
                        await self.cctv.stop()
                if broker is not None:
                    await asyncio.to_thread(broker.stop)
                    shutil.rmtree(broker.workdir, ignore_errors=True)
            ctx = Context(spec, self.rec, facts, runtime.airspace, fleet.fleet)
            verdicts = evaluate(ctx) if error is None else []
            return RunResult(
                self.loaded,
                self.rec,
                verdicts,
                facts,
                runtime.airspace,
                runtime.districts,
                time.monotonic() - started,
                error,
                self.notes + self.rec.notes,
            )

    def _fleet_backend(self, gcs_port: int, tmp: Path) -> FleetBackend:
        if self.px4 is not None:
            return Px4Fleet(self.px4, self.loaded.fleet, self.spec, gcs_port, tmp)
        return SimBackend(self.loaded.fleet, self.spec, gcs_port)

    async def _drive(
        self,
        runtime: Any,
        sub: Any,
        clock: Clock,
        operator: Operator,
        fleet: FleetBackend,
        broker: MosquittoServer | None,
        http: httpx.AsyncClient,
    ) -> str | None:
        spec = self.spec
        ready = asyncio.Event()
        want = {d.id for d in self.loaded.fleet.drones}
        ready_ids: set[str] = set()
        started = asyncio.Event()
        changed = asyncio.Event()

        async def record() -> None:
            async for ev in sub:
                t = clock.now() if started.is_set() else 0.0
                kind, data = _plain(ev)
                self._on_event(t, kind, data, operator, runtime)
                if kind == "drone" and not ready.is_set():
                    if data.get("state") == "ready":
                        ready_ids.add(data["id"])
                    if want <= ready_ids:
                        ready.set()
                changed.set()

        recorder = asyncio.create_task(record(), name="scenario-recorder")
        mqtt = MqttSide(broker, self.rec) if broker is not None else None
        try:
            if mqtt is not None:
                await mqtt.start()
            self.progress(0.0, spec.duration, "waiting for the fleet to be ready")
            try:
                await asyncio.wait_for(ready.wait(), READY_TIMEOUT_S)
            except TimeoutError:
                missing = ", ".join(sorted(want - ready_ids))
                return f"the fleet never became ready within {READY_TIMEOUT_S:.0f} s (not ready: {missing})"
            clock.start()
            self.clock_now = clock.now
            started.set()
            wall_start = time.monotonic()
            self.rec.note(0.0, "run", f"fleet ready: {len(want)} drones; speed factor {spec.speed_factor:g}")
            faults = FaultInjector(fleet, self.rec, clock)
            timeline: list[tuple[float, int, str, Callable[[], Any]]] = []
            for inc in spec.incidents:
                timeline.append(
                    (
                        inc.at,
                        1,
                        f"incident {inc.id}",
                        partial(self._send, inc, http, mqtt, clock, operator, runtime),
                    )
                )
            for f in spec.faults:
                timeline.append((f.at, 0, f"fault {f.kind} on {f.drone}", partial(faults.apply, f)))
                if f.duration is not None:
                    timeline.append(
                        (f.at + f.duration, 0, f"fault {f.kind} on {f.drone} ends", partial(faults.undo, f))
                    )
            for a in spec.actions:
                if a.on_dock:
                    timeline.append((a.at, 0, f"{a.do} {a.dock or 'all docks'}", partial(self._dock, a, clock)))
                    continue
                if a.on_camera:
                    timeline.append((a.at, 0, f"{a.do} {a.camera}", partial(self._camera, a, clock)))
                    continue
                timeline.append((a.at, 2, f"{a.do} {a.incident}", partial(self._act, a, operator)))
            timeline.sort(key=lambda x: (x[0], x[1]))
            ticker = asyncio.create_task(self._tick(clock), name="scenario-progress")
            try:
                for at, _, label, fn in timeline:
                    if at > spec.duration:
                        self.notes.append(f"{label} at {at:.0f} s is after the end of the run; not done")
                        continue
                    await clock.until(at)
                    result = fn()
                    if asyncio.iscoroutine(result):
                        await result
                await self._settle(clock, runtime, operator, changed, mqtt)
            finally:
                ticker.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await ticker
            self.rec.ended_at = clock.now()
            wall = max(time.monotonic() - wall_start, 1e-3)
            self.notes.append(
                f"simulated {self.rec.ended_at:.0f} s in {wall:.0f} s of wall time: "
                f"{self.rec.ended_at / wall:.1f}x against the {spec.speed_factor:g}x asked"
            )
            if mqtt is not None:
                await mqtt.resolve_pending(runtime)
            for r in self.rec.refusals:  # name refusals by the scenario's incident ids
                if r.incident_id is not None:
                    r.ref = self.rec.ref_of(r.incident_id) or r.ref
            self.progress(min(self.rec.ended_at, spec.duration), spec.duration, "done")
            return None
        finally:
            await operator.stop()
            recorder.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await recorder
            if mqtt is not None:
                await mqtt.stop()

    async def _tick(self, clock: Clock) -> None:
        while True:  # a display refresh: nothing to await but the time passing
            now = clock.now()
            active = sum(1 for m in self.rec.missions.values() if m.final not in ("completed", "aborted", "failed"))
            self.progress(
                min(now, self.spec.duration),
                self.spec.duration,
                f"{len(self.rec.arrivals)}/{len(self.spec.incidents)} incidents, {active} missions flying",
            )
            await asyncio.sleep(0.25)

    async def _settle(
        self, clock: Clock, runtime: Any, operator: Operator, changed: asyncio.Event, mqtt: MqttSide | None
    ) -> None:
        """Wait until nothing is left to happen, or the scenario's duration is up."""
        while clock.now() < self.spec.duration:
            if mqtt is not None:
                await mqtt.resolve_pending(runtime)
            if self._settled(runtime, operator) and not await asyncio.to_thread(_active_missions, runtime):
                self.rec.note(clock.now(), "run", "every mission ended and every drone is on the ground")
                return
            changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(changed.wait(), max(clock.wall(self.spec.duration - clock.now()), 0.01))
        self.rec.note(clock.now(), "run", f"duration {self.spec.duration:.0f} s reached")

    def _settled(self, runtime: Any, operator: Operator) -> bool:
        if operator.pending or len(self.rec.arrivals) < len(self.spec.incidents):
            return False
        for a in self.rec.arrivals.values():
            if a.error is None and (a.incident_id is None or a.incident_id not in self.rec.incidents_seen):
                return False  # not yet seen on the event bus, so the operator has not had a chance
        if any(m.final not in ("completed", "aborted", "failed") for m in self.rec.missions.values()):
            return False
        for drone in self.loaded.fleet.drones:
            samples = self.rec.tracks.get(drone.id)
            if samples and (not samples[-1].landed or samples[-1].armed):
                return False
        return True

    # -- events --------------------------------------------------------------------------------
    def _on_event(self, t: float, kind: str, data: dict[str, Any], operator: Operator, runtime: Any) -> None:
        if kind == "drone":
            self.rec.on_drone(t, data)
            operator.drone_ready(data["id"], data.get("state", ""))
        elif kind == "mission":
            first_on_scene = data["state"] == "on_scene" and data["id"] not in self._snapshot_tried
            self.rec.on_mission(t, data)
            if first_on_scene and self.spec.wants_video and getattr(runtime, "video", None) is not None:
                self._snapshot_tried.add(data["id"])
                operator.spawn(self._snapshot(data["id"], data["drone_id"], operator))
        elif kind == "alert":
            self.rec.on_alert(t, data)
        elif kind == "dock":
            self.rec.on_dock(t, data)
        elif kind == "incident":
            self.rec.on_incident(t, data)
            iid = data["id"]
            if iid not in self.rec.incidents_seen:
                self.rec.incidents_seen[iid] = t
                self.rec.note(
                    t,
                    "incident",
                    f"incident {iid} ({data['category']}, severity {data['severity']}) from {data['source']}",
                )
                operator.incident_created(t, data)
            else:
                operator.incident_updated(t, data)

    # -- timeline entries ----------------------------------------------------------------------
    async def _send(
        self,
        inc: IncidentEntry,
        http: httpx.AsyncClient,
        mqtt: MqttSide | None,
        clock: Clock,
        operator: Operator,
        runtime: Any,
    ) -> None:
        out = sources.build(self.spec.name, inc, datetime.now(UTC))
        arrival = Arrival(inc.id, inc.via, clock.now(), source_ref=out.source_ref)
        self.rec.arrivals[inc.id] = arrival
        self.rec.note(arrival.sent_at, "report", f"{inc.id} sent via {inc.via}")
        if inc.via in ("webhook", "operator"):
            headers = {"X-API-Key": API_KEY} if inc.via == "webhook" else operator.tokens["operator"]
            r = await http.post(out.target, content=out.body, headers={**headers, "Content-Type": "application/json"})
            if r.status_code in (200, 201, 202):
                arrival.incident_id = r.json()["id"]
                operator.bind(arrival)
            else:
                arrival.error = f"HTTP {r.status_code}: {_detail(r)}"
                self.rec.note(clock.now(), "report", f"{inc.id} refused: {arrival.error}")
        else:
            assert mqtt is not None
            await mqtt.publish(out, arrival)

    async def _snapshot(self, mission_id: int, drone_id: str, operator: Operator) -> None:
        """What the operations view does for a drone on scene: ask the service for a video frame."""
        t = self.clock_now()
        r = await operator.http.get(f"/api/v1/drones/{drone_id}/snapshot.jpg", headers=operator.tokens["operator"])
        ok = r.status_code == 200 and r.content[:2] == b"\xff\xd8"
        detail = f"{len(r.content)} bytes of JPEG" if ok else f"HTTP {r.status_code}: {_detail(r)}"
        self.rec.video[mission_id] = (ok, detail)
        self.rec.note(t, "video", f"snapshot of {drone_id} on scene (mission {mission_id}): {detail}")

    async def _act(self, a: ActionEntry, operator: Operator) -> None:
        await operator.act(a)

    def _camera(self, a: ActionEntry, clock: Clock) -> None:
        """A simulated camera reboots (for the action's simulated seconds) or raises an ONVIF event."""
        assert self.cctv is not None and a.camera is not None
        cam = self.cctv.camera(a.camera)
        t = clock.now()
        if a.do == "camera_reboot":
            seconds = a.seconds or 0.0
            cam.reboot(clock.wall(seconds))
            self.rec.note(t, "camera", f"{a.camera} reboots: offline for {seconds:.0f} s")
        else:
            assert a.topic is not None
            cam.raise_event(a.topic, a.active)
            self.rec.note(t, "camera", f"{a.camera}: event {a.topic} {'starts' if a.active else 'ends'}")

    def _vehicle_reached(self, fleet: FleetBackend, clock: Clock) -> None:
        """When each simulated vehicle reached each mission item, on the scenario clock: the vehicle's own
        time, free of the service's lag (which a speed factor multiplies in simulated seconds)."""
        for v in fleet.vehicles("all"):
            log_ = getattr(v, "reached_log", None)
            if log_ is not None:
                offset = v.time_s - clock.now()
                self.rec.reached[v.drone_id] = [(t - offset, seq) for t, seq in log_]

    async def _start_docks(self, fleet: FleetBackend, broker: MosquittoServer) -> None:
        """One simulated dock per fleet dock on the run's broker; the service's dock adapter listens there."""
        sim = getattr(fleet, "sim", None)
        if not isinstance(sim, SimFleet):
            self.notes.append("docks are simulated with the built-in simulator only; this run has none")
            return
        spec = self.spec
        weather = parse_weather_spec(spec.fleet.weather, datetime.now(UTC)) if spec.fleet.weather else None
        self.docks = SimDocks(
            fleet.fleet, sim.vehicles, broker.url, speed_factor=spec.speed_factor, weather=weather,
            interlock=spec.fleet.dock_door_interlock,
        )  # fmt: skip
        await self.docks.start()

    def _dock(self, a: ActionEntry, clock: Clock) -> None:
        """The weather changes at a dock (or every dock), or a dock's door fails or is repaired."""
        t = clock.now()
        if self.docks is None:
            self.rec.note(t, "dock", f"{a.do}: no simulated docks in this run; not done")
            return
        if a.do == "weather":
            assert a.wind is not None
            w = Weather(
                wind_mean_ms=a.wind, gust_ms=a.gust if a.gust is not None else a.wind, rain_mm_h=a.rain,
                temperature_c=a.temp, at=datetime.now(UTC),
            )  # fmt: skip
            self.docks.set_weather(a.dock, w)
            where = a.dock or "every dock"
            self.rec.note(
                t, "dock", f"weather at {where}: wind {w.wind_mean_ms:g} m/s, gust {w.gust_ms:g} m/s, "
                f"rain {w.rain_mm_h:g} mm/h, {w.temperature_c:g} °C",
            )  # fmt: skip
        elif a.do == "dock_fault":
            assert a.dock is not None and a.reason is not None
            self.docks.inject_door_fault(a.dock, a.reason)
            self.rec.note(t, "dock", f"{a.dock}: door fault: {a.reason}")
        else:
            assert a.dock is not None
            self.docks.clear_fault(a.dock)
            self.rec.note(t, "dock", f"{a.dock}: fault cleared")


def _cctv_site(cameras: Path, tmp: Path) -> tuple[CctvSite, Path]:
    """Simulated cameras for a cameras file on free ports, and a copy of the file whose ``stream`` and
    ``onvif.url`` point at them (entry k's ONVIF device is at the block's base + k)."""
    data = yaml.safe_load(cameras.read_text(encoding="utf-8"))
    entries = data.get("cameras") or []
    rtsp_port, onvif_base = free_tcp_port(), _free_tcp_block(max(len(entries), 1))
    for k, entry in enumerate(entries):
        if entry.get("stream"):
            entry["stream"] = f"rtsp://127.0.0.1:{rtsp_port}/{entry['id']}"
        if isinstance(entry.get("onvif"), dict):
            entry["onvif"]["url"] = f"http://127.0.0.1:{onvif_base + k}/onvif/device_service"
    out = tmp / "cameras.yaml"
    out.write_text(yaml.safe_dump(data, allow_unicode=True), "utf-8")
    site = CctvSite(load_assets(out).cameras, rtsp_port=rtsp_port, width=320, height=180, onvif_base_port=onvif_base)
    return site, out


def _without_live_cameras(cameras: Path, tmp: Path) -> Path:
    """A copy of the cameras file without streams and ONVIF devices: a run that serves no cameras must
    not pull from, or take events of, whatever answers on the demo's camera ports."""
    data = yaml.safe_load(cameras.read_text(encoding="utf-8"))
    for entry in data.get("cameras") or []:
        for key in ("stream", "snapshot_url", "onvif"):
            entry.pop(key, None)
    out = tmp / "cameras.yaml"
    out.write_text(yaml.safe_dump(data, allow_unicode=True), "utf-8")
    return out


def _free_tcp_block(n: int) -> int:
    """The first of ``n`` consecutive TCP ports on 127.0.0.1 that were free a moment ago."""
    for _ in range(100):
        base = free_tcp_port()
        if base + n >= 65000:
            continue
        socks = []
        try:
            for i in range(n):
                s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                socks.append(s)
                s.bind(("127.0.0.1", base + i))
            return base
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    raise RuntimeError(f"no block of {n} free TCP ports")


def _detail(r: httpx.Response) -> str:
    try:
        return str(r.json().get("detail"))
    except (ValueError, AttributeError):
        return r.text[:200]


class FleetBackend(Protocol):
    """What the runner needs from a fleet: ports, the fleet the service should expect, start/stop,
    a clock (None: wall clock × speed factor) and vehicles to break."""

    fleet: FleetConfig
    gcs_port: int
    notes: list[str]
    sim_time: Callable[[], float] | None

    async def start(self) -> None: ...
    async def stop(self) -> None: ...
    def vehicles(self, drone: str) -> list[Any]: ...


class SimBackend:
    """The built-in simulator on free ports (never the demo's)."""

    def __init__(self, fleet: FleetConfig, spec: Any, gcs_port: int) -> None:
        self.fleet = fleet
        self.gcs_port = gcs_port
        self.notes: list[str] = []

        n = max(len(fleet.drones), 1)
        self.sim = SimFleet(
            fleet,
            speed_factor=spec.speed_factor,
            seed=spec.seed,
            video=spec.wants_video,  # H.264 encoding costs CPU: only when a check looks at video
            gcs_port=gcs_port,
            vehicle_port_base=free_udp_block(n),
            api_port_base=None,
            video_port_base=free_udp_block(n),  # the stream URIs the cameras announce: never the demo's
        )
        self.sim_time: Callable[[], float] | None = lambda: self.sim.vehicles[0].time_s

    async def start(self) -> None:
        await self.sim.start()

    async def stop(self) -> None:
        await self.sim.stop()

    def vehicles(self, drone: str) -> list[Any]:
        return [v for v in self.sim.vehicles if drone in ("all", v.drone_id)]


class MqttSide:
    """Publishes reports to the broker and listens on the ingest's rejection topic."""

    def __init__(self, broker: MosquittoServer, rec: Recording) -> None:
        self.broker = broker
        self.rec = rec
        self._client: Any = None
        self._task: asyncio.Task[None] | None = None
        self._by_topic: dict[str, list[Arrival]] = {}
        self._ready = asyncio.Event()

    async def start(self) -> None:
        self._client = aiomqtt.Client(self.broker.host, self.broker.port, identifier="dronedispatch-scenario")
        await self._client.__aenter__()
        await self._client.subscribe(sources.ERROR_TOPIC, qos=1)
        self._task = asyncio.create_task(self._listen(), name="scenario-mqtt-errors")

    async def _listen(self) -> None:
        async for msg in self._client.messages:
            try:
                body = json.loads(msg.payload)
            except (ValueError, TypeError):
                continue
            sent = self._by_topic.get(str(body.get("topic")), [])
            waiting = [a for a in sent if a.incident_id is None and not a.error]
            if waiting:
                waiting[0].error = str(body.get("reason") or "rejected without a reason")
                self.rec.note(waiting[0].sent_at, "report", f"{waiting[0].ref} refused: {waiting[0].error}")

    async def publish(self, out: sources.Outgoing, arrival: Arrival) -> None:
        self._by_topic.setdefault(out.target, []).append(arrival)
        await self._client.publish(out.target, out.body, qos=1)

    async def resolve_pending(self, runtime: Any) -> None:
        """Find the incidents that reports sent over MQTT became (by the report's source_ref)."""
        pending = {
            a.source_ref: a
            for lst in self._by_topic.values()
            for a in lst
            if a.incident_id is None and a.error is None and a.source_ref
        }
        if not pending:
            return

        def query() -> dict[str, int]:
            with runtime.store.session() as s:
                rows = s.exec(select(IncidentReport).where(col(IncidentReport.source_ref).in_(list(pending)))).all()
                return {r.source_ref: r.incident_id for r in rows if r.source_ref}

        for ref, iid in (await asyncio.to_thread(query)).items():
            pending[ref].incident_id = iid

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._client is not None:
            with contextlib.suppress(Exception):
                await self._client.__aexit__(None, None, None)


def _active_missions(runtime: Any) -> int:
    """Missions the store still counts as active (the event bus may not have told us yet)."""
    return len(runtime.store.list_missions(active=True, limit=1000))


def read_facts(runtime: Any) -> StoreFacts:
    """Everything the checks need from the store, read once at the end of the run."""
    store = runtime.store
    facts = StoreFacts()
    try:
        facts.missions = [
            {"id": m.id, "incident_id": m.incident_id, "drone_id": m.drone_id, "state": m.state, "reason": m.reason,
             "items": m.items, "on_scene_seq": m.on_scene_seq}
            for m in store.list_missions(limit=100_000)
        ]
        facts.audit = [
            {"action": a.action, "target_type": a.target_type, "target_id": a.target_id, "detail": a.detail}
            for a in store.audit_log(limit=1_000_000)
        ]
        facts.incidents = {
            i.id: {"lat": i.lat, "lon": i.lon, "category": i.category, "status": i.status}
            for i in store.list_incidents(limit=100_000)
        }
        with store.session() as s:
            for r in s.exec(select(IncidentReport)).all():
                if r.source_ref:
                    facts.reports[r.source_ref] = r.incident_id
    except Exception as exc:  # a store that cannot be read is itself a finding
        log.exception("reading the store failed")
        facts.audit = [{"action": "error", "target_type": "store", "target_id": "", "detail": {"error": str(exc)}}]
    facts.ingest_rejected = sum(runtime.ingest_stats.rejected.values())
    if getattr(runtime, "video", None) is not None:  # the service has a video path to check
        facts.video = {}
        with contextlib.suppress(Exception):
            for e in store.list_evidence():
                facts.video.setdefault(e.mission_id, []).append({"kind": e.kind, "size": e.size_bytes})
    return facts


def _plain(ev: BusEvent) -> tuple[str, dict[str, Any]]:
    """An event's type and data as the WebSocket carries them (what a scenario records)."""
    payload = ev.model_dump(mode="json")
    return payload["type"], payload["data"]
