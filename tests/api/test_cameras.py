"""Fixed cameras through the API: live video offers, states, snapshots, the picture taken when a camera reports."""

from __future__ import annotations

import asyncio
import base64
import logging
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import av
import pytest
import yaml
from fastapi.testclient import TestClient

from dronedispatch.service import create_app
from dronedispatch.store.users import ROLES, hash_password
from tests.api.conftest import PASSWORD, make_settings
from tests.fixtures.services import free_tcp_port
from tests.video.rtsp_fixtures import PASSWORD as CAMERA_PASSWORD
from tests.video.rtsp_fixtures import GstCamera, attach_viewer, offer_sdp

SNAP_USER, SNAP_PASSWORD = "viewer", "snap-Secret-9"


def _jpeg() -> bytes:
    frame = av.VideoFrame(64, 48, "yuv420p")
    for plane in frame.planes:
        plane.update(bytes([128]) * plane.buffer_size)
    codec = av.CodecContext.create("mjpeg", "w")
    codec.width, codec.height, codec.pix_fmt = 64, 48, "yuvj420p"
    return b"".join(bytes(p) for p in codec.encode(frame.reformat(format="yuvj420p")) + codec.encode(None))


class _SnapshotHandler(BaseHTTPRequestHandler):
    jpeg = b""
    auth = "Basic " + base64.b64encode(f"{SNAP_USER}:{SNAP_PASSWORD}".encode()).decode()

    def do_GET(self) -> None:
        if self.headers.get("Authorization") != self.auth:
            self.send_response(401)
            self.end_headers()
            return
        self.send_response(200)
        self.send_header("Content-Type", "image/jpeg")
        self.send_header("Content-Length", str(len(self.jpeg)))
        self.end_headers()
        self.wfile.write(self.jpeg)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def cameras_file(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    gst = GstCamera()
    gst.start()
    _SnapshotHandler.jpeg = _jpeg()
    http = ThreadingHTTPServer(("127.0.0.1", 0), _SnapshotHandler)
    threading.Thread(target=http.serve_forever, daemon=True).start()
    base = {"name_ko": "카메라", "lat": 37.3926, "lon": 126.6378, "heading_deg": 120, "fov_deg": 90}
    cameras = [
        {**base, "id": "cam-live", "name_en": "Live", "stream": gst.url},
        {**base, "id": "cam-snap", "name_en": "Snapshot only", "lat": 37.40,
         "snapshot_url": f"http://{SNAP_USER}:{SNAP_PASSWORD}@127.0.0.1:{http.server_address[1]}/snap.jpg"},
        {**base, "id": "cam-dead", "name_en": "Dead", "lat": 37.41,
         "stream": f"rtsp://admin:{CAMERA_PASSWORD}@127.0.0.1:{free_tcp_port()}/x"},
        {**base, "id": "cam-plain", "name_en": "No video", "lat": 37.42},
    ]  # fmt: skip
    path = tmp_path_factory.mktemp("cameras") / "cameras.yaml"
    path.write_text(yaml.safe_dump({"city": "test", "cameras": cameras}))
    yield path
    http.shutdown()
    gst.stop()


@pytest.fixture(scope="module")
def client(cameras_file: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    tmp = tmp_path_factory.mktemp("cameras-api")
    app = create_app(make_settings(tmp, cameras=cameras_file, recordings_dir=tmp / "recordings"))
    app.state.runtime.cctv.offer_wait_s = 3.0
    with TestClient(app) as c:
        for role in ROLES:
            app.state.runtime.store.upsert_user(role, hash_password(PASSWORD), role)
        yield c


@pytest.fixture(scope="module")
def headers(client: TestClient) -> dict[str, str]:
    r = client.post("/api/v1/auth/token", data={"username": "operator", "password": PASSWORD})
    return {"Authorization": f"Bearer {r.json()['access_token']}"}


def test_credentials_never_leave_the_service(
    client: TestClient, headers: dict[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    listed = client.get("/api/v1/cameras", headers=headers)
    assert listed.status_code == 200
    by_id = {c["id"]: c for c in listed.json()}
    assert by_id["cam-live"]["stream"].startswith("rtsp://***@127.0.0.1:")
    assert by_id["cam-snap"]["snapshot_url"].startswith("http://***@127.0.0.1:")
    r = client.get("/api/v1/cameras/cam-dead/snapshot.jpg", headers=headers)  # an error quoting its URL
    assert r.status_code == 503
    for text in (listed.text, r.text, client.get("/api/v1/cameras/video", headers=headers).text, caplog.text):
        assert CAMERA_PASSWORD not in text and SNAP_PASSWORD not in text


def test_live_camera_plays_in_a_webrtc_viewer(client: TestClient, headers: dict[str, str]) -> None:
    async def watch() -> tuple[int, str]:
        pc, sdp = await offer_sdp()
        r = await asyncio.to_thread(
            client.post, "/api/v1/cameras/cam-live/video/offer", json={"sdp": sdp, "type": "offer"}, headers=headers
        )
        assert r.status_code == 200, r.text
        assert r.json()["type"] == "answer"
        viewer = await attach_viewer(pc, r.json()["sdp"])
        try:
            await viewer.wait_frames(5)
            state = await asyncio.to_thread(client.get, "/api/v1/cameras/cam-live/video", headers=headers)
            return viewer.frames, state.json()["state"]
        finally:
            await viewer.close()

    frames, state = asyncio.run(watch())
    assert frames >= 5 and state == "live"
    r = client.get("/api/v1/cameras/cam-live/snapshot.jpg", headers=headers)
    assert r.status_code == 200 and r.headers["content-type"] == "image/jpeg" and r.content[:2] == b"\xff\xd8"


def test_cameras_without_video_or_answer_are_clear_errors(client: TestClient, headers: dict[str, str]) -> None:
    offer = {"sdp": asyncio.run(_sdp()), "type": "offer"}
    assert client.post("/api/v1/cameras/nowhere/video/offer", json=offer, headers=headers).status_code == 404
    r = client.post("/api/v1/cameras/cam-plain/video/offer", json=offer, headers=headers)
    assert r.status_code == 404 and r.json()["code"] == "no_stream"
    assert client.get("/api/v1/cameras/cam-plain/snapshot.jpg", headers=headers).status_code == 404
    r = client.post("/api/v1/cameras/cam-dead/video/offer", json=offer, headers=headers)
    assert r.status_code == 503 and r.json()["code"] == "camera_unreachable"
    assert "refused" in r.json()["detail"].lower()
    state = client.get("/api/v1/cameras/cam-dead/video", headers=headers).json()
    assert state["state"] == "unreachable" and "refused" in state["reason"].lower() and state["since"]
    assert client.get("/api/v1/cameras/cam-plain/video", headers=headers).json()["state"] == "none"
    snap = client.get("/api/v1/cameras/cam-snap/snapshot.jpg", headers=headers)  # from its snapshot URL
    assert snap.status_code == 200 and snap.content == _SnapshotHandler.jpeg


async def _sdp() -> str:
    pc, sdp = await offer_sdp()
    await pc.close()
    return sdp


def test_an_incident_reported_by_a_camera_keeps_its_picture(client: TestClient, headers: dict[str, str]) -> None:
    runtime = client.app.state.runtime  # type: ignore[attr-defined]
    r = client.post("/api/v1/incidents", json={"category": "fire", "camera_id": "cam-live"}, headers=headers)
    assert r.status_code == 201, r.text
    incident_id = r.json()["id"]
    url = f"/api/v1/incidents/{incident_id}/camera-snapshot.jpg"
    deadline = time.monotonic() + 20
    while (snap := client.get(url, headers=headers)).status_code == 404:
        assert time.monotonic() < deadline, "no camera picture kept for the incident"
        time.sleep(0.2)
    assert snap.status_code == 200 and snap.content[:2] == b"\xff\xd8"
    [evidence] = [e for e in runtime.store.list_evidence(incident_id=incident_id) if e.kind == "snapshot"]
    assert snap.headers["x-sha256"] == evidence.sha256 and evidence.size_bytes == len(snap.content)
    audit = runtime.store.audit_log(target_type="incident", target_id=str(incident_id))
    assert any(a.action == "evidence.snapshot" and a.detail["sha256"] == evidence.sha256 for a in audit)
    # an incident without a reporting camera has none
    r = client.post("/api/v1/incidents", json={"category": "fire", "location": {"lat": 37.45, "lon": 126.7}},
                    headers=headers)  # fmt: skip
    assert client.get(f"/api/v1/incidents/{r.json()['id']}/camera-snapshot.jpg", headers=headers).status_code == 404
