"""The WebRTC relay: one ingest per vehicle stream, fanned out to every viewer without re-encoding.

How the passthrough works. aiortc's ``RTCRtpSender`` asks its track for the next item: an
``av.VideoFrame`` goes through the codec's ``encode()`` (a libx264 re-encode), but an ``av.Packet``
goes through the codec's ``pack()``, which for H.264 only splits the Annex B bytes into NAL units
and packetizes them (RFC 6184 packetization-mode 1, STAP-A/FU-A). ``PassthroughTrack`` therefore
yields the access units from the ingest as ``av.Packet`` objects with a 90 kHz time base, and the
transceiver is restricted to H.264 with ``setCodecPreferences`` so that ``pack()`` is the H.264
one. This is the same path aiortc's own ``MediaPlayer(decode=False)`` uses. A new viewer starts at
the next IDR (the simulator sends one every second); a viewer that falls behind (its queue fills)
is cut back to the next IDR rather than delayed, so latency never accumulates.

Network. ICE servers are empty unless configured, so nothing contacts STUN. aioice gathers host
candidates from ``aioice.ice.get_host_addresses()``, which skips loopback; ``restrict_ice_hosts``
replaces that module function with one returning the configured ``ice_hosts`` (127.0.0.1 by
default). It is process-wide, as aioice offers no per-connection hook, and also applies to aiortc
clients in the same process. Remote candidates outside ``ice_hosts`` are removed from the offer
before ``setRemoteDescription`` (``formats.filter_candidates``), so aioice never sends mDNS queries.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Any

import aioice.ice
import av
from aiortc import (
    RTCConfiguration,
    RTCIceServer,
    RTCPeerConnection,
    RTCRtpSender,
    RTCSessionDescription,
)
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from aiortc.rtcrtpparameters import RTCRtpCodecCapability

from dronedispatch.video.formats import OfferError, check_video_offer, filter_candidates
from dronedispatch.video.h264 import VIDEO_CLOCK
from dronedispatch.video.ingest import IngestState, StreamIngest, VideoUnit
from dronedispatch.video.recording import Recorder, RecordingInfo, SnapshotError, TelemetrySample, keyframe_jpeg

if TYPE_CHECKING:
    from dronedispatch.settings import Settings

log = logging.getLogger(__name__)

_TIME_BASE = Fraction(1, VIDEO_CLOCK)
_VIEWER_QUEUE = 8
"""Access units a viewer may have waiting (~0.25 s at 30 fps) before it is cut back to the next IDR."""


class StreamNotFound(LookupError):
    """No stream is known under this key (the vehicle has not announced video, or it was stopped)."""


def restrict_ice_hosts(hosts: Sequence[str]) -> None:
    """Make aioice offer exactly these addresses as host candidates (process-wide)."""
    addresses = [str(ipaddress.ip_address(h)) for h in hosts]

    def get_host_addresses(use_ipv4: bool, use_ipv6: bool) -> list[str]:
        return [
            a
            for a in addresses
            if (use_ipv4 and ipaddress.ip_address(a).version == 4)
            or (use_ipv6 and ipaddress.ip_address(a).version == 6)
        ]

    global _aioice_host_addresses, _aioice_request_received
    if _aioice_host_addresses is None:
        _aioice_host_addresses = aioice.ice.get_host_addresses
    aioice.ice.get_host_addresses = get_host_addresses
    # A browser sends its checks to our 127.0.0.1 from sockets bound to this machine's other
    # interfaces (it gathers no loopback candidates); those packets never leave the machine.
    # A check from any other address is not answered, so no peer outside it is ever learnt.
    _allowed_peers.clear()
    _allowed_peers.update(addresses)
    _allowed_peers.update(_aioice_host_addresses(use_ipv4=True, use_ipv6=True))
    if aioice.ice.Connection.request_received is not _request_from_allowed_peer:
        _aioice_request_received = aioice.ice.Connection.request_received
        aioice.ice.Connection.request_received = _request_from_allowed_peer  # type: ignore[method-assign]


#: Addresses ICE answers connectivity checks from: the configured ones and this machine's own.
_allowed_peers: set[str] = set()
_aioice_request_received: Any = None
_aioice_host_addresses: Any = None


def _request_from_allowed_peer(self: Any, message: Any, addr: tuple[str, int], protocol: Any) -> None:
    if addr[0] not in _allowed_peers:
        log.debug("ICE: ignored a check from %s (outside %s)", addr[0], sorted(_allowed_peers))
        return
    _aioice_request_received(self, message, addr, protocol)


def rtc_configuration(ice_servers: Sequence[str]) -> RTCConfiguration:
    """An explicit (possibly empty) server list: aiortc falls back to a public STUN server on None."""
    return RTCConfiguration(iceServers=[RTCIceServer(urls=url) for url in ice_servers])


def h264_preferences() -> list[RTCRtpCodecCapability]:
    """aiortc's H.264 codecs (packetization-mode 1, constrained baseline and baseline) for setCodecPreferences."""
    return [c for c in RTCRtpSender.getCapabilities("video").codecs if c.mimeType.lower() == "video/h264"]


