"""The simulated cameras of a cameras file as a site: RTSP and ONVIF follow one camera state."""

from __future__ import annotations

import asyncio
import datetime as dt
import socket

import pytest
from onvif import ONVIFCamera

from dronedispatch.cli import build_parser
from dronedispatch.domain.assets import AssetKind, Camera
from dronedispatch.sim.cctv_site import CctvSite

PULLPOINT_NS = "http://www.onvif.org/ver10/events/wsdl/PullPointSubscription"


def _free_block(n: int) -> int:
    for _ in range(50):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            base = s.getsockname()[1]
        socks = []
        try:
            for p in range(base, base + n):
                socks.append(socket.socket())
                socks[-1].bind(("127.0.0.1", p))
            return base
        except OSError:
            continue
        finally:
            for sock in socks:
                sock.close()
    raise RuntimeError("no free port range")


async def _rtsp_status(port: int, path: str) -> int:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"DESCRIBE rtsp://127.0.0.1:{port}/{path} RTSP/1.0\r\nCSeq: 1\r\n\r\n".encode())
    status = int((await reader.readline()).split()[1])
    writer.close()
    return status


async def _http_get(port: int, path: str) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".encode())
    data = await reader.read()
    writer.close()
    return data


def _refused(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except OSError:
        return True
    return False


async def test_reboot_and_events_reach_the_onvif_device() -> None:
    entries = [
        Camera(id="cam-0", name_ko="영", name_en="Zero", lat=37.39, lon=126.64),
        Camera(id="air-1", kind=AssetKind.AIR_QUALITY, name_ko="대기", name_en="Air", lat=37.39, lon=126.64),
        Camera(id="cam-2", name_ko="이", name_en="Two", lat=37.39, lon=126.64),
    ]
    base = _free_block(3)
    async with CctvSite(entries, rtsp_port=0, width=320, height=180, onvif_base_port=base) as site:
        assert set(site.cameras) == {"cam-0", "cam-2"} and set(site.devices) == {"cam-0", "cam-2"}
        assert site.devices["cam-2"].port == base + 2, "entry k's device is at base + k, sensors counted"
        assert site.devices["cam-2"].rtsp_url == f"rtsp://127.0.0.1:{site.rtsp.port}"
        assert await _rtsp_status(site.rtsp.port, "cam-2") == 200
        assert await _rtsp_status(site.rtsp.port, "air-1") == 404  # sensors have no video

        onvif = ONVIFCamera("127.0.0.1", base + 2, "admin", "admin", no_cache=True)
        try:
            await onvif.update_xaddrs()
            events = await onvif.create_events_service()
            result = await events.CreatePullPointSubscription({"InitialTerminationTime": "PT60S"})
            onvif.xaddrs[PULLPOINT_NS] = result.SubscriptionReference.Address._value_1
            pullpoint = await onvif.create_pullpoint_service()
            site.camera("cam-2").raise_event("motion", True)
            reply = await pullpoint.PullMessages({"Timeout": dt.timedelta(seconds=5), "MessageLimit": 10})
            [message] = reply.NotificationMessage
            assert message.Topic._value_1 == "tns1:RuleEngine/CellMotionDetector/Motion"
        finally:
            await onvif.close()

        jpeg = await site.camera("cam-2").snapshot_jpeg()
        assert jpeg is not None and jpeg[:2] == b"\xff\xd8" and len(jpeg) > 1000
        snap = await _http_get(base + 2, "/onvif/snapshot.jpg")
        assert snap.startswith(b"HTTP/1.1 200") and b"\r\n\r\n\xff\xd8" in snap, "the camera's picture"

        site.camera("cam-2").reboot(1.5)
        await asyncio.sleep(0.3)
        assert _refused(base + 2), "the ONVIF device is down while its camera reboots"
        assert await _rtsp_status(site.rtsp.port, "cam-2") == 503
        assert await site.camera("cam-2").snapshot_jpeg() is None
        assert await _rtsp_status(site.rtsp.port, "cam-0") == 200, "the other cameras keep playing"
        await asyncio.sleep(2.0)
        assert site.camera("cam-2").online and not _refused(base + 2)
        assert await _rtsp_status(site.rtsp.port, "cam-2") == 200
        with pytest.raises(KeyError, match="no simulated camera 'air-1'"):
            site.camera("air-1")


def test_sitl_camera_options() -> None:
    parser = build_parser()
    args = parser.parse_args(["sitl", "--cameras", "c.yaml", "--rtsp-port", "9554", "--camera-size", "1920x1080"])
    assert (args.rtsp_port, args.camera_size, args.camera_fps, args.onvif_port_base) == (9554, (1920, 1080), 25, 18080)
    assert parser.parse_args(["sitl"]).cameras is None
    for bad in ("640", "641x360", "axb", "640x8", "128x72"):
        with pytest.raises(SystemExit):
            parser.parse_args(["sitl", "--camera-size", bad])
