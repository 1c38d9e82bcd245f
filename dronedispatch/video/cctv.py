"""Fixed CCTV cameras relayed to browsers over WebRTC: one RTSP pull per camera, shared, only while watched.

A camera's RTSP stream is demuxed by PyAV (ffmpeg's RTSP client, interleaved over TCP, with open and read
timeouts) in a thread of its own, never decoded: each H.264 access unit goes, as a drone's do, into the
same fan-out (:class:`dronedispatch.video.fanout.FanOut`) and from there to every viewer's
:class:`~dronedispatch.video.fanout.PassthroughTrack`, which hands it to aiortc's packetizer as is.

Life of a pull. The first viewer (or a snapshot) starts it; it stops ``linger_s`` after the last viewer
left, so a page reload does not reconnect to the camera. When the camera drops (a reboot, a cable), the
thread reconnects with a backoff (0.5 s doubling to 5 s) for as long as someone watches; viewers stay
connected and resume at the camera's next IDR. Each camera has a state a person can read: ``idle``
(nobody watches), ``connecting``, ``live``, or ``unreachable`` with the reason and since when; a viewer
whose camera is not live within a few seconds gets :class:`CameraUnreachable`, never an endless wait.

Credentials. A stream URL may carry ``user:password@``; only :func:`redact_credentials`'d text leaves
this module (states, errors, logs), since ffmpeg's errors quote the URL they failed on.

Why a thread per pull rather than ``asyncio.to_thread``: the default executor has a handful of workers
(cores + 4) shared with the store; sixteen cameras blocked in reads would starve it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from fractions import Fraction

import av
import httpx

from dronedispatch.domain.assets import redact_credentials
from dronedispatch.video.fanout import FanOut, answer_viewer, checked_offer, restrict_ice_hosts
from dronedispatch.video.h264 import NAL_PPS, NAL_SPS, VIDEO_CLOCK, join_annexb, nal_type, split_annexb
from dronedispatch.video.ingest import IngestState, Timeline, VideoUnit
from dronedispatch.video.recording import SnapshotError, keyframe_jpeg

log = logging.getLogger(__name__)

_BACKOFF_FIRST_S = 0.5
_BACKOFF_MAX_S = 5.0
_REAP_EVERY_S = 0.5


class CameraState(StrEnum):
    IDLE = "idle"
    CONNECTING = "connecting"
    LIVE = "live"
    UNREACHABLE = "unreachable"


class UnknownCamera(LookupError):
    """No stream is registered under this camera id."""


class CameraUnreachable(Exception):
    """The camera gave no picture in time; ``reason`` (credentials removed) says what went wrong."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class CameraStatus:
    camera_id: str
    state: CameraState
    reason: str | None
    """Why the camera is unreachable (None otherwise)."""
    since: datetime
    """When the camera entered this state (UTC)."""
    viewers: int
    pulls: int
    """Pulls started since the service started (one per stretch of time someone watched)."""
    connections: int
    """RTSP sessions opened (reconnects included)."""
    units: int
    """Access units received."""
    sent: int
    """Access units handed to the current viewers' senders, summed over viewers."""


@dataclass(eq=False)
class _Pull:
    """One worker thread's pull; a stopped pull's late callbacks are ignored (``feed.pull is not pull``)."""

    stop: threading.Event = field(default_factory=threading.Event)
    thread: threading.Thread | None = None
    done: asyncio.Event = field(default_factory=asyncio.Event)
    reaper: asyncio.Task[None] | None = None


@dataclass(eq=False)
class _Feed:
    camera_id: str
    url: str
    fan: FanOut
    state: CameraState = CameraState.IDLE
    reason: str | None = None
    since: datetime = field(default_factory=lambda: datetime.now(UTC))
    holds: int = 0
    """Callers that need the pull running without being a viewer (an offer being answered, a snapshot)."""
    pull: _Pull | None = None
    pulls: int = 0
    connections: int = 0
    units: int = 0
    timeline: Timeline = field(default_factory=lambda: Timeline(None))
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    def set_state(self, state: CameraState, reason: str | None = None) -> None:
        if state == self.state and reason == self.reason:
            return
        if state != self.state:
            self.since = datetime.now(UTC)
            log.info("camera %s: %s%s", self.camera_id, state, f" ({reason})" if reason else "")
        self.state, self.reason = state, reason
        changed, self.changed = self.changed, asyncio.Event()
        changed.set()


