"""Pure helpers: VIDEO_STREAM_INFORMATION URIs, SDP candidate filtering, the 90 kHz timeline."""

from __future__ import annotations

import pytest

from dronedispatch.video.formats import (
    OfferError,
    VideoStreamType,
    check_video_offer,
    filter_candidates,
    parse_stream_uri,
    simulator_uri,
)
from dronedispatch.video.ingest import Timeline

OFFER = "\r\n".join(
    [
        "v=0",
        "o=- 1 2 IN IP4 127.0.0.1",
        "s=-",
        "t=0 0",
        "m=video 9 UDP/TLS/RTP/SAVPF 96 102",
        "a=rtpmap:96 VP8/90000",
        "a=rtpmap:102 H264/90000",
        "a=fmtp:102 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f",
        "a=candidate:1 1 udp 2122260223 192.0.2.2 40000 typ host generation 0",
        "a=candidate:2 1 udp 2122260223 127.0.0.1 40001 typ host generation 0",
        "a=candidate:3 1 udp 2122260223 0b5e7a6c-1111-2222-3333-444455556666.local 40002 typ host",
        "a=candidate:4 1 udp 1686052607 203.0.113.9 40003 typ srflx raddr 192.0.2.2 rport 40000",
        "a=end-of-candidates",
        "",
    ]
)


def test_simulator_uri_parses_to_a_loopback_listener() -> None:
    src = parse_stream_uri(simulator_uri(3))
    assert (src.kind, src.host, src.port) == ("rtp-udp", "127.0.0.1", 5603)


@pytest.mark.parametrize("uri", ["udp://0.0.0.0:5600", "udp://:5600", "udp://@:5600", "5600"])
def test_wildcard_udp_hosts_listen_on_loopback(uri: str) -> None:
    src = parse_stream_uri(uri)
    assert (src.host, src.port) == ("127.0.0.1", 5600)


def test_rtsp_and_files_are_pulled() -> None:
    assert parse_stream_uri("rtsp://127.0.0.1:8554/live", VideoStreamType.RTSP).kind == "pull"
    assert parse_stream_uri("file:///tmp/x.mp4").uri == "/tmp/x.mp4"


@pytest.mark.parametrize(
    "uri", ["", "udp://127.0.0.1", "udp://127.0.0.1:99999", "gopher://x:1", "rtsp://", "camera0", "\x00"]
)
def test_bad_uris_say_why(uri: str) -> None:
    with pytest.raises(ValueError, match=r"\w"):
        parse_stream_uri(uri)


def test_udp_uri_with_a_non_rtp_type_is_refused() -> None:
    with pytest.raises(ValueError, match="stream type"):
        parse_stream_uri("udp://127.0.0.1:5600", VideoStreamType.MPEG_TS)


def test_only_allowed_candidates_remain() -> None:
    sdp, removed = filter_candidates(OFFER, ["127.0.0.1"])
    assert removed == 3
    cands = [line for line in sdp.split("\r\n") if line.startswith("a=candidate")]
    assert cands == ["a=candidate:2 1 udp 2122260223 127.0.0.1 40001 typ host generation 0"]
    assert "a=end-of-candidates" in sdp and sdp.endswith("\r\n")


def test_offer_checks() -> None:
    check_video_offer(OFFER)
    with pytest.raises(OfferError, match=r"H\.264"):
        check_video_offer(OFFER.replace("H264/90000", "VP9/90000"))
    with pytest.raises(OfferError, match="packetization-mode"):
        check_video_offer(OFFER.replace("packetization-mode=1", "packetization-mode=0"))
    with pytest.raises(OfferError, match="no video"):
        check_video_offer(OFFER.replace("m=video", "m=audio"))
    with pytest.raises(OfferError):
        check_video_offer("hello")


def test_timeline_is_continuous_across_wraps_and_restarts() -> None:
    tl = Timeline(32)
    pts = [tl.map(0xFFFFFA00, 0.0), tl.map(0x000005B8, 0.033)]  # across the wrap: +3000
    pts.append(tl.map(123, 0.533))  # a new source: time jumps back, arrival says +0.5 s
    pts.append(tl.map(3123, 0.566))
    assert pts == [0, 3000, 3000 + 45000, 3000 + 45000 + 3000]