class PassthroughTrack(MediaStreamTrack):
    """A video track whose frames are already-encoded H.264 access units (``av.Packet``)."""

    kind = "video"

    def __init__(self, stream: _Stream) -> None:
        super().__init__()
        self._stream = stream
        self._queue: asyncio.Queue[VideoUnit | None] = asyncio.Queue()
        self._need_keyframe = True
        self.cutbacks = 0
        self.sent = 0

    def push(self, unit: VideoUnit) -> None:
        if self._need_keyframe:
            if not unit.keyframe:
                return
            self._need_keyframe = False
        elif self._queue.qsize() >= _VIEWER_QUEUE:
            # This viewer cannot keep up: drop what waits and resume at an IDR.
            while not self._queue.empty():
                self._queue.get_nowait()
            self.cutbacks += 1
            if not unit.keyframe:
                self._need_keyframe = True
                return
        self._queue.put_nowait(unit)

    def resync(self) -> None:
        """The source restarted: wait for its next IDR."""
        self._need_keyframe = True

    async def recv(self) -> av.Packet:
        if self.readyState != "live":
            raise MediaStreamError
        unit = await self._queue.get()
        if unit is None:
            raise MediaStreamError
        packet = av.Packet(unit.data)
        packet.pts = packet.dts = unit.pts
        packet.time_base = _TIME_BASE
        self.sent += 1
        return packet

    def stop(self) -> None:
        super().stop()
        self._stream.tracks.discard(self)
        self._queue.put_nowait(None)


@dataclass(eq=False)
class _Stream:
    key: str
    uri: str
    ingest: StreamIngest | None = None
    tracks: set[PassthroughTrack] = field(default_factory=set)
    peers: set[RTCPeerConnection] = field(default_factory=set)
    recorder: Recorder | None = None
    last_keyframe: VideoUnit | None = None
    keyframe_seen: asyncio.Event = field(default_factory=asyncio.Event)
    state_changed: asyncio.Event = field(default_factory=asyncio.Event)
    _jpeg: tuple[VideoUnit, bytes] | None = None

    def on_unit(self, unit: VideoUnit) -> None:
        if unit.keyframe:
            self.last_keyframe = unit
            self.keyframe_seen.set()
        for track in tuple(self.tracks):
            track.push(unit)
        if self.recorder is not None:
            self.recorder.write(unit)

    def on_state(self, state: IngestState) -> None:
        if state == IngestState.STALLED:
            for track in self.tracks:
                track.resync()
        # Wake whoever waits for a change, and arm a fresh event for the next one.
        changed, self.state_changed = self.state_changed, asyncio.Event()
        changed.set()


@dataclass(frozen=True, slots=True)
class StreamStatus:
    key: str
    uri: str
    state: str
    viewers: int
    units: int
    lost: int
    reconnects: int
    recording: bool
    sent: int
    """Access units handed to the current viewers' senders, summed over viewers."""
    cutbacks: int
    """Times a viewer fell behind and was cut back to the next IDR."""