class CctvRelay:
    """Every fixed camera with a stream: its pull, its WebRTC viewers and its snapshots."""

    def __init__(
        self,
        *,
        ice_hosts: Sequence[str] = ("127.0.0.1",),
        ice_servers: Sequence[str] = (),
        open_timeout_s: float = 4.0,
        read_timeout_s: float = 3.0,
        linger_s: float = 5.0,
        connect_timeout_s: float = 30.0,
    ) -> None:
        self.ice_hosts = list(ice_hosts)
        self.ice_servers = list(ice_servers)
        self.open_timeout_s = open_timeout_s
        self.read_timeout_s = read_timeout_s
        self.linger_s = linger_s
        self.connect_timeout_s = connect_timeout_s
        self._feeds: dict[str, _Feed] = {}
        self._closing: set[asyncio.Task[None]] = set()
        restrict_ice_hosts(self.ice_hosts)

    def add_camera(self, camera_id: str, url: str) -> None:
        """Register a camera's stream URL (nothing is pulled until someone watches)."""
        if camera_id in self._feeds:
            raise ValueError(f"camera {camera_id!r} is already registered")
        self._feeds[camera_id] = _Feed(camera_id, url, FanOut(f"camera:{camera_id}", redact_credentials(url)))

    def cameras(self) -> list[str]:
        return list(self._feeds)

    def status(self, camera_id: str) -> CameraStatus:
        f = self._feed(camera_id)
        sent = sum(t.sent for t in f.fan.tracks)
        return CameraStatus(
            f.camera_id, f.state, f.reason, f.since, len(f.fan.tracks), f.pulls, f.connections, f.units, sent
        )

    async def close(self) -> None:
        for feed in self._feeds.values():
            await feed.fan.hang_up_all()
        # All at once: a pull blocked in a read notices its stop only at the read timeout.
        await asyncio.gather(*(self._stop_pull(feed, CameraState.IDLE) for feed in self._feeds.values()))
        if self._closing:
            await asyncio.gather(*self._closing, return_exceptions=True)

    def _feed(self, camera_id: str) -> _Feed:
        try:
            return self._feeds[camera_id]
        except KeyError:
            raise UnknownCamera(f"camera {camera_id!r} has no stream") from None

    # --- WebRTC -------------------------------------------------------------------------------

    async def offer(self, camera_id: str, sdp: str, type: str, *, wait_s: float = 5.0) -> tuple[str, str]:
        """Answer a browser's SDP offer for the camera (non-trickle), once its stream is live.

        Raises UnknownCamera, OfferError (a ValueError) for a bad offer, or CameraUnreachable when the
        camera gives no picture within ``wait_s``.
        """
        feed = self._feed(camera_id)
        sdp = checked_offer(sdp, type, self.ice_hosts, f"camera {camera_id}")
        feed.holds += 1
        try:
            self._ensure_pull(feed)
            await self._wait_live(feed, wait_s)
            answer_sdp, answer_type, _ = await answer_viewer(
                feed.fan, sdp, ice_servers=self.ice_servers, connect_timeout_s=self.connect_timeout_s,
                closing=self._closing, label=f"camera {camera_id}",
            )  # fmt: skip
            return answer_sdp, answer_type
        finally:
            feed.holds -= 1

    async def _wait_live(self, feed: _Feed, wait_s: float) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait_s
        while feed.state != CameraState.LIVE:
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise CameraUnreachable(feed.reason or f"no picture within {wait_s:g} s")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(feed.changed.wait(), remaining)

    # --- snapshots ------------------------------------------------------------------------------

    async def snapshot_jpeg(self, camera_id: str, *, wait_s: float = 5.0, max_age_s: float = 5.0) -> bytes:
        """JPEG of the camera's latest keyframe (pulling briefly if nobody watches); CameraUnreachable else."""
        feed = self._feed(camera_id)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait_s
        feed.holds += 1
        try:
            self._ensure_pull(feed)
            while True:
                unit = feed.fan.last_keyframe
                if unit is not None and time.monotonic() - unit.received <= max_age_s:
                    break
                remaining = deadline - loop.time()
                if remaining <= 0:
                    if unit is not None and feed.state == CameraState.LIVE:
                        break  # a camera with keyframes far apart: its latest one is the best there is
                    raise CameraUnreachable(feed.reason or f"no picture within {wait_s:g} s")
                feed.fan.keyframe_seen.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(feed.fan.keyframe_seen.wait(), remaining)
        finally:
            feed.holds -= 1
        try:
            return await asyncio.to_thread(keyframe_jpeg, unit.data)
        except SnapshotError as exc:
            raise CameraUnreachable(f"the camera's picture cannot be decoded: {exc}") from exc

    # --- the pull -------------------------------------------------------------------------------

    def _ensure_pull(self, feed: _Feed) -> None:
        if feed.pull is not None:
            return
        loop = asyncio.get_running_loop()
        pull = _Pull()
        feed.pull = pull
        feed.pulls += 1
        if feed.state != CameraState.UNREACHABLE:  # keep the reason on screen while retrying
            feed.set_state(CameraState.CONNECTING)
        pull.thread = threading.Thread(
            target=self._run, args=(feed, pull, loop), name=f"cctv {feed.camera_id}", daemon=True
        )
        pull.thread.start()
        pull.reaper = asyncio.create_task(self._reap(feed, pull), name=f"cctv reaper {feed.camera_id}")

    async def _reap(self, feed: _Feed, pull: _Pull) -> None:
        """Stop the pull once nobody has watched for ``linger_s``."""
        loop = asyncio.get_running_loop()
        idle_since: float | None = None
        while feed.pull is pull:
            await asyncio.sleep(_REAP_EVERY_S)
            if feed.holds or feed.fan.tracks:
                idle_since = None
                continue
            idle_since = idle_since if idle_since is not None else loop.time()
            if loop.time() - idle_since >= self.linger_s:
                # An unreachable camera keeps its state (and reason) when nobody watches any more.
                await self._stop_pull(feed, CameraState.IDLE if feed.state != CameraState.UNREACHABLE else None)
                return

    async def _stop_pull(self, feed: _Feed, state: CameraState | None) -> None:
        pull, feed.pull = feed.pull, None
        if pull is None:
            return
        pull.stop.set()
        if state is not None:
            feed.set_state(state)
        if pull.reaper is not None and pull.reaper is not asyncio.current_task():
            pull.reaper.cancel()
        # The thread notices within one read timeout; a new pull may already run beside it.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(pull.done.wait(), self.open_timeout_s + self.read_timeout_s + 1)

    def _run(self, feed: _Feed, pull: _Pull, loop: asyncio.AbstractEventLoop) -> None:
        """Worker thread: pull, and after a failure wait and pull again, until stopped."""
        backoff = _BACKOFF_FIRST_S
        try:
            while not pull.stop.is_set():
                started = time.monotonic()
                try:
                    self._pull_once(feed, pull, loop)
                    reason = "the camera ended its stream"
                except Exception as exc:  # ffmpeg's errors: refused, timeouts, 401, bad SDP …
                    reason = _reason(exc, self.read_timeout_s)
                if pull.stop.is_set() or loop.is_closed():  # stopped, or the service is gone without close()
                    return
                self._call(loop, self._lost, feed, pull, reason)
                if time.monotonic() - started > 10:
                    backoff = _BACKOFF_FIRST_S
                if pull.stop.wait(backoff):
                    return
                backoff = min(backoff * 2, _BACKOFF_MAX_S)
        finally:
            self._call(loop, pull.done.set)

    def _pull_once(self, feed: _Feed, pull: _Pull, loop: asyncio.AbstractEventLoop) -> None:
        options = {"rtsp_transport": "tcp", "timeout": str(int(self.read_timeout_s * 1_000_000))}
        with av.open(feed.url, options=options, timeout=(self.open_timeout_s, self.read_timeout_s)) as container:
            if not container.streams.video:
                raise ValueError("the stream has no video")
            stream = container.streams.video[0]
            if stream.codec_context.name != "h264":
                raise ValueError(f"video codec {stream.codec_context.name} is not H.264")
            extradata = bytes(stream.codec_context.extradata or b"")
            bsf = av.BitStreamFilterContext("h264_mp4toannexb", stream) if extradata[:1] == b"\x01" else None
            params = [n for n in split_annexb(extradata) if nal_type(n) in (NAL_SPS, NAL_PPS)] if not bsf else []
            tb = stream.time_base or Fraction(1, VIDEO_CLOCK)
            self._call(loop, self._connected, feed, pull)
            for packet in container.demux(stream):
                if pull.stop.is_set():
                    return
                for out in bsf.filter(packet) if bsf else [packet]:
                    if out.pts is None or not out.size:
                        continue
                    data = bytes(out)
                    if out.is_keyframe and params and not any(nal_type(n) == NAL_SPS for n in split_annexb(data)):
                        data = join_annexb(params) + data  # a new viewer can start at any IDR
                    ts = round(out.pts * tb * VIDEO_CLOCK)
                    loop.call_soon_threadsafe(self._emit, feed, pull, data, ts, bool(out.is_keyframe))

    @staticmethod
    def _call(loop: asyncio.AbstractEventLoop, fn: object, *args: object) -> None:
        with contextlib.suppress(RuntimeError):  # the loop closed under a thread that was finishing
            loop.call_soon_threadsafe(fn, *args)  # type: ignore[arg-type]

    # --- on the event loop ------------------------------------------------------------------------

    def _connected(self, feed: _Feed, pull: _Pull) -> None:
        if feed.pull is pull:
            feed.connections += 1

    def _emit(self, feed: _Feed, pull: _Pull, data: bytes, ts: int, keyframe: bool) -> None:
        if feed.pull is not pull:
            return
        now = time.monotonic()
        feed.units += 1
        if feed.state != CameraState.LIVE:
            feed.set_state(CameraState.LIVE)
        feed.fan.on_unit(VideoUnit(data, feed.timeline.map(ts, now), keyframe, now, time.time()))

    def _lost(self, feed: _Feed, pull: _Pull, reason: str) -> None:
        if feed.pull is not pull:
            return
        # Viewers stay; they resume at the camera's next IDR once it is back.
        feed.fan.on_state(IngestState.STALLED)
        feed.set_state(CameraState.UNREACHABLE, reason)


def _reason(exc: Exception, read_timeout_s: float) -> str:
    if isinstance(exc, av.ExitError):  # PyAV's timeout interrupted a blocking open or read
        return f"the camera sent nothing for {read_timeout_s:g} s"
    text = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
    return redact_credentials(str(text))


async def fetch_snapshot(url: str, timeout_s: float = 3.0) -> bytes:
    """GET a camera's snapshot URL (credentials in the URL become HTTP basic auth); CameraUnreachable else."""
    try:
        async with httpx.AsyncClient(timeout=timeout_s, trust_env=False) as client:
            response = await client.get(url)
    except httpx.HTTPError as exc:
        raise CameraUnreachable(f"snapshot URL: {redact_credentials(str(exc)) or type(exc).__name__}") from exc
    if response.status_code != 200:
        raise CameraUnreachable(f"snapshot URL answered HTTP {response.status_code}")
    if not response.content.startswith(b"\xff\xd8"):
        raise CameraUnreachable("snapshot URL did not answer a JPEG")
    return response.content
