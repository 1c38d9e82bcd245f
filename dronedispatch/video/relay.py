"""The drone relay: one ingest per vehicle stream, fanned out to every viewer without re-encoding
(:mod:`dronedispatch.video.fanout` explains the passthrough and the network limits), with snapshots
and recordings. The simulator sends an IDR every second, so a new viewer starts within one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

# restrict_ice_hosts, rtc_configuration and h264_preferences are also the relay's API for callers
# that set up WebRTC beside it (clients in tests and benchmarks).
from dronedispatch.video.fanout import (
    FanOut,
    answer_viewer,
    checked_offer,
    restrict_ice_hosts,
)
from dronedispatch.video.fanout import h264_preferences as h264_preferences
from dronedispatch.video.fanout import rtc_configuration as rtc_configuration
from dronedispatch.video.ingest import IngestState, StreamIngest, VideoUnit
from dronedispatch.video.recording import Recorder, RecordingInfo, SnapshotError, TelemetrySample, keyframe_jpeg

if TYPE_CHECKING:
    from dronedispatch.settings import Settings

log = logging.getLogger(__name__)


class StreamNotFound(LookupError):
    """No stream is known under this key (the vehicle has not announced video, or it was stopped)."""


@dataclass(eq=False)
class _Stream(FanOut):
    """A vehicle's stream: the fan-out fed by its ingest, and its recording if one runs."""

    ingest: StreamIngest | None = None
    recorder: Recorder | None = None
    _jpeg: tuple[VideoUnit, bytes] | None = None

    def on_unit(self, unit: VideoUnit) -> None:
        super().on_unit(unit)
        if self.recorder is not None:
            self.recorder.write(unit)


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
        await stream.hang_up_all()
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
        sdp = checked_offer(sdp, type, self.ice_hosts, f"video {stream_key}")
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
