"""Evidence from a stream: mission recordings (MP4 + WebVTT telemetry) and JPEG snapshots.

Recordings: the H.264 stream remuxed to MP4 as it arrives, plus a WebVTT telemetry track.

Nothing is re-encoded: access units from the ingest go into PyAV's MP4 muxer, which converts
Annex B to the length-prefixed form MP4 wants and builds the avcC box from the first IDR's
SPS/PPS. A recording therefore starts at the first IDR after ``start`` (at most one GOP, 1 s from
the simulator). Muxing runs in a worker thread fed by a queue so disk writes never stall the event
loop. The telemetry track sits beside the video as ``<name>.vtt``: one cue per telemetry sample,
timed from the wall-clock instant the first recorded picture arrived, lasting until the next
sample. ``finish`` closes both files and returns their SHA-256, for the audit log; a recording
that never saw an IDR leaves an empty MP4 and reports ``frames == 0``.

Snapshots: only IDRs are decoded (PyAV) and encoded as JPEG (OpenCV) — an IDR stands alone, so no
decoder has to follow the stream and the relay path stays decode-free. With a 1 s GOP a snapshot
is at most about a second old.
"""

from __future__ import annotations

import errno
import hashlib
import logging
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
from numpy.typing import NDArray

from dronedispatch.video.h264 import VIDEO_CLOCK
from dronedispatch.video.ingest import VideoUnit

log = logging.getLogger(__name__)

_LAST_CUE_S = 1.0


@dataclass(frozen=True, slots=True)
class RecordingInfo:
    path: Path
    sha256: str
    """SHA-256 of the MP4 file, hex."""
    duration_s: float
    vtt_path: Path
    vtt_sha256: str
    frames: int
    started_at: datetime | None
    """UTC wall-clock time of the first recorded picture (None if nothing was recorded)."""
    error: str | None = None
    """Why writing stopped (a full disk, an I/O error); the half-written files were removed."""


@dataclass(frozen=True, slots=True)
class TelemetrySample:
    t: float
    """Wall-clock time of the sample, seconds since the epoch (time.time())."""
    lat: float
    lon: float
    alt: float
    heading: float


def format_vtt_time(seconds: float) -> str:
    ms = max(0, round(seconds * 1000))
    h, rem = divmod(ms, 3_600_000)
    m, rem = divmod(rem, 60_000)
    s, ms = divmod(rem, 1000)
    return f"{h:02d}:{m:02d}:{s:02d}.{ms:03d}"


