"""Issue 8 through the whole system: the service finds the drone's camera over MAVLink, relays its
H.264 to a WebRTC viewer, takes snapshots, and keeps the mission's recording as evidence."""

from __future__ import annotations

import asyncio
import hashlib
import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from aiortc import RTCPeerConnection, RTCSessionDescription

from dronedispatch.video import formats
from dronedispatch.video.relay import restrict_ice_hosts, rtc_configuration
from tests.e2e.conftest import System, start_system, wait_for

pytestmark = pytest.mark.e2e
PARK = {"lat": 37.3926, "lon": 126.6378}


@pytest.fixture
def system(tmp_path: Path) -> Iterator[System]:
    yield from start_system(tmp_path, video=True)


async def watch(client: httpx.Client, drone_id: str, frames: int) -> list[formats.Stamp]:
    """A WebRTC viewer, as a browser would be: offer over HTTP, H.264 back, pixel timestamps read."""
    restrict_ice_hosts(["127.0.0.1"])  # this process offers loopback candidates only, like the service
    pc = RTCPeerConnection(rtc_configuration([]))
    pc.addTransceiver("video", direction="recvonly")
    got: asyncio.Future[object] = asyncio.get_running_loop().create_future()
    pc.on("track", lambda track: got.done() or got.set_result(track))
    await pc.setLocalDescription(await pc.createOffer())
    r = await asyncio.to_thread(
        client.post, f"/api/v1/drones/{drone_id}/video/offer",
        json={"sdp": pc.localDescription.sdp, "type": pc.localDescription.type},
    )  # fmt: skip
    assert r.status_code == 200, r.text
    assert "a=candidate" in r.json()["sdp"] and "127.0.0.1" in r.json()["sdp"]
    await pc.setRemoteDescription(RTCSessionDescription(**r.json()))
    track = await asyncio.wait_for(got, 20)
    stamps: list[formats.Stamp] = []
    try:
        while len(stamps) < frames:
            frame = await asyncio.wait_for(track.recv(), 20)  # type: ignore[attr-defined]
            st = formats.read_stamp(frame.to_ndarray(format="gray"))
            if st is not None:
                stamps.append(st)
    finally:
        await pc.close()
    return stamps


def test_live_video_snapshot_and_recording(system: System, tmp_path: Path) -> None:
    operator, pilot = system.client("operator"), system.client("pilot")
    wait_for(lambda: all(d["state"] == "ready" for d in operator.get("/api/v1/drones").json()), 60,
             "drones ready", system)  # fmt: skip
    # a drone on the ground is asked on demand: video works before any mission
    assert operator.get("/api/v1/drones/nope/snapshot.jpg").status_code == 404

    incident = operator.post("/api/v1/incidents", json={"category": "traffic_accident", "location": PARK}).json()
    mission = operator.post(f"/api/v1/incidents/{incident['id']}/dispatch", json={}).json()
    wait_for(lambda: operator.get(f"/api/v1/missions/{mission['id']}").json()["state"] in ("enroute", "on_scene"),
             90, "the drone in the air", system)  # fmt: skip

    stamps = asyncio.run(watch(operator, "dd-01", frames=15))
    counters = [s.counter for s in stamps]
    assert counters == sorted(counters) and len(set(counters)) == len(counters), "frames arrive in order, once"
    now_us = time.time_ns() // 1000
    assert all(abs(now_us - formats.unwrap_time_us(s.time_us, now_us)) < 30_000_000 for s in stamps)

    jpeg = wait_for(lambda: (r := operator.get("/api/v1/drones/dd-01/snapshot.jpg")).status_code == 200 and r.content,
                    30, "a snapshot", system)  # fmt: skip
    assert jpeg[:2] == b"\xff\xd8" and len(jpeg) > 2000

    wait_for(lambda: operator.get(f"/api/v1/missions/{mission['id']}").json()["state"] == "on_scene", 90,
             "on scene", system)  # fmt: skip
    time.sleep(1.0)  # a little video on scene
    assert pilot.post(f"/api/v1/missions/{mission['id']}/commands", json={"command": "rtl"}).status_code == 200
    wait_for(lambda: operator.get(f"/api/v1/missions/{mission['id']}").json()["state"] == "completed", 180,
             "the mission completed", system)  # fmt: skip

    evidence = wait_for(
        lambda: (e := operator.get(f"/api/v1/missions/{mission['id']}/evidence").json())
        and {x["kind"] for x in e} >= {"recording", "subtitles", "snapshot"} and e,
        30, "the recording kept as evidence", system,
    )  # fmt: skip
    by_kind = {e["kind"]: e for e in evidence}
    rec = operator.get(by_kind["recording"]["url"])
    assert rec.status_code == 200 and rec.headers["content-type"] == "video/mp4"
    assert hashlib.sha256(rec.content).hexdigest() == by_kind["recording"]["sha256"] == rec.headers["x-sha256"]
    mp4 = tmp_path / "rec.mp4"
    mp4.write_bytes(rec.content)
    probe = json.loads(subprocess.run(
        ["ffprobe", "-v", "error", "-show_entries", "format=duration:stream=codec_name", "-of", "json", str(mp4)],
        check=True, capture_output=True, timeout=30,
    ).stdout)  # fmt: skip
    assert probe["streams"][0]["codec_name"] == "h264"
    assert float(probe["format"]["duration"]) > 1.0
    vtt = operator.get(by_kind["subtitles"]["url"]).text
    assert vtt.startswith("WEBVTT") and "37.39" in vtt
    snap = operator.get(by_kind["snapshot"]["url"])
    assert snap.content[:2] == b"\xff\xd8"
