"""Video ingest: one vehicle stream in, H.264 access units out — never decoded on this path.

Two kinds of source (``formats.parse_stream_uri``):

* ``udp://host:port`` — the vehicle pushes RTP/H.264 (PX4 and the simulator send to 5600+i). An
  asyncio datagram endpoint bound to host:port feeds ``h264.Depacketizer``; a new SSRC (the camera
  restarted) resets it.
* anything PyAV can open (``rtsp://``, files) — demuxed in a worker thread with a read timeout;
  packets already are access units.

Either way each access unit gets a presentation time on one continuous 90 kHz timeline: source
timestamp differences are kept while they are plausible and replaced by arrival-time differences
across a restart or a jump, so downstream consumers (WebRTC senders, the MP4 muxer) never see time
go backwards. When nothing arrives for ``stall_after_s`` the ingest reports a stall, drops its
partial state and reconnects (rebinds the socket, reopens the URL) until data flows again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from fractions import Fraction

import av
from aiortc.rtp import RtpPacket

from dronedispatch.video.formats import StreamSource, parse_stream_uri
from dronedispatch.video.h264 import NAL_PPS, NAL_SPS, VIDEO_CLOCK, Depacketizer, join_annexb, nal_type, split_annexb

log = logging.getLogger(__name__)

_MAX_STEP = 5 * VIDEO_CLOCK
"""Largest source timestamp step taken at face value (5 s); anything else is a discontinuity."""


class IngestState(StrEnum):
    WAITING = "waiting"
    LIVE = "live"
    STALLED = "stalled"
    STOPPED = "stopped"


@dataclass(frozen=True, slots=True)
class VideoUnit:
    data: bytes
    """Annex B access unit (an IDR carries its SPS/PPS)."""
    pts: int
    """Presentation time on the stream's continuous 90 kHz timeline."""
    keyframe: bool
    received: float
    """time.monotonic() when the last byte of the unit arrived."""
    wallclock: float
    """time.time() at the same instant (for recordings and telemetry)."""


class Timeline:
    """Maps source timestamps onto one monotonic 90 kHz timeline (pure)."""

    def __init__(self, wrap_bits: int | None = 32) -> None:
        self.wrap = 1 << wrap_bits if wrap_bits else None
        self._last_src: int | None = None
        self._last_pts = 0
        self._last_arrival = 0.0

    def map(self, src: int, arrival: float) -> int:
        if self._last_src is None:
            pts = 0
        else:
            step = src - self._last_src
            if self.wrap is not None:
                step %= self.wrap
            if not 0 < step <= _MAX_STEP:
                step = max(1, round((arrival - self._last_arrival) * VIDEO_CLOCK))
            pts = self._last_pts + step
        self._last_src, self._last_pts, self._last_arrival = src, pts, arrival
        return pts


UnitSink = Callable[[VideoUnit], None]
StateSink = Callable[[IngestState], None]


