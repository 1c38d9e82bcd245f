"""Simulated docks: one per fleet dock, publishing the JSON-over-MQTT layout of docs/docks-mqtt.md.

Each dock publishes its state retained on ``dronedispatch/docks/<id>/state`` on every change and
at least every half second of wall time (the moving charge figures only then), and obeys
``open``/``close`` on its command topic:

- the door takes ``door_time_s`` simulated seconds to open or close (scaled by the fleet's speed
  factor, like everything simulated); the outcome of a command shows in ``last_command``;
- ``drone_present`` when a simulated vehicle sits landed within 3 m of the dock; ``charging`` and
  ``charge_pct`` follow the vehicle's battery as the simulator charges it in the dock
  (``SIM_DOCK_CHG_MIN``, sim/failsafe.py ``dock_charge``), with the expected simulated minutes until it
  reaches its launch threshold;
- ``weather`` is what :meth:`SimDocks.set_weather` (or ``--weather``) set; none by default;
- :meth:`SimDocks.inject_door_fault` puts a door in fault (commands are answered with the fault)
  until :meth:`SimDocks.clear_fault`.

Scenarios call those methods; a running ``dronedispatch sitl`` takes the same from its own control
topic ``dronedispatch/sim/docks/<dock_id|all>/control``: ``{"set": "weather", "wind": 9, "gust": 14,
"rain": 0, "temp": 5}``, ``{"set": "fault", "reason": "door jammed"}`` or ``{"set": "repair"}``.

With ``interlock`` on, a vehicle in a dock whose door is not open refuses to arm ("dock door
closed"), as a real dock's drone cannot take off through its roof.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Annotated, Literal
from urllib.parse import urlsplit

import aiomqtt
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from dronedispatch.domain.docks import (
    TOPIC_PREFIX,
    CommandOutcome,
    DockCommand,
    DockPayloadError,
    DockState,
    DoorState,
    Weather,
    dock_of_topic,
    parse_command,
    state_topic,
)
from dronedispatch.domain.fleet import Dock, FleetConfig
from dronedispatch.sim.geodesy import offset_ne
from dronedispatch.sim.vehicle import SimVehicle

log = logging.getLogger(__name__)

DOOR_TIME_S = 6.0  # simulated seconds to open or close a door
DOCKED_WITHIN_M = 3.0
DEFAULT_LAUNCH_THRESHOLD_PCT = 40.0
PUBLISH_EVERY_WALL_S = 0.5
TICK_WALL_S = 0.05
DOOR_CLOSED = "dock door closed"
#: The simulator's own control topics (not part of the dock layout): ``<CONTROL_PREFIX>/<dock_id|all>/control``.
CONTROL_PREFIX = "dronedispatch/sim/docks"


class _WeatherControl(BaseModel):
    model_config = ConfigDict(extra="forbid")
    set: Literal["weather"]
    wind: float = Field(ge=0, le=100)
    gust: float | None = Field(default=None, ge=0, le=150)
    rain: float = Field(default=0.0, ge=0, le=500)
    temp: float = Field(default=15.0, ge=-80, le=70)


class _FaultControl(BaseModel):
    model_config = ConfigDict(extra="forbid")
    set: Literal["fault"]
    reason: str = Field(min_length=1, max_length=500)


class _RepairControl(BaseModel):
    model_config = ConfigDict(extra="forbid")
    set: Literal["repair"]


_CONTROL: TypeAdapter[_WeatherControl | _FaultControl | _RepairControl] = TypeAdapter(
    Annotated[_WeatherControl | _FaultControl | _RepairControl, Field(discriminator="set")]
)


def _host_port(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    if parts.scheme not in ("mqtt", "tcp") or not parts.hostname:
        raise ValueError(f"expected mqtt://host[:port], got {url!r}")
    return parts.hostname, parts.port or 1883


class SimDock:
    """One dock's door, fault and weather; the drone on it is read from the fleet's vehicles."""

    def __init__(self, dock: Dock, door_time_s: float) -> None:
        self.dock = dock
        self.door_time_s = door_time_s
        self.door = DoorState.CLOSED
        self.fault: str | None = None
        self.weather: Weather | None = None
        self.last_command: CommandOutcome | None = None
        self._moving_left = 0.0  # simulated seconds until the door finishes moving
        self._opening_for = 0.0  # simulated seconds the current opening has taken so far
        self.door_open_s = door_time_s  # the last opening, as measured (the rated time before any)
        self._pending: str | None = None  # request id the moving door answers when it stops
        self.commands = 0

    def command(self, command: DockCommand, request_id: str) -> None:
        self.commands += 1
        if self.fault is not None:
            self.last_command = CommandOutcome(request_id=request_id, result="fault", reason=self.fault)
            return
        wanted = DoorState.OPEN if command is DockCommand.OPEN else DoorState.CLOSED
        if self.door is wanted:
            self.last_command = CommandOutcome(request_id=request_id, result="ok")
            return
        moving = DoorState.OPENING if wanted is DoorState.OPEN else DoorState.CLOSING
        if self.door in (DoorState.OPENING, DoorState.CLOSING) and self.door is not moving:
            self._moving_left = self.door_time_s - self._moving_left  # reversing: back as far as it came
            self._opening_for = self.door_time_s - self._moving_left  # as if it had opened from closed
        elif self.door is not moving:
            self._moving_left = self.door_time_s
            self._opening_for = 0.0
        self.door = moving
        self._pending = request_id

    def step(self, sim_dt: float) -> bool:
        """Advance the door; True when it stopped moving."""
        if self.door not in (DoorState.OPENING, DoorState.CLOSING):
            return False
        self._moving_left -= sim_dt
        if self.door is DoorState.OPENING:
            self._opening_for += sim_dt
        if self._moving_left > 0:
            return False
        if self.door is DoorState.OPENING:  # measured in whole ticks, as a real dock's controller would
            self.door_open_s = round(self._opening_for, 1)
        self.door = DoorState.OPEN if self.door is DoorState.OPENING else DoorState.CLOSED
        self._moving_left = 0.0
        if self._pending is not None:
            self.last_command = CommandOutcome(request_id=self._pending, result="ok")
            self._pending = None
        return True

    def inject_fault(self, reason: str) -> None:
        self.fault = reason
        self.door = DoorState.FAULT
        if self._pending is not None:
            self.last_command = CommandOutcome(request_id=self._pending, result="fault", reason=reason)
            self._pending = None

    def clear_fault(self) -> None:
        if self.fault is not None:
            self.fault = None
            self.door = DoorState.CLOSED  # a repaired door is reset closed
            self._moving_left = 0.0


class SimDocks:
    """The simulated docks of a :class:`~dronedispatch.sim.runner.SimFleet`, on an MQTT broker."""

    def __init__(
        self,
        fleet: FleetConfig,
        vehicles: Sequence[SimVehicle],
        url: str,
        *,
        speed_factor: float = 1.0,
        weather: Weather | None = None,
        door_time_s: float = DOOR_TIME_S,
        interlock: bool = True,
        prefix: str = TOPIC_PREFIX,
    ) -> None:
        self.host, self.port = _host_port(url)
        self.fleet = fleet
        self.vehicles = list(vehicles)
        self.speed_factor = speed_factor
        self.prefix = prefix
        self.interlock = interlock
        self.docks = {d.id: SimDock(d, door_time_s) for d in fleet.docks}
        for d in self.docks.values():
            d.weather = weather
        self._thresholds = {
            spec.id: float(getattr(spec, "launch_threshold_pct", None) or DEFAULT_LAUNCH_THRESHOLD_PCT)
            for spec in fleet.drones
        }
        self._client: aiomqtt.Client | None = None
        self._task: asyncio.Task[None] | None = None
        self._published: dict[str, tuple[float, str]] = {}  # dock -> (wall time, content) last published
        self.invalid_commands = 0
        self.connected = asyncio.Event()

    # -- control (scenarios, tests) -------------------------------------------------------------
    def dock(self, dock_id: str) -> SimDock:
        try:
            return self.docks[dock_id]
        except KeyError:
            raise KeyError(f"no dock {dock_id!r} in the fleet") from None

    def set_weather(self, dock_id: str | None, weather: Weather | None) -> None:
        """The weather at one dock, or at every dock (``dock_id`` None)."""
        for d in self.docks.values() if dock_id is None else [self.dock(dock_id)]:
            d.weather = weather

    def inject_door_fault(self, dock_id: str, reason: str) -> None:
        self.dock(dock_id).inject_fault(reason)

    def clear_fault(self, dock_id: str | None = None) -> None:
        for d in self.docks.values() if dock_id is None else [self.dock(dock_id)]:
            d.clear_fault()

    # -- what a dock sees -----------------------------------------------------------------------
    def _docked(self, dock: Dock) -> SimVehicle | None:
        for v in self.vehicles:
            m = v.model
            if m.landed and math.hypot(*offset_ne(dock.lat, dock.lon, m.lat, m.lon)) <= DOCKED_WITHIN_M:
                return v
        return None

    def _arm_interlock(self, v: SimVehicle) -> str | None:
        if not self.interlock:
            return None
        for d in self.docks.values():
            m = v.model
            if math.hypot(*offset_ne(d.dock.lat, d.dock.lon, m.lat, m.lon)) <= DOCKED_WITHIN_M:
                return None if d.door is DoorState.OPEN else DOOR_CLOSED
        return None

    def state(self, dock_id: str, now: datetime | None = None) -> DockState:
        d = self.dock(dock_id)
        now = now or datetime.now(UTC)
        v = self._docked(d.dock)
        charging = False
        charge_pct = minutes = None
        if v is not None:
            m = v.model
            charge_pct = round(m.battery * 100.0, 2)
            chg_min = m.params["SIM_DOCK_CHG_MIN"]
            home_d = math.hypot(*offset_ne(m.home[0], m.home[1], m.lat, m.lon))
            charging = not m.armed and chg_min > 0 and m.battery < 1.0 and home_d <= DOCKED_WITHIN_M
            if chg_min > 0:
                threshold = self._thresholds.get(v.drone_id, DEFAULT_LAUNCH_THRESHOLD_PCT) / 100.0
                # rounded up: 0 only once the threshold is reached
                minutes = math.ceil(max(0.0, threshold - m.battery) * chg_min * 100.0 - 1e-6) / 100.0
        weather = d.weather.model_copy(update={"at": now}) if d.weather is not None else None
        return DockState(
            dock_id=dock_id, door=d.door, drone_present=v is not None, charging=charging, charge_pct=charge_pct,
            minutes_to_threshold=minutes, fault=d.fault, weather=weather, door_open_s=d.door_open_s, updated_at=now,
            last_command=d.last_command,
        )  # fmt: skip

    # -- running --------------------------------------------------------------------------------
    async def start(self) -> None:
        for v in self.vehicles:
            v.model.arm_interlock = lambda v=v: self._arm_interlock(v)
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="sim-docks")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            # bounded: a client cancelled in the middle of (re)connecting may not unwind at once
            done, _ = await asyncio.wait({self._task}, timeout=5)
            if not done:
                log.warning("dock MQTT client did not stop within 5 s; left behind")
            self._task = None
        for v in self.vehicles:
            v.model.arm_interlock = None
        self.connected.clear()

    async def _run(self) -> None:
        delay = 0.5
        while True:
            try:
                async with aiomqtt.Client(
                    self.host, self.port, identifier=f"dronedispatch-simdocks-{uuid.uuid4().hex[:8]}", timeout=10
                ) as client:
                    await client.subscribe(f"{self.prefix}/+/command", qos=1)
                    await client.subscribe(f"{CONTROL_PREFIX}/+/control", qos=1)
                    self._client = client
                    self._published.clear()  # publish everything again after a reconnect
                    self.connected.set()
                    delay = 0.5
                    log.info("simulated docks %s on %s:%d", ", ".join(self.docks), self.host, self.port)
                    async with asyncio.TaskGroup() as tg:
                        tg.create_task(self._ticker(client))
                        async for message in client.messages:
                            if str(message.topic).startswith(CONTROL_PREFIX + "/"):
                                self._on_control(str(message.topic), message.payload)
                            else:
                                self._on_command(str(message.topic), message.payload)
                            await self._publish_changes(client)
            except* aiomqtt.MqttError as group:
                log.warning("simulated docks: broker %s:%d: %s; retrying", self.host, self.port, group.exceptions[0])
            except* Exception:  # anything else: log and go on simulating rather than silence the docks
                log.exception("simulated docks: connection loop failed; reconnecting")
            self._client = None
            self.connected.clear()
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)

    async def _ticker(self, client: aiomqtt.Client) -> None:
        last = time.monotonic()
        while True:
            await asyncio.sleep(TICK_WALL_S)
            now = time.monotonic()
            sim_dt = (now - last) * self.speed_factor
            last = now
            for d in self.docks.values():
                d.step(sim_dt)
            await self._publish_changes(client)

    async def _publish_changes(self, client: aiomqtt.Client) -> None:
        wall = time.monotonic()
        for dock_id in self.docks:
            s = self.state(dock_id)
            # the charge figures move every tick while charging: they ride on the periodic state, while a
            # door, a drone, a fault, the weather or a command outcome goes out at once
            content = s.model_dump_json(exclude={"updated_at", "weather", "charge_pct", "minutes_to_threshold"}) + repr(
                s.weather.model_dump(exclude={"at"}) if s.weather else None
            )
            last = self._published.get(dock_id)
            if last is not None and last[1] == content and wall - last[0] < PUBLISH_EVERY_WALL_S:
                continue
            await client.publish(state_topic(dock_id, self.prefix), s.to_json(), qos=1, retain=True)
            self._published[dock_id] = (wall, content)

    def _on_control(self, topic: str, payload: object) -> None:
        """Weather, a door fault or its repair, set while running (what scenarios do through the methods)."""
        target = topic[len(CONTROL_PREFIX) + 1 : -len("/control")]
        dock_id = None if target == "all" else target
        try:
            if dock_id is not None:
                self.dock(dock_id)
            c = _CONTROL.validate_json(payload if isinstance(payload, bytes | str) else b"")
            if isinstance(c, _WeatherControl):
                gust = c.gust if c.gust is not None else c.wind
                w = Weather(
                    wind_mean_ms=c.wind, gust_ms=gust, rain_mm_h=c.rain, temperature_c=c.temp, at=datetime.now(UTC)
                )
                self.set_weather(dock_id, w)
            elif dock_id is None:
                raise ValueError("a fault or a repair names one dock")
            elif isinstance(c, _FaultControl):
                self.inject_door_fault(dock_id, c.reason)
            else:
                self.clear_fault(dock_id)
        except (KeyError, ValueError) as exc:  # pydantic's ValidationError is a ValueError
            self.invalid_commands += 1
            log.warning("simulated docks: control on %s ignored: %s", topic, exc)

    def _on_command(self, topic: str, payload: object) -> None:
        dock_id = dock_of_topic(topic, "command", self.prefix)
        if dock_id is None or dock_id not in self.docks:
            return
        try:
            request = parse_command(payload if isinstance(payload, bytes | str) else b"")
        except DockPayloadError as exc:
            self.invalid_commands += 1
            log.warning("simulated dock %s: invalid command ignored: %s", dock_id, exc)
            return
        self.docks[dock_id].command(request.command, request.request_id)