async def answer_viewer(
    stream: _Stream,
    sdp: str,
    *,
    ice_servers: Sequence[str],
    connect_timeout_s: float,
    closing: set[asyncio.Task[None]],
    label: str,
) -> tuple[str, str, Callable[[], Awaitable[None]]]:
    """One more WebRTC viewer of ``stream`` (H.264 passed through, send only), answering the
    browser's checked and filtered offer ``sdp`` (non-trickle: the answer carries all our candidates).

    Returns the answer and a coroutine function that hangs this viewer up. Raises OfferError with a
    reason when the offer cannot be answered. Used by the drone relay and the fixed cameras' relay.
    """
    pc = RTCPeerConnection(rtc_configuration(ice_servers))
    track = PassthroughTrack(stream)
    stream.peers.add(pc)

    async def hang_up() -> None:
        stream.peers.discard(pc)
        track.stop()
        await pc.close()

    @pc.on("connectionstatechange")
    async def _on_state() -> None:
        if pc.connectionState in ("failed", "closed"):
            await hang_up()

    try:
        # Created before the offer is applied so that the offer's video section takes it and
        # codec negotiation sees the H.264-only preference.
        transceiver = pc.addTransceiver(track, direction="sendonly")
        transceiver.setCodecPreferences(h264_preferences())
        await pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="offer"))
        await pc.setLocalDescription(await pc.createAnswer())
    except Exception as exc:
        await hang_up()
        if isinstance(exc, OfferError):
            raise
        raise OfferError(f"cannot answer the offer: {exc}") from exc
    stream.tracks.add(track)

    def expire() -> None:
        """A viewer that never completes ICE/DTLS (closed tab, unreachable candidates) is hung up on."""
        if pc.connectionState in ("connected", "closed"):
            return
        log.info("%s: viewer did not connect within %.0f s", label, connect_timeout_s)
        stream.peers.discard(pc)
        track.stop()
        task = asyncio.ensure_future(pc.close())
        closing.add(task)
        task.add_done_callback(closing.discard)

    asyncio.get_running_loop().call_later(connect_timeout_s, expire)
    local = pc.localDescription
    return local.sdp, local.type, hang_up


