"""The simulated fixed cameras of a cameras file, served the way real ones are: RTSP video and ONVIF.

``CctvSite`` makes one :class:`~dronedispatch.sim.cctv.SimCctv` per camera entry (sensors have no
video), serves them all from one RTSP server (``rtsp://127.0.0.1:8554/<id>``) and entry k of the
file as an ONVIF device on ``http://127.0.0.1:{18080+k}/onvif/device_service``. The ONVIF device
follows its camera: a camera's reboot takes the device down for as long, and a raised event reaches
the device's PullPoint subscribers. Scenario actions and tests act on the cameras through
``camera(id).reboot(seconds)`` and ``camera(id).raise_event(topic, active)``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Coroutine, Sequence
from types import TracebackType
from typing import Any

from dronedispatch.domain.assets import Camera
from dronedispatch.sim.cctv import DEFAULT_FPS, DEFAULT_SIZE, CameraEvent, SimCctv, cameras_from_assets
from dronedispatch.sim.onvif_device import BASE_PORT, OnvifDevice, start_onvif_devices, stop_onvif_devices
from dronedispatch.sim.rtsp_server import RtspServer

log = logging.getLogger(__name__)


class CctvSite:
    """RTSP and ONVIF for every camera of ``assets`` (a cameras file's entries, in file order)."""

    def __init__(
        self,
        assets: Sequence[Camera],
        *,
        host: str = "127.0.0.1",
        rtsp_port: int = 8554,
        width: int = DEFAULT_SIZE[0],
        height: int = DEFAULT_SIZE[1],
        fps: int = DEFAULT_FPS,
        onvif: bool = True,
        onvif_base_port: int = BASE_PORT,
    ) -> None:
        self.assets = list(assets)
        self.cameras: dict[str, SimCctv] = cameras_from_assets(self.assets, width=width, height=height, fps=fps)
        self.rtsp = RtspServer(self.cameras, host=host, port=rtsp_port)
        self.host = host
        self.onvif = onvif
        self.onvif_base_port = onvif_base_port
        self.devices: dict[str, OnvifDevice] = {}
        self._links: list[Callable[[], None]] = []

    def camera(self, camera_id: str) -> SimCctv:
        cam = self.cameras.get(camera_id)
        if cam is None:
            raise KeyError(f"no simulated camera {camera_id!r} (cameras: {', '.join(self.cameras) or 'none'})")
        return cam

    async def start(self) -> None:
        await self.rtsp.start()
        try:
            if self.onvif:
                self.devices = await start_onvif_devices(
                    self.assets, host=self.host, base_port=self.onvif_base_port,
                    rtsp_url=f"rtsp://{self.host}:{self.rtsp.port}",
                )  # fmt: skip
                for cam_id, device in self.devices.items():
                    self._link(self.cameras[cam_id], device)
        except BaseException:
            await self.stop()
            raise

    def _link(self, cam: SimCctv, device: OnvifDevice) -> None:
        def on_reboot(camera: SimCctv, online: bool) -> None:
            if not online:
                device.reboot(camera.back_in)

        def on_event(event: CameraEvent) -> None:
            device.raise_event(event.topic, event.active)

        self._links += [cam.on_reboot(on_reboot), cam.on_event(on_event)]
        device.snapshot = cam.snapshot_jpeg  # GetSnapshotUri's address shows the camera's current picture

    async def stop(self) -> None:
        for unlink in self._links:
            unlink()
        self._links.clear()
        await stop_onvif_devices(self.devices)
        self.devices = {}
        await self.rtsp.stop()
        for cam in self.cameras.values():
            await cam.close()

    async def __aenter__(self) -> CctvSite:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    def describe(self) -> list[str]:
        """One line per camera: where its video and its ONVIF device are."""
        lines = []
        for k, asset in enumerate(self.assets):
            if asset.id not in self.cameras:
                continue
            device = self.devices.get(asset.id)
            onvif = device.url if device is not None else "no ONVIF"
            lines.append(f"camera {asset.id} (entry {k}): {self.rtsp.url(asset.id)}, {onvif}")
        return lines


async def serve_during(site: CctvSite, main: Coroutine[Any, Any, None]) -> None:
    """Serve the cameras while ``main`` runs (the simulated fleet), then stop them."""
    try:
        await site.start()
    except BaseException:
        main.close()
        raise
    try:
        for line in site.describe():
            log.info("%s", line)
        await main
    finally:
        await site.stop()
