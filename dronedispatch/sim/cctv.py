"""Simulated fixed CCTV cameras: a synthetic picture per camera, encoded once, for every RTSP client.

Each camera of a cameras file (entries of kind cctv or ptz; sensors have no video) becomes a
:class:`SimCctv`. Its picture is a cheap OpenCV drawing: a moving bar over a static gradient (so
the encoder has motion to code), the camera's id and English name, and a wall clock to the
millisecond. The top-left corner carries the same pixel timestamp as the drone simulator's camera
(``dronedispatch.video.formats``), so a viewer reads glass-to-glass latency off the frame.

One libx264 encoder per camera (ultrafast, zerolatency, constrained baseline, an IDR every second
with SPS/PPS repeated) runs only while at least one subscriber (an RTSP session in PLAY) is there;
every subscriber gets the same access units, already split into RTP payloads. A subscriber that
joins mid-stream asks for an IDR (``request_keyframe``) instead of waiting up to a second.

A camera can *reboot*: for ``seconds`` it is offline, its subscribers are told (the RTSP server
closes their sessions), new sessions are refused and the ONVIF device goes quiet; then it comes
back. A camera can *raise an event* (an analytics topic going active or inactive); the ONVIF
device delivers it. Both are plain callbacks so the RTSP server, the ONVIF device and scenario
actions share one camera state.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import av
import cv2
import numpy as np
from numpy.typing import NDArray

from dronedispatch.domain.assets import Camera
from dronedispatch.sim.camera import open_live_encoder
from dronedispatch.video import formats
from dronedispatch.video.h264 import NAL_PPS, NAL_SPS, VIDEO_CLOCK, Packetizer, is_keyframe, nal_type, split_annexb

log = logging.getLogger(__name__)

DEFAULT_SIZE = (640, 360)
DEFAULT_FPS = 25


@dataclass(frozen=True, slots=True)
class EncodedUnit:
    """One picture ready for RTP: payloads in order (the last one takes the marker bit)."""

    payloads: list[bytes]
    timestamp: int
    """RTP timestamp (90 kHz, this camera's random origin)."""
    keyframe: bool


@dataclass(frozen=True, slots=True)
class CameraEvent:
    camera_id: str
    topic: str
    """ONVIF-style topic, e.g. ``tns1:VideoSource/MotionAlarm`` or a short name such as ``motion``."""
    active: bool
    time: float
    """Wall-clock time (epoch seconds) the event was raised."""


UnitSink = Callable[[EncodedUnit], None]
RebootListener = Callable[["SimCctv", bool], None]
"""Called with (camera, online): False when a reboot starts, True when the camera is back."""
EventListener = Callable[[CameraEvent], None]


class CctvRenderer:
    """Draws one camera's picture straight into a reused I420 buffer (worker thread).

    Drawing on the luma plane over fixed chroma skips a BGR→YUV conversion per picture, which at
    1080p costs as much as the drawing itself.
    """

    def __init__(self, width: int, height: int, title: str) -> None:
        self.width, self.height, self.title = width, height, title
        self.geometry = formats.stamp_geometry(width, height)
        self._background = np.empty((height * 3 // 2, width), np.uint8)
        ramp = (
            np.linspace(60, 150, width, dtype=np.uint16)[None, :] + np.linspace(0, 40, height, dtype=np.uint16)[:, None]
        )
        self._background[:height] = ramp.astype(np.uint8)
        self._background[height : height + height // 4] = 140  # U: a cool blue-grey tint, constant
        self._background[height + height // 4 :] = 118  # V
        self.image: NDArray[np.uint8] = self._background.copy()
        self._scale = max(0.4, width / 1280 * 1.1)
        self._thick = max(1, width // 640)

    def render(self, now: float, frame_no: int) -> NDArray[np.uint8]:
        """The I420 picture (``height * 3 / 2`` rows) at wall-clock time ``now``."""
        img = self.image
        np.copyto(img, self._background)
        luma = img[: self.height]
        # A bar sweeping across the picture, two seconds per pass: motion the encoder must code.
        bar_w = max(8, self.width // 16)
        x = int((now % 2.0) / 2.0 * (self.width + bar_w)) - bar_w
        cv2.rectangle(luma, (x, self.height // 2), (x + bar_w, self.height - 1), 220, -1)
        clock = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(now)) + f".{int(now * 1000) % 1000:03d}"
        line = int(30 * self._scale)
        y = self.geometry.y0 + self.geometry.height + self.geometry.block + line
        for text in (self.title, clock, f"frame {frame_no}"):
            cv2.putText(luma, text, (self.geometry.x0, y), cv2.FONT_HERSHEY_SIMPLEX, self._scale, 255, self._thick,
                        cv2.LINE_8)  # fmt: skip
            y += line + self.geometry.block // 2
        formats.draw_stamp(luma, formats.Stamp(time_us=int(now * 1_000_000), counter=frame_no & 0xFFFF))
        return img


class SimCctv:
    """One simulated fixed camera: its picture and encoder, its reboot state and its events."""

    def __init__(
        self,
        camera_id: str,
        name: str = "",
        *,
        width: int = DEFAULT_SIZE[0],
        height: int = DEFAULT_SIZE[1],
        fps: int = DEFAULT_FPS,
        bitrate: int | None = None,
    ) -> None:
        if width % 2 or height % 2:
            raise ValueError("width and height must be even for 4:2:0 video")
        if not 1 <= fps <= 60:
            raise ValueError("fps must be between 1 and 60")
        self.id, self.name = camera_id, name or camera_id
        self.width, self.height, self.fps = width, height, fps
        self.bitrate = bitrate or int(width * height * fps * 0.07)
        self.frames_encoded = 0
        self.encoder_starts = 0
        """How many times the encoder started (one per period with subscribers)."""
        self.active_events: dict[str, bool] = {}
        self.reboots = 0
        self._renderer = CctvRenderer(width, height, f"{camera_id}  {self.name}"[:80])
        self._packetizer = Packetizer()
        self._sinks: list[UnitSink] = []
        self._reboot_listeners: list[RebootListener] = []
        self._event_listeners: list[EventListener] = []
        self._down_until = 0.0
        self._back: asyncio.TimerHandle | None = None
        self._task: asyncio.Task[None] | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._encoder: av.video.codeccontext.VideoCodecContext | None = None
        self._force_idr = False
        self._ts0 = int.from_bytes(os.urandom(4), "big")
        self._t0 = time.monotonic()
        self._sprop: tuple[bytes, bytes] | None = None

    # --- state ------------------------------------------------------------------------------------

    @property
    def online(self) -> bool:
        return time.monotonic() >= self._down_until

    @property
    def back_in(self) -> float:
        """Seconds until a rebooting camera is back (0 when online)."""
        return max(0.0, self._down_until - time.monotonic())

    @property
    def encoding(self) -> bool:
        return self._task is not None and not self._task.done()

    @property
    def subscribers(self) -> int:
        return len(self._sinks)

    def on_reboot(self, listener: RebootListener) -> Callable[[], None]:
        """Call ``listener(camera, online)`` when a reboot starts and ends; returns an unsubscribe."""
        self._reboot_listeners.append(listener)
        return lambda: _discard(self._reboot_listeners, listener)

    def on_event(self, listener: EventListener) -> Callable[[], None]:
        """Call ``listener(event)`` for every raised event; returns an unsubscribe."""
        self._event_listeners.append(listener)
        return lambda: _discard(self._event_listeners, listener)

    def reboot(self, seconds: float) -> None:
        """Go offline for ``seconds``: subscribers are dropped, new sessions refused, events held."""
        if seconds < 0:
            raise ValueError("a reboot lasts zero seconds or more")
        loop = asyncio.get_running_loop()
        log.info("camera %s: rebooting for %.1f s", self.id, seconds)
        self.reboots += 1
        self._down_until = time.monotonic() + seconds
        if self._back is not None:
            self._back.cancel()
        self._back = loop.call_later(seconds, self._come_back)
        self._notify_reboot(False)
        # Whoever was watching is gone with the reboot, whether or not its listener dropped it.
        for sink in list(self._sinks):
            self.unsubscribe(sink)
        self.active_events.clear()  # a rebooted camera forgets its analytics state

    def _come_back(self) -> None:
        self._back = None
        self._down_until = 0.0
        log.info("camera %s: back after reboot", self.id)
        self._notify_reboot(True)

    def _notify_reboot(self, online: bool) -> None:
        for listener in list(self._reboot_listeners):
            try:
                listener(self, online)
            except Exception:
                log.exception("camera %s: reboot listener failed", self.id)

    def raise_event(self, topic: str, active: bool) -> CameraEvent:
        """An analytics/motion event starting (active) or ending; listeners hear it unless offline."""
        event = CameraEvent(self.id, topic, active, time.time())
        if not self.online:
            log.info("camera %s: event %s dropped while rebooting", self.id, topic)
            return event
        self.active_events[topic] = active
        for listener in list(self._event_listeners):
            try:
                listener(event)
            except Exception:
                log.exception("camera %s: event listener failed", self.id)
        return event

    # --- video ------------------------------------------------------------------------------------

    def subscribe(self, sink: UnitSink) -> None:
        """Deliver every encoded picture to ``sink`` (on the event loop); starts the encoder if idle."""
        if not self.online:
            raise CameraOffline(self.id)
        self._sinks.append(sink)
        self.request_keyframe()
        if not self.encoding:
            self._start()

    def unsubscribe(self, sink: UnitSink) -> None:
        _discard(self._sinks, sink)
        if not self._sinks and self._task is not None:
            task, self._task = self._task, None
            task.cancel()

    def request_keyframe(self) -> None:
        self._force_idr = True

    @property
    def rtp_timestamp(self) -> int:
        """The RTP timestamp a picture captured now would carry."""
        return (self._ts0 + int((time.monotonic() - self._t0) * VIDEO_CLOCK)) & 0xFFFFFFFF

    def parameter_sets(self) -> tuple[bytes, bytes]:
        """SPS and PPS of this camera's encoder (for the SDP); computed once from a throwaway encoder.

        The encoder's settings fully determine them, so the running encoder emits the same bytes.
        """
        if self._sprop is None:
            enc = self._open_encoder()
            sps = pps = b""
            black = av.VideoFrame.from_ndarray(np.zeros((self.height * 3 // 2, self.width), np.uint8), "yuv420p")
            black.pts = 0
            packets = list(enc.encode(black)) + list(enc.encode(None))
            for packet in packets:
                for nal in split_annexb(bytes(packet)):
                    if nal_type(nal) == NAL_SPS:
                        sps = sps or nal
                    elif nal_type(nal) == NAL_PPS:
                        pps = pps or nal
            if not sps or not pps:
                raise RuntimeError("the encoder produced no SPS/PPS")
            self._sprop = (sps, pps)
        return self._sprop

    async def snapshot_jpeg(self) -> bytes | None:
        """The current picture as a JPEG (the camera's snapshot URL); None while it reboots."""
        if not self.online:
            return None
        self._executor = self._executor or ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"cctv-{self.id}")
        # On the encoder's thread: the renderer's buffer is shared with it.
        return await asyncio.get_running_loop().run_in_executor(self._executor, self._jpeg)

    def _jpeg(self) -> bytes:
        bgr = cv2.cvtColor(self._renderer.render(time.time(), self.frames_encoded), cv2.COLOR_YUV2BGR_I420)
        ok, data = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, 85])
        if not ok:
            raise RuntimeError("JPEG encoding failed")
        return bytes(data)

    def _start(self) -> None:
        self._executor = self._executor or ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"cctv-{self.id}")
        self._encoder = None  # a fresh encoder per period: it starts with an IDR
        self.encoder_starts += 1
        self._task = asyncio.get_running_loop().create_task(self._run(), name=f"cctv-{self.id}")

    async def close(self) -> None:
        """Stop encoding, cancel a pending come-back and free the worker thread."""
        task, self._task = self._task, None
        self._sinks.clear()
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self._back is not None:
            self._back.cancel()
            self._back = None
        if self._executor is not None:
            await asyncio.get_running_loop().run_in_executor(None, self._executor.shutdown)
            self._executor = None

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        period = 1.0 / self.fps
        next_at = loop.time()
        me = asyncio.current_task()
        while True:
            assert self._executor is not None
            try:
                units = await loop.run_in_executor(self._executor, self._frame)
            except Exception:
                log.exception("camera %s: encoder failed; subscribers dropped", self.id)
                for sink in list(self._sinks):
                    self.unsubscribe(sink)
                raise
            if self._task is not me:
                return  # stopped while the frame was being encoded
            for unit in units:
                for sink in list(self._sinks):
                    try:
                        sink(unit)
                    except Exception:
                        log.exception("camera %s: a subscriber failed; dropped", self.id)
                        self.unsubscribe(sink)
            next_at += period
            now = loop.time()
            if next_at < now - period:
                next_at = now  # fell behind: drop frames rather than burst
            await asyncio.sleep(max(0.0, next_at - now))

    def _open_encoder(self) -> av.video.codeccontext.VideoCodecContext:
        return open_live_encoder(self.width, self.height, self.fps, self.bitrate, forced_idr=True)

    def _frame(self) -> list[EncodedUnit]:
        """Render, stamp and encode one picture (worker thread)."""
        now = time.time()
        frame = av.VideoFrame.from_ndarray(self._renderer.render(now, self.frames_encoded), format="yuv420p")
        rtp_ts = int((time.monotonic() - self._t0) * VIDEO_CLOCK)
        frame.pts = rtp_ts
        if self._force_idr:
            self._force_idr = False
            frame.pict_type = av.video.frame.PictureType.I
        if self._encoder is None:
            self._encoder = self._open_encoder()
        units = []
        for packet in self._encoder.encode(frame):
            data = bytes(packet)
            ts = (self._ts0 + (packet.pts if packet.pts is not None else rtp_ts)) & 0xFFFFFFFF
            units.append(EncodedUnit(self._packetizer.payloads(data), ts, is_keyframe(data)))
        self.frames_encoded += 1
        return units


class CameraOffline(RuntimeError):
    """The camera is rebooting."""

    def __init__(self, camera_id: str) -> None:
        super().__init__(f"camera {camera_id} is rebooting")
        self.camera_id = camera_id


def _discard(items: list, item: object) -> None:  # type: ignore[type-arg]
    with contextlib.suppress(ValueError):
        items.remove(item)


def cameras_from_assets(
    assets: Iterable[Camera], *, width: int = DEFAULT_SIZE[0], height: int = DEFAULT_SIZE[1], fps: int = DEFAULT_FPS
) -> dict[str, SimCctv]:
    """One simulated camera per camera entry (cctv, ptz) of a cameras file, in file order; sensors skipped."""
    return {a.id: SimCctv(a.id, a.name_en, width=width, height=height, fps=fps) for a in assets if a.is_camera}
