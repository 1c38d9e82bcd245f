"""The simulated vehicle camera: a synthetic view rendered from the pose, sent as RTP/H.264.

Like PX4 SITL's camera, it pushes RTP/H.264 to 127.0.0.1:5600+i while streaming is on. Each
frame is a cheap OpenCV drawing of the ground seen through a pinhole camera at the vehicle's
position, heading and gimbal pitch: a 25 m grid, roads every 200 m and the incident marker, all
anchored to the world so motion shows. The top-left corner carries a pixel timestamp
(``dronedispatch.video.formats``) with the wall-clock time the frame was captured, so a viewer can
measure glass-to-glass latency.

Encoding is libx264 through PyAV — ultrafast, zerolatency, baseline profile, no B-frames, an IDR
every second with SPS/PPS repeated — so browsers can decode the stream as it is passed through.
Rendering, encoding and sending run in a worker thread; the event loop only samples the pose and
paces frames.
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
import socket
import struct
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from fractions import Fraction

import av
import cv2
import numpy as np
from numpy.typing import NDArray

from dronedispatch.video import formats
from dronedispatch.video.h264 import VIDEO_CLOCK, Packetizer

log = logging.getLogger(__name__)

_M_PER_DEG_LAT = 110_574.0
_M_PER_DEG_LON_EQ = 111_320.0
_GROUND = (70, 96, 80)  # BGR
_SKY = (205, 170, 120)
_GRID = (60, 80, 66)
_ROAD = (120, 120, 120)
_MARK = (30, 30, 230)
_HFOV_DEG = 70.0
_NEAR_M = 1.0
RTP_PAYLOAD_TYPE = 96


def open_live_encoder(
    width: int, height: int, fps: int, bitrate: int, *, forced_idr: bool = False
) -> av.video.codeccontext.VideoCodecContext:
    """libx264 as a live camera encodes: no B-frames, a keyframe every second with the parameter
    sets repeated, one thread, a bounded bit rate. ``forced_idr`` makes a requested keyframe an IDR
    (a client joining mid-stream can start on it)."""
    ctx = av.CodecContext.create("libx264", "w")
    assert isinstance(ctx, av.video.codeccontext.VideoCodecContext)
    ctx.width, ctx.height, ctx.pix_fmt = width, height, "yuv420p"
    ctx.time_base = Fraction(1, VIDEO_CLOCK)
    ctx.framerate = Fraction(fps, 1)
    ctx.bit_rate = bitrate
    ctx.gop_size = fps
    ctx.max_b_frames = 0
    kbps = bitrate // 1000
    ctx.options = {
        "preset": "ultrafast",
        "tune": "zerolatency",
        "profile": "baseline",
        "x264-params": (
            f"keyint={fps}:min-keyint={fps}:scenecut=0:bframes=0:repeat-headers=1"
            f"{':forced-idr=1' if forced_idr else ''}"
            f":threads=1:sliced-threads=0:vbv-maxrate={kbps * 2}:vbv-bufsize={kbps}"
        ),
    }
    ctx.open()
    return ctx


@dataclass
class CameraPose:
    lat: float
    lon: float
    alt_rel: float
    """Height above the home/ground level, metres."""
    heading_deg: float
    pitch_deg: float
    """Gimbal pitch: 0 looks at the horizon, -90 straight down."""
    time_s: float
    """Simulation time (shown on the picture; runs faster than wall time with a speed factor)."""
    target: tuple[float, float] | None = None
    """(lat, lon) of the incident to mark, if any."""


class GroundRenderer:
    """Draws the synthetic view into a reused BGR buffer. Coordinates are metres east/north of an origin."""

    def __init__(self, width: int, height: int, instance: int = 0) -> None:
        self.width, self.height, self.instance = width, height, instance
        self.focal = (width / 2) / math.tan(math.radians(_HFOV_DEG / 2))
        self.image: NDArray[np.uint8] = np.empty((height, width, 3), np.uint8)
        self.origin: tuple[float, float] | None = None
        self._font_scale = max(0.4, width / 1280 * 0.9)

    def local(self, lat: float, lon: float) -> tuple[float, float]:
        assert self.origin is not None
        lat0, lon0 = self.origin
        return (lon - lon0) * _M_PER_DEG_LON_EQ * math.cos(math.radians(lat0)), (lat - lat0) * _M_PER_DEG_LAT

    def render(self, pose: CameraPose, frame_no: int) -> NDArray[np.uint8]:
        if self.origin is None:
            self.origin = (pose.lat, pose.lon)
        img = self.image
        cx, cy = self.local(pose.lat, pose.lon)
        h = max(pose.alt_rel, 0.5)
        psi, theta = math.radians(pose.heading_deg), math.radians(max(-90.0, min(pose.pitch_deg, -5.0)))
        fwd = np.array([math.sin(psi) * math.cos(theta), math.cos(psi) * math.cos(theta), math.sin(theta)])
        right = np.array([math.cos(psi), -math.sin(psi), 0.0])
        up = np.cross(right, fwd)
        cam = np.array([cx, cy, h])
        basis = np.stack([right, up, fwd])  # rows: camera x, y, z in world axes

        horizon = int(self.height / 2 + self.focal * math.tan(theta))
        # Filling through OpenCV is a memset; numpy broadcasting a colour tuple costs ~7 ms at 720p.
        cv2.rectangle(img, (0, 0), (self.width, self.height), _GROUND, -1)
        if horizon > 0:
            cv2.rectangle(img, (0, 0), (self.width, min(horizon, self.height) - 1), _SKY, -1)

        # Ground within a radius that grows with height (the view reaches farther when higher).
        reach = min(2000.0, max(150.0, h * 8))
        self._grid(cam, basis, cx, cy, reach, 25.0, _GRID, 0.0)
        self._grid(cam, basis, cx, cy, reach, 200.0, _ROAD, 8.0)
        if pose.target is not None:
            tx, ty = self.local(*pose.target)
            ring = [(tx + 12 * math.cos(a), ty + 12 * math.sin(a)) for a in np.linspace(0, 2 * math.pi, 25)]
            segs = np.array([[(*ring[k], 0.0), (*ring[k + 1], 0.0)] for k in range(24)])
            segs = np.concatenate([segs, [[(tx - 8, ty, 0), (tx + 8, ty, 0)], [(tx, ty - 8, 0), (tx, ty + 8, 0)]]])
            self._lines(segs, cam, basis, _MARK, 3)
        hdg = pose.heading_deg % 360
        text = f"D{self.instance + 1}  alt {pose.alt_rel:5.1f} m  hdg {hdg:5.1f}  t {pose.time_s:8.1f} s"
        cv2.putText(
            img, text, (8, self.height - 10), cv2.FONT_HERSHEY_SIMPLEX, self._font_scale, (255, 255, 255), 1, cv2.LINE_8
        )
        return img

    def _grid(
        self,
        cam: NDArray[np.float64],
        basis: NDArray[np.float64],
        cx: float,
        cy: float,
        reach: float,
        step: float,
        colour: tuple[int, int, int],
        width_m: float,
    ) -> None:
        lo_x, hi_x = math.floor((cx - reach) / step) * step, math.ceil((cx + reach) / step) * step
        lo_y, hi_y = math.floor((cy - reach) / step) * step, math.ceil((cy + reach) / step) * step
        xs, ys = np.arange(lo_x, hi_x + step / 2, step), np.arange(lo_y, hi_y + step / 2, step)
        # Split lines into pieces so near pieces of a road can be drawn thicker than far ones.
        pieces = 8 if width_m else 1
        cuts_y = np.linspace(lo_y, hi_y, pieces + 1)
        cuts_x = np.linspace(lo_x, hi_x, pieces + 1)
        segs = [((x, cuts_y[k], 0.0), (x, cuts_y[k + 1], 0.0)) for x in xs for k in range(pieces)]
        segs += [((cuts_x[k], y, 0.0), (cuts_x[k + 1], y, 0.0)) for y in ys for k in range(pieces)]
        self._lines(np.array(segs), cam, basis, colour, 1, width_m)

    def _lines(
        self,
        segs: NDArray[np.float64],
        cam: NDArray[np.float64],
        basis: NDArray[np.float64],
        colour: tuple[int, int, int],
        thickness: int,
        width_m: float = 0.0,
    ) -> None:
        """Project world segments (N×2×3) and draw them, clipped at the near plane."""
        pc = (segs - cam) @ basis.T  # camera coordinates, z forward
        za, zb = pc[:, 0, 2], pc[:, 1, 2]
        keep = (za > _NEAR_M) | (zb > _NEAR_M)
        pc, za, zb = pc[keep], za[keep], zb[keep]
        if not len(pc):
            return
        # Move the endpoint behind the near plane onto it.
        t = np.clip((_NEAR_M - za) / np.where(zb - za == 0, 1e-9, zb - za), 0.0, 1.0)
        a = np.where((za < _NEAR_M)[:, None], pc[:, 0] + (pc[:, 1] - pc[:, 0]) * t[:, None], pc[:, 0])
        t2 = np.clip((_NEAR_M - zb) / np.where(za - zb == 0, 1e-9, za - zb), 0.0, 1.0)
        b = np.where((zb < _NEAR_M)[:, None], pc[:, 1] + (pc[:, 0] - pc[:, 1]) * t2[:, None], pc[:, 1])
        f, hw, hh = self.focal, self.width / 2, self.height / 2

        def project(p: NDArray[np.float64]) -> NDArray[np.int32]:
            uv = np.stack([hw + f * p[:, 0] / p[:, 2], hh - f * p[:, 1] / p[:, 2]], axis=1)
            return np.clip(uv, -32000, 32000).astype(np.int32)

        pa, pb = project(a), project(b)
        if not width_m:
            cv2.polylines(self.image, list(np.stack([pa, pb], axis=1)), False, colour, thickness, cv2.LINE_8)
            return
        depth = (a[:, 2] + b[:, 2]) / 2
        px = np.clip(f * width_m / depth, 1, 60).astype(int)
        for p, q, w in zip(pa, pb, px, strict=True):
            cv2.line(self.image, (int(p[0]), int(p[1])), (int(q[0]), int(q[1])), colour, int(w), cv2.LINE_8)


class SimCamera:
    """One vehicle's camera. While streaming, sends RTP/H.264 to target_host:port at ``fps``."""

    def __init__(
        self,
        instance: int,
        pose: Callable[[], CameraPose],
        *,
        target_host: str = "127.0.0.1",
        port: int,
        width: int = 1280,
        height: int = 720,
        fps: int = 30,
        bitrate: int | None = None,
    ) -> None:
        if width % 2 or height % 2:
            raise ValueError("width and height must be even for 4:2:0 video")
        self.instance, self._pose = instance, pose
        self.target = (target_host, port)
        self.width, self.height, self.fps = width, height, fps
        self.bitrate = bitrate or int(width * height * fps * 0.07)
        self.frames_sent = 0
        self._task: asyncio.Task[None] | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._sock: socket.socket | None = None
        self._renderer = GroundRenderer(width, height, instance)
        self._packetizer = Packetizer()
        self._encoder: av.video.codeccontext.VideoCodecContext | None = None

    @property
    def streaming(self) -> bool:
        return self._task is not None and not self._task.done()

    async def start(self) -> None:
        if self.streaming:
            return
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._sock.bind(("127.0.0.1", 0))
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"camera{self.instance}")
        self._encoder = None  # a new session starts with a fresh encoder, hence an IDR with SPS/PPS
        self._ssrc = int.from_bytes(os.urandom(4), "big")
        self._seq = int.from_bytes(os.urandom(2), "big") & 0x7FFF
        self._ts0 = int.from_bytes(os.urandom(4), "big")
        self._t0 = time.monotonic()
        self._task = asyncio.create_task(self._run(), name=f"camera{self.instance}")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            try:
                await task
            except (asyncio.CancelledError, Exception):
                pass  # a failure was logged when it happened
        if self._executor is not None:
            # The worker finishes the frame in hand; nothing else is queued.
            await asyncio.get_running_loop().run_in_executor(None, self._executor.shutdown)
            self._executor = None
        if self._sock is not None:
            self._sock.close()
            self._sock = None
        self._encoder = None

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        period = 1.0 / self.fps
        next_at = loop.time()
        while True:
            assert self._executor is not None
            try:
                pose = self._pose()
                await loop.run_in_executor(self._executor, self._frame, pose)
            except Exception:
                # A broken pose or encoder ends this streaming session visibly (streaming turns False).
                log.exception("camera %d: streaming stopped", self.instance)
                raise
            next_at += period
            now = loop.time()
            if next_at < now - period:
                next_at = now  # fell behind (a busy machine): drop frames rather than burst
            await asyncio.sleep(max(0.0, next_at - now))

    def _open_encoder(self) -> av.video.codeccontext.VideoCodecContext:
        return open_live_encoder(self.width, self.height, self.fps, self.bitrate)

    def _frame(self, pose: CameraPose) -> None:
        """Render, stamp, encode and send one frame (worker thread)."""
        img = self._renderer.render(pose, self.frames_sent)
        captured = time.monotonic()
        formats.draw_stamp(img, formats.Stamp(time_us=time.time_ns() // 1000, counter=self.frames_sent & 0xFFFF))
        yuv: NDArray[np.uint8] = cv2.cvtColor(img, cv2.COLOR_BGR2YUV_I420)  # type: ignore[assignment]
        frame = av.VideoFrame.from_ndarray(yuv, format="yuv420p")
        rtp_ts = int((captured - self._t0) * VIDEO_CLOCK)
        frame.pts = rtp_ts
        if self._encoder is None:
            self._encoder = self._open_encoder()
        for packet in self._encoder.encode(frame):
            self._send(bytes(packet), (self._ts0 + (packet.pts or rtp_ts)) & 0xFFFFFFFF)
        self.frames_sent += 1

    def _send(self, access_unit: bytes, timestamp: int) -> None:
        payloads = self._packetizer.payloads(access_unit)
        sock = self._sock
        if sock is None:
            return
        for k, payload in enumerate(payloads):
            marker = 0x80 if k == len(payloads) - 1 else 0
            header = struct.pack("!BBHII", 0x80, marker | RTP_PAYLOAD_TYPE, self._seq, timestamp, self._ssrc)
            self._seq = (self._seq + 1) & 0xFFFF
            try:
                sock.sendto(header + payload, self.target)
            except OSError:
                return  # nobody listening yet (ICMP port unreachable): like a real camera, keep going