def format_cue(sample: TelemetrySample, start: float, end: float) -> str:
    utc = datetime.fromtimestamp(sample.t, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return (
        f"{format_vtt_time(start)} --> {format_vtt_time(end)}\n"
        f"lat={sample.lat:.7f} lon={sample.lon:.7f} alt={sample.alt:.1f}m hdg={sample.heading % 360:.1f} utc={utc}\n\n"
    )


class Recorder:
    """One recording in progress. Call ``write`` for every unit and ``add_telemetry`` from the loop."""

    def __init__(self, path: Path, on_error: Callable[[BaseException], None] | None = None) -> None:
        """``on_error`` is called once, from the writer thread, when writing fails (the disk is full)."""
        self.path = Path(path)
        self._on_error = on_error
        self.vtt_path = self.path.with_suffix(".vtt")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.frames = 0
        self._first_pts: int | None = None
        self._last_pts = 0
        self._step = VIDEO_CLOCK // 30
        self._video_start: float | None = None
        self._early: list[TelemetrySample] = []
        self._pending: TelemetrySample | None = None
        self._queue: queue.SimpleQueue[VideoUnit | str | None] = queue.SimpleQueue()
        self._vtt = self.vtt_path.open("w", encoding="utf-8")
        self._vtt.write("WEBVTT - dronedispatch telemetry\n\n")
        self._thread = threading.Thread(target=self._mux, name=f"recorder {self.path.name}", daemon=True)
        self._error: BaseException | None = None
        self._thread.start()

    # --- event loop side ------------------------------------------------------------------------

    def write(self, unit: VideoUnit) -> None:
        if self._first_pts is None:
            if not unit.keyframe:
                return
            self._first_pts = unit.pts
            self._video_start = unit.wallclock
            for sample in self._early:
                self.add_telemetry(sample)
            self._early.clear()
        elif unit.pts <= self._last_pts:
            return
        else:
            self._step = unit.pts - self._last_pts
        self._last_pts = unit.pts
        self.frames += 1
        self._queue.put(unit)

    def add_telemetry(self, sample: TelemetrySample) -> None:
        if self._video_start is None:
            self._early.append(sample)
            return
        if self._pending is not None and sample.t > self._pending.t:
            self._cue(self._pending, sample.t)
        if self._pending is None or sample.t > self._pending.t:
            self._pending = sample

    def _cue(self, sample: TelemetrySample, until: float) -> None:
        assert self._video_start is not None
        start, end = max(0.0, sample.t - self._video_start), until - self._video_start
        if end > start:
            self._queue.put(format_cue(sample, start, end))

    @property
    def duration_s(self) -> float:
        if self._first_pts is None:
            return 0.0
        return (self._last_pts - self._first_pts + self._step) / VIDEO_CLOCK

    def finish(self) -> RecordingInfo:
        """Close the files and hash them (blocking: run it in a thread)."""
        duration = self.duration_s
        if self._pending is not None and self._video_start is not None:
            end = min(self._pending.t + _LAST_CUE_S, self._video_start + max(duration, 0.001))
            self._cue(self._pending, max(end, self._pending.t + 0.001))
        self._queue.put(None)
        self._thread.join()
        started = datetime.fromtimestamp(self._video_start, UTC) if self._video_start else None
        if self._error is not None:
            # a file cut short is no evidence (an MP4 without its index does not even play): remove both
            log.warning("recording %s ended with an error: %s; removed", self.path, self._error)
            for p in (self.path, self.vtt_path):
                p.unlink(missing_ok=True)
            return RecordingInfo(path=self.path, sha256="", duration_s=duration, vtt_path=self.vtt_path,
                                 vtt_sha256="", frames=self.frames, started_at=started,
                                 error=_describe(self._error))  # fmt: skip
        return RecordingInfo(
            path=self.path,
            sha256=_sha256(self.path),
            duration_s=duration,
            vtt_path=self.vtt_path,
            vtt_sha256=_sha256(self.vtt_path),
            frames=self.frames,
            started_at=started,
        )

    # --- worker thread ----------------------------------------------------------------------------

    def _mux(self) -> None:
        container: av.container.OutputContainer | None = None
        stream = None
        try:
            while (item := self._queue.get()) is not None:
                if isinstance(item, str):
                    self._vtt.write(item)
                    self._vtt.flush()
                    continue
                if container is None:
                    width, height = _picture_size(item.data)
                    container = av.open(str(self.path), "w", format="mp4", options={"movflags": "+faststart"})
                    stream = container.add_stream("h264", rate=30)
                    stream.width, stream.height = width, height
                    stream.time_base = Fraction(1, VIDEO_CLOCK)
                assert stream is not None and self._first_pts is not None
                packet = av.Packet(item.data)
                packet.pts = packet.dts = item.pts - self._first_pts
                packet.time_base = Fraction(1, VIDEO_CLOCK)
                packet.is_keyframe = item.keyframe
                packet.stream = stream
                container.mux(packet)
        except BaseException as exc:
            self._failed(exc)
            while self._queue.get() is not None:
                pass
        finally:
            # closing writes the MP4's index and flushes the subtitles: on a full disk that fails too
            try:
                if container is not None:
                    container.close()
                else:
                    self.path.touch()
            except BaseException as exc:
                self._failed(exc)
            try:
                self._vtt.close()
            except OSError as exc:
                self._failed(exc)

    def _failed(self, exc: BaseException) -> None:
        if self._error is not None:
            return
        self._error = exc
        if self._on_error is not None:
            try:
                self._on_error(exc)
            except Exception:
                log.exception("recording %s: the error callback failed", self.path)


def _describe(exc: BaseException) -> str:
    """A person's reason for a failed write: 'disk full' rather than a raw errno."""
    errno_ = getattr(exc, "errno", None)
    if errno_ in (errno.ENOSPC, errno.EFBIG, errno.EDQUOT):
        return f"no room left to write the recording ({exc})"
    return str(exc) or type(exc).__name__


def _picture_size(access_unit: bytes) -> tuple[int, int]:
    """Width and height of an IDR access unit, by decoding it once (only at the start of a recording)."""
    height, width = decode_keyframe(access_unit).shape[:2]
    return width, height


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


# --- snapshots ------------------------------------------------------------------------------------


class SnapshotError(RuntimeError):
    """No picture could be produced (no keyframe yet, or it does not decode)."""


def decode_keyframe(access_unit: bytes) -> NDArray[np.uint8]:
    """BGR pixels of one IDR access unit (Annex B with SPS/PPS)."""
    decoder = av.CodecContext.create("h264", "r")
    try:
        frames = [*decoder.decode(av.Packet(access_unit)), *decoder.decode(None)]
    except av.error.FFmpegError as exc:
        raise SnapshotError(f"keyframe does not decode: {exc}") from exc
    if not frames:
        raise SnapshotError("keyframe produced no picture")
    image: NDArray[np.uint8] = frames[0].to_ndarray(format="bgr24")  # type: ignore[assignment]
    return image


def keyframe_jpeg(access_unit: bytes, quality: int = 85) -> bytes:
    """Decode an IDR and return it as JPEG bytes (blocking: run it in a thread)."""
    ok, buf = cv2.imencode(".jpg", decode_keyframe(access_unit), [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise SnapshotError("JPEG encoding failed")
    return buf.tobytes()
