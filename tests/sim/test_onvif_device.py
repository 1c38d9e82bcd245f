"""The simulated ONVIF device, driven by onvif-zeep-async's own client (what Home Assistant and others use)."""

from __future__ import annotations

import asyncio
import datetime as dt
import socket
from types import SimpleNamespace
from typing import Any

import aiohttp
import pytest
import zeep.exceptions

from dronedispatch.ingest.onvif_lib import ONVIFCamera
from dronedispatch.sim.onvif_device import OnvifDevice, start_onvif_devices, stop_onvif_devices

PULLPOINT_NS = "http://www.onvif.org/ver10/events/wsdl/PullPointSubscription"


def free_tcp_ports(n: int) -> int:
    """The first of ``n`` consecutive free TCP ports on 127.0.0.1."""
    for _ in range(50):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            base = s.getsockname()[1]
        if base + n > 65535:
            continue
        try:
            socks = []
            for p in range(base, base + n):
                sock = socket.socket()
                socks.append(sock)
                sock.bind(("127.0.0.1", p))
        except OSError:
            continue
        finally:
            for sock in socks:
                sock.close()
        return base
    raise RuntimeError("no free port range")


async def subscribe(cam: ONVIFCamera, termination: str = "PT3S") -> tuple[Any, Any, Any]:
    events = await cam.create_events_service()
    result = await events.CreatePullPointSubscription({"InitialTerminationTime": termination})
    cam.xaddrs[PULLPOINT_NS] = result.SubscriptionReference.Address._value_1
    return result, await cam.create_subscription_service("PullPointSubscription"), await cam.create_pullpoint_service()


async def pull(pullpoint: Any, timeout_s: int = 1, limit: int = 10) -> list[Any]:
    reply = await pullpoint.PullMessages({"Timeout": dt.timedelta(seconds=timeout_s), "MessageLimit": limit})
    return list(reply.NotificationMessage or [])


JPEG = b"\xff\xd8\xff\xe0 picture \xff\xd9"


async def fake_jpeg() -> bytes:
    return JPEG


def items(container: Any) -> dict[str, str]:
    return {i.Name: i.Value for i in container.SimpleItem}


