"""The MAVLink camera protocol of a simulated vehicle (component 100, MAV_COMP_ID_CAMERA).

Answers REQUEST_MESSAGE for CAMERA_INFORMATION (259), CAMERA_SETTINGS (260), CAMERA_CAPTURE_STATUS
(262) and VIDEO_STREAM_INFORMATION (269, with a ``udp://`` URI), and MAV_CMD_VIDEO_START/STOP_STREAMING,
which start and stop the RTP sender in :mod:`dronedispatch.sim.camera` when the fleet runs with
video. Without video the protocol still works; only no RTP is sent.
"""

from __future__ import annotations

import asyncio
import logging
import math
from typing import Any

from pymavlink.dialects.v20 import common as mavlink

from dronedispatch.sim.camera import CameraPose, SimCamera
from dronedispatch.sim.commands import ACCEPTED, DENIED, UNSUPPORTED, Command, as_int
from dronedispatch.sim.geodesy import offset_ne
from dronedispatch.sim.model import VehicleModel

log = logging.getLogger(__name__)

COMPID = 100
REQUEST_MESSAGE = 512
REQUEST_CAMERA_INFORMATION = 521
REQUEST_CAMERA_SETTINGS = 522
REQUEST_VIDEO_STREAM_INFORMATION = 2504
VIDEO_START_STREAMING, VIDEO_STOP_STREAMING = 2502, 2503
CAMERA_COMMANDS = frozenset({REQUEST_CAMERA_INFORMATION, REQUEST_CAMERA_SETTINGS, REQUEST_VIDEO_STREAM_INFORMATION,
                             VIDEO_START_STREAMING, VIDEO_STOP_STREAMING, 2000, 2001, 2500, 2501, 530})
CAMERA_MESSAGES = frozenset({259, 260, 262, 269, 270})
CAP_HAS_VIDEO_STREAM = 256
WIDTH, HEIGHT, FPS = 1280, 720, 30


def _fixed(text: str, n: int) -> list[int]:
    data = list(text.encode()[:n])
    return data + [0] * (n - len(data))