class VideoHub:
    """All live streams of the service: ingest, WebRTC viewers, snapshots and recordings."""

    def __init__(
        self,
        *,
        ice_hosts: Sequence[str] = ("127.0.0.1",),
        ice_servers: Sequence[str] = (),
        stall_after_s: float = 2.0,
        connect_timeout_s: float = 30.0,
    ) -> None:
        self.ice_hosts = list(ice_hosts)
        self.ice_servers = list(ice_servers)
        self.stall_after_s = stall_after_s
        self.connect_timeout_s = connect_timeout_s
        self._streams: dict[str, _Stream] = {}
        self._closing: set[asyncio.Task[None]] = set()
        restrict_ice_hosts(self.ice_hosts)

    @classmethod
    def from_settings(cls, settings: Settings) -> VideoHub:
        return cls(ice_hosts=settings.ice_hosts, ice_servers=settings.ice_servers)

    # --- streams ------------------------------------------------------------------------------

    async def ensure_stream(self, stream_key: str, uri: str, stream_type: int | None = None) -> None:
        """Start ingesting ``uri`` under ``stream_key`` (no-op if already so); viewers survive a URI change.

        ``uri`` and ``stream_type`` are VIDEO_STREAM_INFORMATION's; a bad URI raises ValueError with the
        reason, a UDP port already taken raises OSError.
        """
        stream = self._streams.get(stream_key)
        if stream is not None and stream.uri == uri and stream.ingest is not None:
            return
        if stream is None:
            stream = _Stream(stream_key, uri)
        ingest = StreamIngest(  # parses the URI: a bad one changes nothing
            uri, stream.on_unit, on_state=stream.on_state, stall_after_s=self.stall_after_s, stream_type=stream_type
        )
        if stream.ingest is not None:
            await stream.ingest.stop()
            stream.ingest = None
            for track in stream.tracks:
                track.resync()
        await ingest.start()  # OSError when the port is taken; a new stream is then not registered
        stream.uri, stream.ingest = uri, ingest
        self._streams[stream_key] = stream

    async def stop_stream(self, stream_key: str) -> RecordingInfo | None:
        """Stop the ingest, hang up on its viewers and finish its recording (returned, if any)."""
        stream = self._streams.pop(stream_key, None)
        if stream is None:
            return None
        info = await self._finish_recording(stream)
        await asyncio.gather(*(pc.close() for pc in tuple(stream.peers)), return_exceptions=True)
        for track in tuple(stream.tracks):
            track.stop()
        if stream.ingest is not None:
            await stream.ingest.stop()
        return info

    def status(self, stream_key: str) -> StreamStatus:
        stream = self._get(stream_key)
        ingest = stream.ingest
        return StreamStatus(
            key=stream_key,
            uri=stream.uri,
            state=str(ingest.state) if ingest else str(IngestState.STOPPED),
            viewers=len(stream.tracks),
            units=ingest.units if ingest else 0,
            lost=ingest.lost if ingest else 0,
            reconnects=ingest.reconnects if ingest else 0,
            recording=stream.recorder is not None,
            sent=sum(t.sent for t in stream.tracks),
            cutbacks=sum(t.cutbacks for t in stream.tracks),
        )

    async def wait_state(self, stream_key: str, state: str) -> None:
        """Return once the stream's ingest is in ``state`` ('live', 'stalled' …); wrap it in a timeout."""
        while (stream := self._get(stream_key)).ingest is None or stream.ingest.state != state:
            await stream.state_changed.wait()

    def streams(self) -> list[str]:
        return list(self._streams)

    async def close(self) -> None:
        for key in list(self._streams):
            await self.stop_stream(key)
        if self._closing:
            await asyncio.gather(*self._closing, return_exceptions=True)

    def _get(self, stream_key: str) -> _Stream:
        try:
            return self._streams[stream_key]
        except KeyError:
            raise StreamNotFound(f"no video stream {stream_key!r}") from None

    # --- WebRTC -------------------------------------------------------------------------------

    async def offer(
        self,
        stream_key: str,
        sdp: str,
        type: str,
        on_viewer: Callable[[Callable[[], Awaitable[None]]], None] | None = None,
    ) -> tuple[str, str]:
        """Answer a browser's SDP offer (non-trickle: the answer carries all our candidates).

        ``on_viewer`` is handed a coroutine function that hangs this viewer up (for a viewer whose
        right to watch can end, such as a share link's). Raises StreamNotFound, or OfferError (a
        ValueError) with a reason for a bad offer.
        """
        stream = self._get(stream_key)
        if type != "offer":
            raise OfferError(f"expected an SDP offer, got {type!r}")
        check_video_offer(sdp)
        sdp, dropped = filter_candidates(sdp, self.ice_hosts)
        if dropped:
            log.debug("video %s: dropped %d remote candidates outside %s", stream_key, dropped, self.ice_hosts)
        answer_sdp, answer_type, hang_up = await answer_viewer(
            stream, sdp, ice_servers=self.ice_servers, connect_timeout_s=self.connect_timeout_s,
            closing=self._closing, label=f"video {stream_key}",
        )  # fmt: skip
        if on_viewer is not None:
            on_viewer(hang_up)
        return answer_sdp, answer_type

    # --- snapshots ------------------------------------------------------------------------------

    async def snapshot_jpeg(self, stream_key: str, *, wait_s: float = 3.0, max_age_s: float | None = 5.0) -> bytes:
        """JPEG of the latest keyframe.

        A keyframe older than ``max_age_s`` (a stalled stream) does not count: the call waits up to
        ``wait_s`` for a fresh one, then raises SnapshotError rather than return an old picture.
        """
        stream = self._get(stream_key)
        loop_deadline = asyncio.get_running_loop().time() + wait_s

        def fresh() -> VideoUnit | None:
            unit = stream.last_keyframe
            if unit is None or (max_age_s is not None and time.monotonic() - unit.received > max_age_s):
                return None
            return unit

        while (unit := fresh()) is None:
            remaining = loop_deadline - asyncio.get_running_loop().time()
            if remaining <= 0:
                raise SnapshotError(f"no recent picture from {stream_key!r}")
            stream.keyframe_seen.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stream.keyframe_seen.wait(), remaining)
        if stream._jpeg is not None and stream._jpeg[0] is unit:
            return stream._jpeg[1]
        data = await asyncio.to_thread(keyframe_jpeg, unit.data)
        stream._jpeg = (unit, data)
        return data

    # --- recordings -----------------------------------------------------------------------------

    async def start_recording(
        self, stream_key: str, path: Path | str, on_error: Callable[[BaseException], None] | None = None
    ) -> None:
        """Record the stream to ``path`` (MP4) and ``path`` with ``.vtt`` (telemetry), from the next IDR;
        ``on_error`` is called once, from the writer's thread, if writing fails (a full disk)."""
        stream = self._get(stream_key)
        if stream.recorder is not None:
            raise RuntimeError(f"{stream_key!r} is already recording to {stream.recorder.path}")
        stream.recorder = await asyncio.to_thread(Recorder, Path(path), on_error)

    async def stop_recording(self, stream_key: str) -> RecordingInfo:
        stream = self._get(stream_key)
        info = await self._finish_recording(stream)
        if info is None:
            raise RuntimeError(f"{stream_key!r} is not recording")
        return info

    def add_telemetry(self, stream_key: str, t: float, lat: float, lon: float, alt: float, heading: float) -> None:
        """Telemetry for the recording's subtitle track; ``t`` is wall-clock seconds (time.time())."""
        stream = self._streams.get(stream_key)
        if stream is not None and stream.recorder is not None:
            stream.recorder.add_telemetry(TelemetrySample(t, lat, lon, alt, heading))

    async def _finish_recording(self, stream: _Stream) -> RecordingInfo | None:
        recorder, stream.recorder = stream.recorder, None
        if recorder is None:
            return None
        return await asyncio.to_thread(recorder.finish)
