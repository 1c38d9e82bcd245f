"""The fan-out shared by the drone relay and the fixed cameras' relay: one source of H.264 access
units, many WebRTC viewers, no re-encoding.

How the passthrough works. aiortc's ``RTCRtpSender`` asks its track for the next item: an
``av.VideoFrame`` goes through the codec's ``encode()`` (a libx264 re-encode), but an ``av.Packet``
goes through the codec's ``pack()``, which for H.264 only splits the Annex B bytes into NAL units
and packetizes them (RFC 6184 packetization-mode 1, STAP-A/FU-A). ``PassthroughTrack`` therefore
yields the access units as ``av.Packet`` objects with a 90 kHz time base, and the transceiver is
restricted to H.264 with ``setCodecPreferences`` so that ``pack()`` is the H.264 one. This is the
same path aiortc's own ``MediaPlayer(decode=False)`` uses. A new viewer starts at the next IDR; a
viewer that falls behind (its queue fills) is cut back to the next IDR rather than delayed, so
latency never accumulates.

Network. ICE servers are empty unless configured, so nothing contacts STUN. aioice gathers host
candidates from ``aioice.ice.get_host_addresses()``, which skips loopback; ``restrict_ice_hosts``
replaces that module function with one returning the configured ``ice_hosts`` (127.0.0.1 by
default). It is process-wide, as aioice offers no per-connection hook, and also applies to aiortc
clients in the same process. Remote candidates outside ``ice_hosts`` are removed from the offer
before ``setRemoteDescription`` (``checked_offer``), so aioice never sends mDNS queries.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

import aioice.ice
import av
from aiortc import RTCConfiguration, RTCIceServer, RTCPeerConnection, RTCRtpSender, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from aiortc.rtcrtpparameters import RTCRtpCodecCapability

from dronedispatch.video.formats import OfferError, check_video_offer, filter_candidates
from dronedispatch.video.h264 import VIDEO_CLOCK
from dronedispatch.video.ingest import IngestState, VideoUnit

log = logging.getLogger(__name__)

_TIME_BASE = Fraction(1, VIDEO_CLOCK)
_VIEWER_QUEUE = 8
"""Access units a viewer may have waiting (~0.25 s at 30 fps) before it is cut back to the next IDR."""


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

    def __init__(self, stream: FanOut) -> None:
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
class FanOut:
    """One source of H.264 access units handed to many viewers' passthrough tracks.

    Keeps the latest keyframe (for snapshots and for whoever waits on ``keyframe_seen``) and wakes
    ``state_changed`` waiters on every source state change. The drone relay feeds one from a vehicle's
    ingest (and records from it); the fixed cameras' relay feeds one from an RTSP pull.
    """

    key: str
    uri: str
    tracks: set[PassthroughTrack] = field(default_factory=set)
    peers: set[RTCPeerConnection] = field(default_factory=set)
    last_keyframe: VideoUnit | None = None
    keyframe_seen: asyncio.Event = field(default_factory=asyncio.Event)
    state_changed: asyncio.Event = field(default_factory=asyncio.Event)

    def on_unit(self, unit: VideoUnit) -> None:
        if unit.keyframe:
            self.last_keyframe = unit
            self.keyframe_seen.set()
        for track in tuple(self.tracks):
            track.push(unit)

    def on_state(self, state: IngestState) -> None:
        if state == IngestState.STALLED:
            for track in self.tracks:
                track.resync()
        # Wake whoever waits for a change, and arm a fresh event for the next one.
        changed, self.state_changed = self.state_changed, asyncio.Event()
        changed.set()

    async def hang_up_all(self) -> None:
        """Close every viewer's peer connection and stop its track."""
        await asyncio.gather(*(pc.close() for pc in tuple(self.peers)), return_exceptions=True)
        for track in tuple(self.tracks):
            track.stop()


def checked_offer(sdp: str, type: str, ice_hosts: Sequence[str], label: str) -> str:
    """A browser's offer checked (an SDP offer with H.264 video) and its remote candidates outside
    ``ice_hosts`` removed; raises OfferError with the reason."""
    if type != "offer":
        raise OfferError(f"expected an SDP offer, got {type!r}")
    check_video_offer(sdp)
    sdp, dropped = filter_candidates(sdp, ice_hosts)
    if dropped:
        log.debug("%s: dropped %d remote candidates outside %s", label, dropped, list(ice_hosts))
    return sdp


async def answer_viewer(
    stream: FanOut,
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