class StreamIngest:
    """Receives one stream and calls ``on_unit`` on the event loop for every access unit."""

    def __init__(
        self,
        uri: str,
        on_unit: UnitSink,
        *,
        on_state: StateSink | None = None,
        stall_after_s: float = 2.0,
        stream_type: int | None = None,
    ) -> None:
        self.source: StreamSource = parse_stream_uri(uri, stream_type)
        self.uri = uri
        self._on_unit, self._on_state = on_unit, on_state
        self.stall_after_s = stall_after_s
        self.state = IngestState.WAITING
        self.units = 0
        self.reconnects = 0
        self._timeline = Timeline(32 if self.source.kind == "rtp-udp" else None)
        self._last_data = 0.0
        self._data = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._transport: asyncio.DatagramTransport | None = None
        self._depack = Depacketizer()
        self._ssrc: int | None = None
        self._stop_pull = threading.Event()
        self._loop_time: Callable[[], float] = time.monotonic

    @property
    def lost(self) -> int:
        return self._depack.lost

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._loop_time = loop.time
        self._last_data = loop.time()
        if self.source.kind == "rtp-udp":
            await self._bind()
        else:
            self._tasks.append(asyncio.create_task(self._pull(), name=f"ingest {self.uri}"))
        self._tasks.append(asyncio.create_task(self._watch(), name=f"ingest watchdog {self.uri}"))

    async def stop(self) -> None:
        self._stop_pull.set()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()
        if self._transport is not None:
            self._transport.close()
            self._transport = None
        self._set_state(IngestState.STOPPED)

    def _set_state(self, state: IngestState) -> None:
        if state != self.state:
            log.info("video %s: %s", self.uri, state)
            self.state = state
            if self._on_state is not None:
                self._on_state(state)

    def _emit(self, data: bytes, src_ts: int, keyframe: bool) -> None:
        now = time.monotonic()
        self._last_data = self._loop_time()
        if self.state != IngestState.LIVE:
            self._set_state(IngestState.LIVE)
            self._data.set()
        self.units += 1
        unit = VideoUnit(data, self._timeline.map(src_ts, now), keyframe, now, time.time())
        self._on_unit(unit)

    async def _watch(self) -> None:
        """Declare a stall after ``stall_after_s`` of silence, then reconnect until data returns."""
        loop = asyncio.get_running_loop()
        while True:
            wait = self._last_data + self.stall_after_s - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
                continue
            if self.state == IngestState.LIVE:
                self._set_state(IngestState.STALLED)  # a source never heard from stays 'waiting'
                self.reconnects += 1
            self._data.clear()
            self._depack.reset()
            if self.source.kind == "rtp-udp":
                try:
                    await self._bind()
                except OSError as exc:
                    log.warning("video %s: %s; retrying", self.uri, exc)
            # The pull thread reconnects by itself (its read times out); wait for data or retry.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._data.wait(), self.stall_after_s)
            self._last_data = max(self._last_data, loop.time() - self.stall_after_s)

    # --- RTP over UDP -------------------------------------------------------------------------

    async def _bind(self) -> None:
        if self._transport is not None:
            self._transport.close()
            self._transport = None
        loop = asyncio.get_running_loop()
        for attempt in range(20):
            try:
                transport, _ = await loop.create_datagram_endpoint(
                    lambda: _RtpProtocol(self._datagram), local_addr=(self.source.host, self.source.port)
                )
                self._transport = transport  # type: ignore[assignment]
                return
            except OSError as exc:
                # Rebinding right after close can race the old socket's release; retry briefly.
                if attempt == 19:
                    raise OSError(
                        exc.errno, f"cannot listen for video on {self.source.host}:{self.source.port}: {exc.strerror}"
                    ) from exc
                await asyncio.sleep(0.05)

    def _datagram(self, data: bytes) -> None:
        if len(data) < 12 or data[0] >> 6 != 2:
            return
        # The source is alive as long as RTP arrives, even if loss keeps every picture from completing.
        self._last_data = self._loop_time()
        try:
            packet = RtpPacket.parse(data)
        except ValueError:
            return
        if packet.ssrc != self._ssrc:
            if self._ssrc is not None:
                log.info("video %s: new source (SSRC %08x)", self.uri, packet.ssrc)
            self._ssrc = packet.ssrc
            self._depack.reset()
        if not packet.payload:
            return
        for au in self._depack.feed(
            packet.payload, sequence=packet.sequence_number, timestamp=packet.timestamp, marker=bool(packet.marker)
        ):
            self._emit(au.data, au.rtp_timestamp, au.keyframe)

    # --- PyAV pull (RTSP, files) --------------------------------------------------------------

    async def _pull(self) -> None:
        loop = asyncio.get_running_loop()
        backoff = 0.5
        while not self._stop_pull.is_set():
            started = time.monotonic()
            try:
                await asyncio.to_thread(self._pull_blocking, loop)
            except Exception as exc:
                log.info("video %s: source closed (%s)", self.uri, exc)
            if self._stop_pull.is_set():
                return
            if time.monotonic() - started > 10:
                backoff = 0.5
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 5.0)

    def _pull_blocking(self, loop: asyncio.AbstractEventLoop) -> None:
        """Demux until the source ends, fails or stop() is asked (worker thread)."""
        options = {"rtsp_transport": "tcp"} if self.source.uri.startswith("rtsp") else {}
        with av.open(self.source.uri, options=options, timeout=(5.0, self.stall_after_s)) as container:
            stream = container.streams.video[0]
            if stream.codec_context.name != "h264":
                raise ValueError(f"video codec {stream.codec_context.name} is not H.264")
            extradata = bytes(stream.codec_context.extradata or b"")
            bsf = av.BitStreamFilterContext("h264_mp4toannexb", stream) if extradata[:1] == b"\x01" else None
            params = [n for n in split_annexb(extradata) if nal_type(n) in (NAL_SPS, NAL_PPS)] if not bsf else []
            live = not self.source.uri.startswith("/")
            t0: float | None = None
            tb = stream.time_base or Fraction(1, VIDEO_CLOCK)
            for packet in container.demux(stream):
                if self._stop_pull.is_set():
                    return
                for out in bsf.filter(packet) if bsf else [packet]:
                    if out.pts is None or not bytes(out):
                        continue
                    data = bytes(out)
                    if out.is_keyframe and params and not any(nal_type(n) == NAL_SPS for n in split_annexb(data)):
                        data = join_annexb(params) + data
                    ts = round(out.pts * tb * VIDEO_CLOCK)
                    if not live:
                        # Files play at their own pace, like a camera would.
                        t0 = t0 if t0 is not None else time.monotonic() - ts / VIDEO_CLOCK
                        delay = t0 + ts / VIDEO_CLOCK - time.monotonic()
                        if delay > 0 and self._stop_pull.wait(delay):
                            return
                    loop.call_soon_threadsafe(self._emit, data, ts, bool(out.is_keyframe))


class _RtpProtocol(asyncio.DatagramProtocol):
    def __init__(self, on_datagram: Callable[[bytes], None]) -> None:
        self._on_datagram = on_datagram

    def datagram_received(self, data: bytes, addr: tuple[str | object, int]) -> None:
        self._on_datagram(data)

    def error_received(self, exc: Exception) -> None:
        log.debug("video ingest socket error: %s", exc)
