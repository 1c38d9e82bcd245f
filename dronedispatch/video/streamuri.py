"""Where a vehicle's video comes from: the URI of VIDEO_STREAM_INFORMATION (pure logic, no I/O).

PX4 and the simulator announce ``udp://127.0.0.1:5600`` (RTP/H.264 pushed to the ground station,
which listens) or an ``rtsp://`` URL (the ground station pulls). A UDP URI names the port the
receiver binds; its host is where the receiver listens, and a wildcard or empty host is narrowed to
loopback because the service binds nothing else unless configured.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from urllib.parse import urlsplit


class VideoStreamType(IntEnum):
    """MAV_VIDEO_STREAM_TYPE."""

    RTSP = 0
    RTPUDP = 1
    TCP_MPEG = 2
    MPEG_TS = 3


@dataclass(frozen=True, slots=True)
class StreamSource:
    kind: str
    """'rtp-udp' (we listen for RTP/H.264) or 'pull' (PyAV opens the URL: rtsp://, files …)."""
    uri: str
    host: str = "127.0.0.1"
    port: int = 0


_PULL_SCHEMES = {"rtsp", "rtsps", "rtmp", "http", "https", "file", "srt"}


def parse_stream_uri(uri: str, stream_type: int | None = None, *, listen_host: str = "127.0.0.1") -> StreamSource:
    """Turn a VIDEO_STREAM_INFORMATION uri (and its type, when known) into a source to open.

    Raises ValueError with the reason when the URI cannot be used.
    """
    text = uri.strip().rstrip("\x00")
    if not text:
        raise ValueError("empty video stream URI")
    if "://" not in text:
        # Some autopilots send a bare port ("5600") for RTP over UDP.
        if text.isdigit() and (stream_type in (None, VideoStreamType.RTPUDP)):
            text = f"udp://{listen_host}:{text}"
        elif text.startswith("/"):
            return StreamSource(kind="pull", uri=text)
        else:
            raise ValueError(f"video stream URI without a scheme: {uri!r}")
    parts = urlsplit(text)
    scheme = parts.scheme.lower()
    if scheme == "udp":
        if stream_type not in (None, VideoStreamType.RTPUDP):
            raise ValueError(f"udp:// URI with stream type {stream_type}, only RTP/UDP is supported")
        try:
            port = parts.port
        except ValueError as exc:
            raise ValueError(f"bad port in video stream URI {uri!r}") from exc
        if port is None or not 0 < port < 65536:
            raise ValueError(f"video stream URI {uri!r} names no port")
        host = (parts.hostname or "").strip("@")
        if host in ("", "0.0.0.0", "::", "*"):
            host = listen_host
        return StreamSource(kind="rtp-udp", uri=text, host=host, port=port)
    if scheme in _PULL_SCHEMES:
        if scheme != "file" and not parts.hostname:
            raise ValueError(f"video stream URI {uri!r} names no host")
        return StreamSource(kind="pull", uri=text[len("file://") :] if scheme == "file" else text)
    raise ValueError(f"unsupported video stream URI scheme {scheme!r}")


def simulator_uri(instance: int, host: str = "127.0.0.1", base_port: int = 5600) -> str:
    """The URI the simulator (and PX4 SITL) announce for instance i: RTP to 5600+i."""
    return f"udp://{host}:{base_port + instance}"