async def test_numbering_devices_and_the_pullpoint_client() -> None:
    entries = [
        SimpleNamespace(id="cam-a", name_en="A", is_camera=True),
        SimpleNamespace(id="sensor-b", name_en="B", is_camera=False),
        SimpleNamespace(id="cam-c", name_en="C", is_camera=True, onvif=SimpleNamespace(username="op", password="pw")),
    ]
    base = free_tcp_ports(3)
    devices = await start_onvif_devices(entries, base_port=base, username="admin", password="secret")
    try:
        # entry k at base+k: the sensor keeps its number but serves nothing
        assert {cid: d.port for cid, d in devices.items()} == {"cam-a": base, "cam-c": base + 2}
        with pytest.raises(OSError), socket.create_connection(("127.0.0.1", base + 1), timeout=1):
            pass

        cam = ONVIFCamera("127.0.0.1", base, "admin", "secret", no_cache=True)
        try:
            await cam.update_xaddrs()
            assert (
                cam.xaddrs["http://www.onvif.org/ver10/events/wsdl"] == f"http://127.0.0.1:{base}/onvif/events_service"
            )
            mgmt = await cam.create_devicemgmt_service()
            info = await mgmt.GetDeviceInformation()
            assert (info.Manufacturer, info.SerialNumber) == ("dronedispatch", "cam-a")
            assert (await mgmt.authless_GetSystemDateAndTime()).UTCDateTime.Date.Year >= 2024
            assert any("Profile/T" in s.ScopeItem for s in await mgmt.GetScopes())
            caps = await cam.get_capabilities()
            assert caps is not None and caps["Events"]["WSPullPointSupport"] is True

            media = await cam.create_media_service()
            profiles = await media.GetProfiles()
            assert profiles[0].VideoEncoderConfiguration.Encoding == "H264"
            req = media.create_type("GetStreamUri")
            req.ProfileToken = profiles[0].token
            req.StreamSetup = {"Stream": "RTP-Unicast", "Transport": {"Protocol": "RTSP"}}
            assert (await media.GetStreamUri(req)).Uri == "rtsp://127.0.0.1:8554/cam-a"
            assert (await cam.get_snapshot_uri(profiles[0].token)).startswith(f"http://127.0.0.1:{base}/")
            assert await cam.get_snapshot(profiles[0].token) is None  # no picture source: 503
            devices["cam-a"].snapshot = fake_jpeg
            assert await cam.get_snapshot(profiles[0].token) == JPEG

            events = await cam.create_events_service()
            assert (await events.GetServiceCapabilities()).WSPullPointSupport is True
            assert (await events.GetEventProperties()).TopicSet is not None

            device = devices["cam-a"]
            device.raise_event("motion", True)  # before the subscription: announced as Initialized
            result, sub, pp = await subscribe(cam)
            assert 2.5 <= (result.TerminationTime - result.CurrentTime).total_seconds() <= 3.5
            [initial] = await pull(pp)
            assert initial.Topic._value_1 == "tns1:RuleEngine/CellMotionDetector/Motion"
            assert initial.Message._value_1.PropertyOperation == "Initialized"
            assert items(initial.Message._value_1.Data) == {"IsMotion": "true"}
            assert items(initial.Message._value_1.Source)["Rule"] == "MyMotionDetectorRule"

            # the long poll answers as soon as an event is raised, not at its timeout
            loop = asyncio.get_running_loop()
            loop.call_later(0.2, device.raise_event, "intrusion", True)
            started = loop.time()
            [inside] = await pull(pp, timeout_s=20)
            assert loop.time() - started < 10
            assert inside.Message._value_1.PropertyOperation == "Changed"
            assert items(inside.Message._value_1.Data) == {"IsInside": "true"}

            device.raise_event("motion", True)  # no change: nothing sent
            device.raise_event("motion", False)
            for _ in range(3):
                device.raise_event("line_crossing")
            device.raise_event("tamper", True)
            assert len(await pull(pp, limit=2)) == 2  # MessageLimit honoured, the rest waits
            rest = await pull(pp)
            assert [m.Topic._value_1.rsplit("/", 1)[-1] for m in rest] == ["Crossed", "Crossed", "ImagingService"]
            assert len({items(m.Message._value_1.Data)["ObjectId"] for m in rest[:2]}) == 2

            # SetSynchronizationPoint re-announces every property's current value
            await pp.SetSynchronizationPoint()
            resync = await pull(pp)
            assert {m.Topic._value_1.rsplit("/", 1)[-1]: items(m.Message._value_1.Data) for m in resync} == {
                "Motion": {"IsMotion": "false"},
                "ObjectsInside": {"IsInside": "true"},
                "ImagingService": {"State": "true"},
            }
            assert all(m.Message._value_1.PropertyOperation == "Initialized" for m in resync)

            # renewed, it outlives its first termination time; not renewed, it expires and is gone
            renewed = await sub.Renew("PT3S")
            assert renewed.TerminationTime > result.TerminationTime
            await asyncio.sleep(3.3)
            with pytest.raises(zeep.exceptions.Fault):
                await pull(pp)
            with pytest.raises(zeep.exceptions.Fault):
                await sub.Renew("PT3S")

            _, sub, pp = await subscribe(cam, "PT30S")
            await sub.Unsubscribe()
            with pytest.raises(zeep.exceptions.Fault):
                await pull(pp)
            assert device.created == 2 and device.subscriptions == {}

            # a pending long poll answers with a fault when the device forgets its subscription
            _, sub, pp = await subscribe(cam, "PT30S")
            assert len(await pull(pp)) == 3  # the three properties, Initialized
            loop.call_later(0.2, device.forget_subscriptions)
            with pytest.raises(zeep.exceptions.Fault):
                await pull(pp, timeout_s=20)

            # the library's own PullPointManager (Home Assistant's path) works as it is
            lost: list[bool] = []
            manager = await cam.create_pullpoint_manager(dt.timedelta(seconds=60), lambda: lost.append(True))
            assert len(await pull(manager.get_service())) == 3
            device.raise_event("tamper", False)
            [untampered] = await pull(manager.get_service())
            assert items(untampered.Message._value_1.Data) == {"State": "false"}
            await manager.shutdown()
            assert device.subscriptions == {} and not lost
        finally:
            await cam.close()

        # each device checks its own account's digest
        for user, password, port in (("admin", "wrong", base), ("admin", "secret", base + 2)):
            bad = ONVIFCamera("127.0.0.1", port, user, password, no_cache=True)
            try:
                with pytest.raises(zeep.exceptions.Fault, match="not Authorized"):
                    await bad.update_xaddrs()
            finally:
                await bad.close()
        good = ONVIFCamera("127.0.0.1", base + 2, "op", "pw", no_cache=True)
        try:
            await good.update_xaddrs()
        finally:
            await good.close()
    finally:
        await stop_onvif_devices(devices)


async def test_a_rebooting_device_refuses_connections_then_forgets_its_subscriptions() -> None:
    device = OnvifDevice("cam-r", "R", free_tcp_ports(1), username="admin", password="pw")
    await device.start()
    cam = ONVIFCamera("127.0.0.1", device.port, "admin", "pw", no_cache=True)
    try:
        await cam.update_xaddrs()
        device.raise_event("motion", True)
        _, _, pp = await subscribe(cam, "PT30S")
        assert len(await pull(pp)) == 1
        pending = asyncio.ensure_future(pull(pp, timeout_s=20))
        await asyncio.sleep(0.2)
        device.reboot(1.5)
        with pytest.raises((zeep.exceptions.Fault, aiohttp.ClientError)):
            await pending  # the long poll does not hang through the reboot
        await asyncio.sleep(0.2)
        assert device.rebooting
        with pytest.raises(aiohttp.ClientConnectionError):
            await pull(pp)
        for _ in range(40):
            if not device.rebooting:
                break
            await asyncio.sleep(0.1)
        assert not device.rebooting
        with pytest.raises(zeep.exceptions.Fault):
            await pull(pp)  # back, but the subscription is gone
        _, _, pp = await subscribe(cam, "PT30S")
        assert await pull(pp) == []  # and the alarm it had before the reboot is over
        # pull points are finite, as on real cameras: a client that leaks subscriptions runs out
        events = await cam.create_events_service()
        for _ in range(9):
            await events.CreatePullPointSubscription({"InitialTerminationTime": "PT30S"})
        with pytest.raises(zeep.exceptions.Fault, match="pull points in use"):
            await events.CreatePullPointSubscription({"InitialTerminationTime": "PT30S"})
    finally:
        await cam.close()
        await device.stop()
