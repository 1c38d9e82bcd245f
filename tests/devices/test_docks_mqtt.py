"""Docks as devices over a real mosquitto: simulated docks -> MQTT adapter -> DockService.

The simulator runs at a high speed factor, so a 6 s door takes 0.3 s and a minute of charging 3 s.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiomqtt
import pytest
import yaml
from fastapi.testclient import TestClient

from dronedispatch.app.docks import DockService
from dronedispatch.app.errors import DockDoorFault
from dronedispatch.bus import BusEvent
from dronedispatch.devices.dock_mqtt import MqttDockAdapter
from dronedispatch.domain.docks import DockState, DoorState, Weather, state_topic
from dronedispatch.domain.fleet import Dock, DroneSpec, FleetConfig
from dronedispatch.events import DockChanged
from dronedispatch.mavlink.errors import CommandDenied
from dronedispatch.mavlink.events import StatusText
from dronedispatch.mavlink.link import MavlinkLink
from dronedispatch.service import create_app
from dronedispatch.sim.docks import SimDocks
from dronedispatch.sim.runner import SimFleet
from dronedispatch.store.users import hash_password
from tests.api.conftest import PASSWORD, make_settings
from tests.fixtures.services import MosquittoServer, free_udp_port
from tests.mavlink.simfleet import free_udp_range

SPEED = 20.0
MAV_RESULT_DENIED = 2


@dataclass
class Recorder:
    events: list[BusEvent] = field(default_factory=list)

    def publish(self, event: BusEvent) -> None:
        self.events.append(event)

    def docks(self, dock_id: str) -> list[DockState]:
        return [e.data for e in self.events if isinstance(e, DockChanged) and e.data.dock_id == dock_id]


@dataclass
class Rig:
    sim: SimFleet
    link: MavlinkLink
    docks: SimDocks
    adapter: MqttDockAdapter
    service: DockService
    recorder: Recorder
    prefix: str
    url: str


async def until(pred: Callable[[], Any], within: float = 10.0) -> None:
    async with asyncio.timeout(within):
        while not pred():  # noqa: ASYNC110 (states arrive from other tasks; polling keeps the test plain)
            await asyncio.sleep(0.02)


def fleet() -> FleetConfig:
    a = Dock(id="dk-a", name_ko="가", name_en="A", lat=37.3918, lon=126.6393, alt=5.0)
    b = Dock(id="dk-b", name_ko="나", name_en="B", lat=37.3950, lon=126.6450, alt=5.0)
    return FleetConfig(
        city="t",
        docks=[a, b],
        drones=[DroneSpec(id="dd-a", sysid=1, dock="dk-a"), DroneSpec(id="dd-b", sysid=2, dock="dk-b")],
    )


@contextlib.asynccontextmanager
async def rig(url: str) -> AsyncIterator[Rig]:
    prefix = f"test-{uuid.uuid4().hex[:8]}/docks"  # retained states of other tests never reach this one
    f = fleet()
    gcs_port = free_udp_port()
    sim = SimFleet(f, speed_factor=SPEED, gcs_port=gcs_port, vehicle_port_base=free_udp_range(2), api_port_base=None)
    link = MavlinkLink(f"udpin:127.0.0.1:{gcs_port}")
    docks = SimDocks(f, sim.vehicles, url, speed_factor=SPEED, prefix=prefix)
    adapter = MqttDockAdapter(url, prefix=prefix)
    recorder = Recorder()
    service = DockService(recorder, f.docks)
    async with link, sim:
        await docks.start()
        await service.start(adapter)
        try:
            yield Rig(sim, link, docks, adapter, service, recorder, prefix, url)
        finally:
            await service.stop()
            await docks.stop()
            async with aiomqtt.Client(docks.host, docks.port) as c:  # leave no retained state behind
                for d in f.docks:
                    await c.publish(state_topic(d.id, prefix), b"", retain=True)


async def test_doors_charging_weather_faults_and_the_arm_interlock(mosquitto: MosquittoServer) -> None:
    async with rig(mosquitto.url) as r:
        svc = r.service
        await until(lambda: svc.state("dk-a") is not None and svc.state("dk-b") is not None)
        a = svc.state("dk-a")
        assert a is not None and a.door is DoorState.CLOSED and a.drone_present and a.fault is None
        assert a.weather is None and svc.healthy("dk-a")

        # the docked vehicle cannot take off through a closed door: denied, with the reason
        texts: list[str] = []
        r.link.add_listener(lambda e: texts.append(e.text) if isinstance(e, StatusText) else None)
        v = await r.link.wait_vehicle(1, 10)
        await until(lambda: r.sim.vehicles[0].links[0].wants_text(time.monotonic()))  # it has heard our heartbeat
        with pytest.raises(CommandDenied) as denied:
            await v.command.arm()
        assert denied.value.result == MAV_RESULT_DENIED
        await until(lambda: "Arming denied: dock door closed" in texts)
        assert not r.sim.vehicles[0].armed

        # opening takes the door time (6 simulated seconds), through 'opening', then arming works
        t0 = r.sim.vehicles[0].time_s
        await svc.open_door("dk-a", timeout_s=10)
        took = r.sim.vehicles[0].time_s - t0
        assert 5.5 <= took <= 12.0, took
        a = svc.state("dk-a")
        assert a is not None and a.door is DoorState.OPEN
        assert a.last_command is not None and a.last_command.result == "ok"
        doors = [s.door for s in r.recorder.docks("dk-a")]
        assert doors[doors.index(DoorState.OPENING) :][:2] == [DoorState.OPENING, DoorState.OPEN]
        async with asyncio.timeout(10):
            while True:  # pre-arm checks pass a few simulated seconds after boot
                try:
                    assert await v.command.arm() == 0
                    break
                except CommandDenied as exc:
                    assert exc.result != MAV_RESULT_DENIED, exc
                    await asyncio.sleep(0.1)
        await v.command.disarm()
        await until(lambda: not r.sim.vehicles[0].armed)
        await svc.open_door("dk-a", timeout_s=5)  # already open: at once
        await svc.close_door("dk-a", timeout_s=10)
        assert (s := svc.state("dk-a")) is not None and s.door is DoorState.CLOSED

        # charging in the dock: the minutes to the launch threshold (40 %) fall to zero
        m = r.sim.vehicles[1].model
        m.params.set("SIM_DOCK_CHG_MIN", 6.0)  # a full charge in 6 simulated minutes
        m.battery = 0.2
        await until(lambda: (s := svc.state("dk-b")) is not None and s.charging and (s.charge_pct or 0) < 25)
        first = svc.state("dk-b")
        assert first is not None and first.minutes_to_threshold is not None
        assert 1.0 < first.minutes_to_threshold <= 1.2  # (40 % - 20 %) × 6 min
        await until(lambda: (s := svc.state("dk-b")) is not None and s.minutes_to_threshold == 0.0, within=15)
        done = svc.state("dk-b")
        assert done is not None and (done.charge_pct or 0) >= 40.0 and done.charging
        seen = [s.minutes_to_threshold for s in r.recorder.docks("dk-b") if s.minutes_to_threshold is not None]
        seen = seen[seen.index(first.minutes_to_threshold) :]  # from the battery set low (a full one was 0)
        assert len(set(seen)) >= 3 and seen == sorted(seen, reverse=True)  # moving, and only down

        # weather: every dock, then one dock alone
        now = datetime.now(UTC)
        r.docks.set_weather(None, Weather(wind_mean_ms=5, gust_ms=8, rain_mm_h=0, temperature_c=12, at=now))
        await until(lambda: all((s := svc.state(d)) and s.weather and s.weather.gust_ms == 8 for d in ("dk-a", "dk-b")))
        r.docks.set_weather("dk-b", Weather(wind_mean_ms=11, gust_ms=17.5, rain_mm_h=4, temperature_c=-2, at=now))
        await until(
            lambda: (s := svc.state("dk-b")) is not None and s.weather is not None and s.weather.gust_ms == 17.5
        )
        b = svc.state("dk-b")
        assert b is not None and b.weather is not None and (b.weather.rain_mm_h, b.weather.temperature_c) == (4, -2)
        assert (s := svc.state("dk-a")) is not None and s.weather is not None and s.weather.gust_ms == 8

        # a door fault: shown with its reason; opening fails at once with it; cleared, the door works again
        r.docks.inject_door_fault("dk-a", "door motor overcurrent")
        await until(lambda: (s := svc.state("dk-a")) is not None and s.door is DoorState.FAULT)
        assert (s := svc.state("dk-a")) is not None and s.fault == "door motor overcurrent"
        assert not svc.healthy("dk-a") and svc.problem("dk-a") == "door motor overcurrent"
        with pytest.raises(DockDoorFault) as fault:
            await svc.open_door("dk-a", timeout_s=5)
        assert "door motor overcurrent" in fault.value.reason and fault.value.dock_id == "dk-a"
        r.docks.clear_fault("dk-a")
        await until(lambda: svc.healthy("dk-a"))
        await svc.open_door("dk-a", timeout_s=10)

        # a fault while the door moves answers the pending command with it
        opening = asyncio.create_task(svc.close_door("dk-a", timeout_s=10))
        await until(lambda: (s := svc.state("dk-a")) is not None and s.door is DoorState.CLOSING)
        r.docks.inject_door_fault("dk-a", "obstruction detected")
        with pytest.raises(DockDoorFault, match="obstruction detected"):
            await opening
        r.docks.clear_fault("dk-a")

        # a door that never finishes: a timeout, as a typed fault
        r.docks.dock("dk-b").door_time_s = 600.0
        with pytest.raises(DockDoorFault, match=r"not open within 0\.5 s"):
            await svc.open_door("dk-b", timeout_s=0.5)

        # invalid payloads are counted and ignored; a dock not in the fleet file is ignored too
        before = svc.state("dk-b")
        async with aiomqtt.Client(r.docks.host, r.docks.port) as c:
            await c.publish(state_topic("dk-b", r.prefix), b"{not json")
            await c.publish(state_topic("dk-b", r.prefix), json.dumps({"dock_id": "dk-b", "door": "ajar"}))
            bad = before.model_dump(mode="json") if before else {}
            await c.publish(state_topic("dk-a", r.prefix), json.dumps(bad))  # dk-b's state on dk-a's topic
            ghost = (before.model_copy(update={"dock_id": "ghost"}) if before else None) or before
            assert ghost is not None
            await c.publish(state_topic("ghost", r.prefix), ghost.to_json())
        await until(lambda: r.adapter.invalid["dk-b"] == 2 and r.adapter.invalid["dk-a"] == 1)
        await until(lambda: svc.unknown.get("ghost") == 1)
        assert "door" in r.adapter.last_error["dk-b"] and "does not match" in r.adapter.last_error["dk-a"]
        assert svc.state("ghost") is None
        n = r.adapter.received["dk-b"]
        await until(lambda: r.adapter.received["dk-b"] > n)  # still listening
        assert svc.healthy("dk-b")


def test_get_docks_has_the_live_state(tmp_path: Path, mosquitto_factory: Callable[[], MosquittoServer]) -> None:
    broker = mosquitto_factory()  # its own broker: the retained state below concerns the default fleet's docks
    fleet_file = tmp_path / "fleet.yaml"
    f = fleet()
    fleet_file.write_text(yaml.safe_dump(f.model_dump()), "utf-8")
    now = datetime.now(UTC)
    state = DockState(
        dock_id="dk-a", door=DoorState.OPEN, drone_present=True, charging=True, charge_pct=55.0,
        minutes_to_threshold=0.0, weather=Weather(wind_mean_ms=3, gust_ms=6, rain_mm_h=0, temperature_c=20, at=now),
        updated_at=now,
    )  # fmt: skip

    async def publish() -> None:
        async with aiomqtt.Client(broker.host, broker.port) as c:
            await c.publish(state_topic("dk-a"), state.to_json(), qos=1, retain=True)

    asyncio.run(publish())
    settings = make_settings(tmp_path, mqtt_url=broker.url, fleet=fleet_file)
    app = create_app(settings)
    with TestClient(app) as client:
        runtime = app.state.runtime
        runtime.store.upsert_user("operator", hash_password(PASSWORD), "operator")
        token = client.post("/api/v1/auth/token", data={"username": "operator", "password": PASSWORD}).json()
        headers = {"Authorization": f"Bearer {token['access_token']}"}
        body: list[dict[str, Any]] = []
        for _ in range(200):
            body = client.get("/api/v1/docks", headers=headers).json()
            if body[0]["state"] is not None:
                break
            time.sleep(0.05)
        by_id = {d["id"]: d for d in body}
        assert set(by_id) == {"dk-a", "dk-b"} and by_id["dk-b"]["state"] is None
        live = by_id["dk-a"]["state"]
        assert live["door"] == "open" and live["charge_pct"] == 55.0 and live["weather"]["gust_ms"] == 6.0
        assert by_id["dk-a"]["lat"] == f.docks[0].lat  # the fleet file's dock, with its state beside it
        health = client.get("/healthz").json()["docks"]
        assert health["dk-b"] == {"heard": False, "healthy": True}  # no bridge: as before docks were devices
        assert health["dk-a"]["heard"] and health["dk-a"]["door"] == "open"


async def test_the_adapter_reconnects_after_a_broker_restart(mosquitto_factory: Callable[[], MosquittoServer]) -> None:
    broker = mosquitto_factory()  # its own: this one is stopped and started again
    f = fleet()
    docks = SimDocks(f, [], broker.url, speed_factor=SPEED)
    adapter = MqttDockAdapter(broker.url, backoff_initial=0.1, backoff_max=0.5)
    service = DockService(Recorder(), f.docks)
    await docks.start()
    await service.start(adapter)
    try:
        await until(lambda: service.state("dk-a") is not None)
        await asyncio.to_thread(broker.stop)
        await until(lambda: not adapter.connected.is_set())
        r_before = adapter.received["dk-a"]
        await asyncio.to_thread(broker.start)
        await until(lambda: adapter.reconnects >= 1 and adapter.received["dk-a"] > r_before, within=15)
        # and commands get through again once the simulated docks are back on the broker too
        await until(lambda: docks.connected.is_set(), within=15)
        await service.open_door("dk-b", timeout_s=10)
        assert (s := service.state("dk-b")) is not None and s.door is DoorState.OPEN and not s.drone_present
    finally:
        await service.stop()
        await docks.stop()
