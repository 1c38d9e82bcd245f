"""Recordings: MP4 remuxed without re-encoding, WebVTT telemetry beside it, hashes; file playback as a source."""

from __future__ import annotations

import asyncio
import hashlib
import json
import subprocess
import time
from pathlib import Path

import av

from dronedispatch.sim.camera import SimCamera
from dronedispatch.video import formats
from dronedispatch.video.recording import format_vtt_time
from dronedispatch.video.relay import VideoHub

from .conftest import FPS, HEIGHT, WIDTH, connect_viewer


def ffprobe(path: Path, *args: str) -> dict:
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-print_format", "json", *args, str(path)],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout)


def first_and_last_stamps(path: Path) -> tuple[formats.Stamp, formats.Stamp, int]:
    with av.open(str(path)) as container:
        stamps = [formats.read_stamp(f.to_ndarray(format="gray")) for f in container.decode(video=0)]
    read = [s for s in stamps if s is not None]
    return read[0], read[-1], len(stamps)


async def test_recording_plays_back_with_its_duration_and_subtitles(
    hub: VideoHub, camera: SimCamera, tmp_path: Path
) -> None:
    await hub.ensure_stream("d1", f"udp://127.0.0.1:{camera.target[1]}")
    await camera.start()
    await hub.snapshot_jpeg("d1", wait_s=20)  # the stream is live
    path = tmp_path / "mission-1.mp4"
    await hub.start_recording("d1", path)
    times: list[float] = []
    while len(times) < 25:  # telemetry at ~10 Hz while the video records
        times.append(time.time())
        hub.add_telemetry("d1", times[-1], 37.39 + len(times) * 1e-5, 126.63, 50.0 + len(times), 90.0)
        await asyncio.sleep(0.1)
    info = await hub.stop_recording("d1")

    assert info.path == path and info.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    probe = ffprobe(path, "-show_format", "-show_streams", "-count_frames")
    (video,) = probe["streams"]
    assert video["codec_name"] == "h264" and video["profile"] in ("Constrained Baseline", "Baseline")
    assert (video["width"], video["height"]) == (WIDTH, HEIGHT)
    assert int(video["nb_read_frames"]) == info.frames
    assert abs(float(probe["format"]["duration"]) - info.duration_s) < 2 / FPS
    # The pixel clocks of the first and last pictures agree with the container's duration.
    first, last, decoded = first_and_last_stamps(path)
    assert decoded == info.frames
    assert abs((last.time_us - first.time_us) / 1e6 + 1 / FPS - info.duration_s) < 0.2

    vtt = info.vtt_path.read_text()
    assert vtt.startswith("WEBVTT") and info.vtt_sha256 == hashlib.sha256(vtt.encode()).hexdigest()
    subs = ffprobe(info.vtt_path, "-show_streams", "-show_packets")
    assert subs["streams"][0]["codec_name"] == "webvtt"
    cues = subs["packets"]
    # The video starts at the first IDR after start_recording; samples that ended before it have no cue.
    assert info.started_at is not None
    video_start = info.started_at.timestamp()
    expected = sum(1 for k in range(len(times)) if k == len(times) - 1 or times[k + 1] > video_start)
    assert len(cues) == expected
    assert f"alt={50 + len(times):.1f}m" in vtt and "lon=126.6300000" in vtt
    assert float(cues[-1]["pts_time"]) <= info.duration_s


def test_vtt_time_format() -> None:
    assert format_vtt_time(3723.4567) == "01:02:03.457"
    assert format_vtt_time(-1) == "00:00:00.000"


async def test_a_recorded_file_can_be_served_as_a_stream(hub: VideoHub, camera: SimCamera, tmp_path: Path) -> None:
    await hub.ensure_stream("live", f"udp://127.0.0.1:{camera.target[1]}")
    await camera.start()
    await hub.snapshot_jpeg("live", wait_s=20)
    path = tmp_path / "clip.mp4"
    await hub.start_recording("live", path)
    await asyncio.sleep(2.5)
    info = await hub.stop_recording("live")
    await hub.stop_stream("live")
    assert info.frames > 0

    # The PyAV pull path (what rtsp:// uses): MP4 packets are converted to Annex B and paced.
    await hub.ensure_stream("file", f"file://{path}")
    viewer = await connect_viewer(hub, "file")
    try:
        await viewer.wait_frames(5)
        assert all(
            later.counter > earlier.counter for earlier, later in zip(viewer.stamps, viewer.stamps[1:], strict=False)
        )
    finally:
        await viewer.close()
