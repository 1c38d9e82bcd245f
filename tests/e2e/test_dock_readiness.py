"""Ready means ready, with the simulated docks on a real mosquitto and the simulated fleet over MAVLink.

One process: the simulator (vehicles and docks) and the service share the loop, so the test can
change a dock's weather, a vehicle's battery or a door's health while the service judges launches
through the MQTT dock adapter, as it would a vendor's bridge. A high speed factor keeps it short.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import yaml

from dronedispatch import cityfiles
from dronedispatch.api.security import issue_token
from dronedispatch.domain.docks import DoorState, Weather
from dronedispatch.runtime import Runtime
from dronedispatch.scenario.broker import free_udp_block, free_udp_port
from dronedispatch.service import create_app
from dronedispatch.settings import Settings
from dronedispatch.sim.docks import SimDocks
from dronedispatch.sim.runner import SimFleet
from tests.fixtures.services import MosquittoServer

SPEED = 20.0
NEAR_GTOWER = (37.3930, 126.6380)  # dd-01 (gtower) is nearer than dd-02 (songdo-south)


async def _until(predicate: Callable[[], Awaitable[Any]], what: str, within_s: float = 30.0) -> Any:
    deadline = time.monotonic() + within_s
    last = None
    while time.monotonic() < deadline:
        last = await predicate()
        if last:
            return last
        await asyncio.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}; last {last!r}")


def _weather(wind: float, gust: float) -> Weather:
    return Weather(wind_mean_ms=wind, gust_ms=gust, rain_mm_h=0, temperature_c=15, at=datetime.now(UTC))


async def test_launches_wait_for_weather_charge_and_a_working_door(
    tmp_path: Path, mosquitto_factory: Callable[[], MosquittoServer]
) -> None:
    # its own broker: the docks' retained states must not reach later tests' services
    mosquitto = mosquitto_factory()
    fleet = cityfiles.load_fleet().sized(2)
    fleet_file = tmp_path / "fleet.yaml"
    fleet_file.write_text(yaml.safe_dump(fleet.model_dump(), allow_unicode=True), "utf-8")
    gcs_port = free_udp_port()
    settings = Settings(
        database_url=f"sqlite:///{tmp_path / 'dd.db'}", mavlink=f"udpin:127.0.0.1:{gcs_port}", fleet=fleet_file,
        secret_key="dock-readiness-secret-key-0123456789abcdef", mqtt_url=mosquitto.url,
    )  # fmt: skip
    sim = SimFleet(fleet, speed_factor=SPEED, video=False, gcs_port=gcs_port, vehicle_port_base=free_udp_block(2),
                   api_port_base=None)  # fmt: skip
    # a slow door (60 simulated s, 3 s here) leaves time to break it while it opens
    docks = SimDocks(fleet, sim.vehicles, mosquitto.url, speed_factor=SPEED, weather=_weather(12, 20), door_time_s=60)
    runtime = Runtime(settings)
    app = create_app(settings, runtime)
    await runtime.start()
    await sim.start()
    await docks.start()
    runtime.store.upsert_user("op", "!no-password-login", "operator")
    auth = {"Authorization": f"Bearer {issue_token(settings.secret_key, 'op', 'operator', 600)}"}
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t", headers=auth,
                                     timeout=30) as http:  # fmt: skip

            async def drones_up() -> bool:
                r = await http.get("/api/v1/drones")
                heard = all(d["state"] != "offline" for d in r.json())
                return heard and all(runtime.docks.state(d.id) is not None for d in fleet.docks[:2])

            await _until(drones_up, "both drones and their docks to be heard", 60)
            r = await http.post(
                "/api/v1/incidents",
                json={"category": "fire", "severity": 3, "location": {"lat": NEAR_GTOWER[0], "lon": NEAR_GTOWER[1]}},
            )
            assert r.status_code == 201, r.text
            incident_id = r.json()["id"]

            async def view() -> dict[str, Any]:
                r = await http.get(f"/api/v1/incidents/{incident_id}")
                assert r.status_code == 200, r.text
                return {c["drone_id"]: c for c in r.json()["recommendation"]}

            # 1. a gust above every airframe's limit: nobody launches, and the reason names the gust
            async def weather_refusal() -> dict[str, Any] | None:
                rec = await view()
                return rec if all(c["reason"]["code"] == "weather" for c in rec.values()) else None

            rec = await _until(weather_refusal, "the gust to hold every drone back")
            assert rec["dd-01"]["reason"]["params"]["limit"] == "gust"
            assert rec["dd-01"]["reason"]["en"] == "weather at the dock: gust 20 m/s beyond the airframe limit 15 m/s"
            r = await http.post(f"/api/v1/incidents/{incident_id}/dispatch", json={})
            assert r.status_code == 409 and "gust 20 m/s" in r.json()["detail"], r.text
            # the drone list says so too: ready on the vehicle's word, held back by the weather at its dock
            listed = {d["id"]: d for d in (await http.get("/api/v1/drones")).json()}
            assert listed["dd-01"]["state"] == "ready" and listed["dd-01"]["held_back"]["code"] == "weather"
            assert listed["dd-01"]["held_back"]["params"]["limit"] == "gust"

            # 2. calm again, but dd-01 (the nearer) charges: dd-02 is proposed, and why; dd-01's wait shrinks
            dd01 = next(v for v in sim.vehicles if v.drone_id == "dd-01")
            dd01.model.params.set("SIM_DOCK_CHG_MIN", 15.0)  # a fast charger: the estimate shrinks within seconds
            dd01.battery_fault(36.0)
            docks.set_weather(None, _weather(3, 5))

            async def charging() -> dict[str, Any] | None:
                rec = await view()
                return rec if rec["dd-01"]["reason"]["code"] == "charging" and rec["dd-02"]["eligible"] else None

            rec = await _until(charging, "dd-01 to be charging and dd-02 proposed")
            params = rec["dd-01"]["reason"]["params"]
            first_wait = params["ready_in_s"]
            assert rec["dd-01"]["reason"]["en"].endswith(f"dd-01 ready in {params['ready_in_min']} min")
            assert rec["dd-02"]["rank"] == 1 and rec["dd-02"]["reason"]["code"] == "chosen_over_nearer"
            assert "nearer dd-01 cannot launch: charging" in rec["dd-02"]["reason"]["en"]
            waits = {first_wait}

            async def charged() -> bool:
                rec = await view()
                c = rec["dd-01"]
                if c["reason"]["code"] == "charging":
                    waits.add(c["reason"]["params"]["ready_in_s"])
                return bool(c["eligible"] and c["rank"] == 1)

            await _until(charged, "dd-01 to charge to its launch threshold and be proposed", 60)
            assert min(waits) < first_wait, f"the ready-in estimate never shrank: {sorted(waits)}"

            # 3. the door breaks while it opens: the launch fails with the reason, the incident waits again
            r = await http.post(f"/api/v1/incidents/{incident_id}/dispatch", json={"drone_id": "dd-01"})
            assert r.status_code in (200, 201), r.text
            mission_id = r.json()["id"]

            async def opening() -> bool:
                return docks.dock("gtower").door is DoorState.OPENING

            await _until(opening, "the door to start opening", 15)
            docks.inject_door_fault("gtower", "door motor stalled")

            async def mission(state: str) -> dict[str, Any] | None:
                m = (await http.get(f"/api/v1/missions/{mission_id}")).json()
                return m if m["state"] == state else None

            m = await _until(lambda: mission("failed"), "the launch to fail on the door")
            assert m["reason"] == "dock door fault: dock gtower: door motor stalled", m["reason"]
            assert dd01.model.armed is False
            inc = (await http.get(f"/api/v1/incidents/{incident_id}")).json()
            assert inc["status"] == "open"
            # the broken dock holds dd-01 back by name; dd-02 can go
            rec = await view()
            assert rec["dd-01"]["reason"]["code"] == "door_fault" and rec["dd-02"]["eligible"]

            # 4. repaired: the next launch opens the door, and the vehicle (which will not arm through a shut
            # door) takes off
            docks.clear_fault("gtower")
            await _until(lambda: _eligible(view, "dd-01"), "the repaired dock to free dd-01")
            r = await http.post(f"/api/v1/incidents/{incident_id}/dispatch", json={"drone_id": "dd-01"})
            assert r.status_code in (200, 201), r.text
            mission_id = r.json()["id"]
            await _until(lambda: mission("enroute") or mission("on_scene"), "the launch through the open door")

            async def door_shut() -> bool:
                return docks.dock("gtower").door is DoorState.CLOSED

            await _until(door_shut, "the door to close behind the drone", 20)

            # 5. a gust past dd-01's hard limit (18 m/s) while it flies: home, with the reason on the mission
            docks.set_weather("gtower", _weather(9, 19))
            m = await _until(lambda: mission("returning"), "the weather to send the drone home")
            assert "weather: gust 19 m/s at the dock above the hard limit 18 m/s" in m["reason"], m["reason"]
    finally:
        await docks.stop()
        await sim.stop()
        await runtime.stop()


async def _eligible(view: Callable[[], Awaitable[dict[str, Any]]], drone_id: str) -> bool:
    return bool((await view())[drone_id]["eligible"])
