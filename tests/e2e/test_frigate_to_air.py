"""Issue 6 acceptance: a Frigate MQTT message about a camera in Songdo Central Park becomes an
incident, gets a recommended drone, and that drone is dispatched and in the air."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from pathlib import Path

import aiomqtt
import pytest

from tests.e2e.conftest import System, start_system, wait_for

pytestmark = pytest.mark.e2e

CAMERA = "cctv-songdo-centralpark"


@pytest.fixture
def system_with_mqtt(tmp_path: Path, mosquitto) -> Iterator[System]:  # type: ignore[no-untyped-def]
    yield from start_system(tmp_path, extra_env={"DD_MQTT_URL": mosquitto.url})


def frigate_review(review_id: str, objects: list[str]) -> dict:
    item = {
        "id": review_id,
        "camera": CAMERA,
        "start_time": time.time(),
        "end_time": None,
        "severity": "alert",
        "data": {"detections": ["d1"], "objects": objects, "sub_labels": [], "zones": ["lawn"], "audio": []},
    }
    return {"type": "new", "before": item, "after": item}


async def publish(url: str, topic: str, payload: bytes) -> None:
    host, port = url.removeprefix("mqtt://").split(":")
    async with aiomqtt.Client(host, int(port)) as client:
        await client.publish(topic, payload, qos=1)


def test_frigate_smoke_becomes_a_dispatched_mission_in_the_air(system_with_mqtt: System, mosquitto) -> None:  # type: ignore[no-untyped-def]
    system = system_with_mqtt
    operator = system.client("operator")
    wait_for(
        lambda: all(d["state"] == "ready" for d in operator.get("/api/v1/drones").json()), 60, "drones ready", system
    )

    # garbage on the same topics is rejected and counted, and changes nothing
    asyncio.run(publish(mosquitto.url, "frigate/reviews", b"\xff not json"))
    asyncio.run(publish(mosquitto.url, "frigate/reviews", json.dumps(frigate_review("r-1", ["smoke"])).encode()))
    # Frigate sends the same review again: still one incident
    asyncio.run(publish(mosquitto.url, "frigate/reviews", json.dumps(frigate_review("r-1", ["smoke"])).encode()))

    incidents = wait_for(lambda: operator.get("/api/v1/incidents").json(), 30, "the incident from Frigate", system)
    assert len(incidents) == 1
    incident = incidents[0]
    assert incident["category"] == "fire" and incident["camera_id"] == CAMERA
    assert incident["source"] == "frigate"
    assert abs(incident["location"]["lat"] - 37.3926) < 0.002

    view = operator.get(f"/api/v1/incidents/{incident['id']}").json()
    best = next(c for c in view["recommendation"] if c["eligible"])
    assert best["drone_id"] == "dd-01"

    r = operator.post(f"/api/v1/incidents/{incident['id']}/dispatch", json={})
    assert r.status_code == 201, r.text
    mission = r.json()
    assert mission["template"] == "overwatch", "fire gets the overwatch orbit by default"

    def airborne() -> bool:
        m = operator.get(f"/api/v1/missions/{mission['id']}").json()
        assert m["state"] not in ("failed", "aborted"), m["reason"]
        drone = next(d for d in operator.get("/api/v1/drones").json() if d["id"] == "dd-01")
        return m["state"] in ("enroute", "on_scene") and not drone["landed"] and drone["position"]["alt"] > 5

    wait_for(airborne, 90, "the mission in the air", system)
    metrics = system.client("admin").get("/metrics").text
    assert "dronedispatch_missions_active 1.0" in metrics
    assert 'dronedispatch_ingest_messages_total{outcome="rejected",source="frigate/reviews"} 1.0' in metrics