class CameraComponent:
    """Camera component state of one vehicle; owns the optional :class:`SimCamera` RTP sender.

    It looks at the vehicle's model (pose, clock), not at the vehicle, which owns it.
    """

    compid = COMPID

    def __init__(self, model: VehicleModel, *, sysid: int, instance: int, uri: str) -> None:
        self.model = model
        self.sysid = sysid
        self.instance = instance
        self.uri = uri
        self.video_enabled = False  # set by the runner when the fleet runs with video
        self.video_target: tuple[str, int] | None = None
        self.heartbeat_due = 0.0
        self.streaming = False
        self._camera: SimCamera | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    def handles(self, c: Command) -> bool:
        return c.command in CAMERA_COMMANDS or (c.command == REQUEST_MESSAGE and as_int(c.params[0]) in CAMERA_MESSAGES)

    def provides(self, msg_id: int) -> bool:
        return msg_id in CAMERA_MESSAGES

    # -- protocol --------------------------------------------------------------------------------------
    def command(self, c: Command) -> tuple[int, list[Any]]:
        cmd = c.command
        if cmd == REQUEST_MESSAGE:
            msgs = self.message(as_int(c.params[0]))
            return (ACCEPTED, msgs) if msgs else (UNSUPPORTED, [])
        if cmd == REQUEST_CAMERA_INFORMATION:
            return ACCEPTED, self.message(259)
        if cmd == REQUEST_CAMERA_SETTINGS:
            return ACCEPTED, self.message(260)
        if cmd == REQUEST_VIDEO_STREAM_INFORMATION:
            return ACCEPTED, self.message(269)
        if cmd == VIDEO_START_STREAMING:
            if as_int(c.params[0]) not in (0, 1):
                return DENIED, []
            self._set_streaming(True)
            return ACCEPTED, []
        if cmd == VIDEO_STOP_STREAMING:
            if as_int(c.params[0]) not in (0, 1):
                return DENIED, []
            self._set_streaming(False)
            return ACCEPTED, []
        return UNSUPPORTED, []

    def message(self, msg_id: int) -> list[mavlink.MAVLink_message]:
        t_ms = int(self.model.t * 1000) & 0xFFFFFFFF
        if msg_id == 259:
            return [mavlink.MAVLink_camera_information_message(
                time_boot_ms=t_ms, vendor_name=_fixed("dronedispatch", 32), model_name=_fixed("SimCamera", 32),
                firmware_version=1, focal_length=4.5, sensor_size_h=6.17, sensor_size_v=4.55,
                resolution_h=WIDTH, resolution_v=HEIGHT, lens_id=0, flags=CAP_HAS_VIDEO_STREAM,
                cam_definition_version=0, cam_definition_uri=b"", gimbal_device_id=0, camera_device_id=0,
            )]
        if msg_id == 260:
            return [mavlink.MAVLink_camera_settings_message(time_boot_ms=t_ms, mode_id=1, zoomLevel=float("nan"),
                                                            focusLevel=float("nan"), camera_device_id=0)]
        if msg_id == 262:
            return [mavlink.MAVLink_camera_capture_status_message(
                time_boot_ms=t_ms, image_status=0, video_status=0, image_interval=0.0, recording_time_ms=0,
                available_capacity=float("nan"), image_count=0, camera_device_id=0)]
        if msg_id in (269, 270):
            flags = 1 if self.streaming else 0  # VIDEO_STREAM_STATUS_FLAGS_RUNNING
            if msg_id == 270:
                return [mavlink.MAVLink_video_stream_status_message(
                    stream_id=1, flags=flags, framerate=FPS, resolution_h=WIDTH, resolution_v=HEIGHT,
                    bitrate=4_000_000, rotation=0, hfov=90, camera_device_id=0)]
            return [mavlink.MAVLink_video_stream_information_message(
                stream_id=1, count=1, type=1, flags=flags, framerate=FPS, resolution_h=WIDTH, resolution_v=HEIGHT,
                bitrate=4_000_000, rotation=0, hfov=90, name=b"main", uri=self.uri.encode(), encoding=1,
                camera_device_id=0,
            )]  # type 1 = VIDEO_STREAM_TYPE_RTPUDP, encoding 1 = H.264
        return []

    # -- RTP sender ------------------------------------------------------------------------------------
    def _set_streaming(self, on: bool) -> None:
        if on == self.streaming:
            return
        self.streaming = on
        if not self.video_enabled or self.video_target is None:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        if on:
            self._spawn(loop, self._ensure_camera().start())
        elif self._camera is not None:
            self._spawn(loop, self._camera.stop())

    def _spawn(self, loop: asyncio.AbstractEventLoop, coro: Any) -> None:
        task = loop.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.warning("vehicle %d camera: %s", self.sysid, task.exception())

    def _ensure_camera(self) -> SimCamera:
        if self._camera is None:
            assert self.video_target is not None
            self._camera = SimCamera(self.instance, self.pose, target_host=self.video_target[0],
                                     port=self.video_target[1], width=WIDTH, height=HEIGHT, fps=FPS)
        return self._camera

    def pose(self) -> CameraPose:
        m = self.model
        target = m.target
        pitch = -45.0
        if target is not None:
            dn, de = offset_ne(m.lat, m.lon, target[0], target[1])
            pitch = -math.degrees(math.atan2(max(m.alt_rel, 0.1), max(math.hypot(dn, de), 0.1)))
        return CameraPose(lat=m.lat, lon=m.lon, alt_rel=m.alt_rel, heading_deg=math.degrees(m.heading) % 360,
                          pitch_deg=pitch, time_s=m.t, target=target)

    def tick(self) -> None:
        """Nothing periodic yet: the camera pulls its pose when it renders."""

    async def stop(self) -> None:
        if self._camera is not None and self.streaming:
            try:
                await self._camera.stop()
            except Exception as exc:  # stopping must not fail the fleet shutdown
                log.warning("vehicle %d camera stop: %s", self.sysid, exc)
        self.streaming = False
        for t in list(self._tasks):
            t.cancel()
