"""The simulated CCTV cameras over RTSP: ffprobe and PyAV (FFmpeg's RTSP client) against our server.

The server and its cameras run on an event loop in a thread of their own, so the clients here are
the blocking ones a real deployment meets: Debian's ffprobe as a child process and PyAV's demuxer.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import socket
import struct
import subprocess
import threading
import time
from collections.abc import Callable, Coroutine, Iterator
from typing import Any, TypeVar

import av
import pytest

from dronedispatch.sim.cctv import CameraEvent, SimCctv
from dronedispatch.sim.rtsp_server import RtspServer
from dronedispatch.video import formats

T = TypeVar("T")
W, H = 320, 180


class ServerThread:
    """An RtspServer on its own loop in a daemon thread."""

    def __init__(self, cameras: dict[str, SimCctv], **kwargs: Any) -> None:
        self.cameras = cameras
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.server = RtspServer(cameras, port=0, **kwargs)
        self.run(self.server.start())

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(30)

    def call(self, fn: Callable[[], T]) -> T:
        async def wrapped() -> T:
            return fn()

        return self.run(wrapped())

    def url(self, camera_id: str) -> str:
        return self.server.url(camera_id)

    def close(self) -> None:
        self.run(self.server.stop())
        for cam in self.cameras.values():
            self.run(cam.close())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


@pytest.fixture(scope="module")
def rtsp() -> Iterator[ServerThread]:
    cams = {c: SimCctv(c, name, width=W, height=H, fps=25) for c, name in (("cam-a", "Camera A"), ("cam-b", "B"))}
    st = ServerThread(cams)
    yield st
    st.close()


def _wait(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached")
        time.sleep(0.05)


def _stamps(container: Any, n: int) -> list[formats.Stamp]:
    stamps = []
    for frame in container.decode(video=0):
        stamp = formats.read_stamp(frame.to_ndarray(format="gray"))
        assert stamp is not None, "every picture carries a readable pixel timestamp"
        stamps.append(stamp)
        if len(stamps) == n:
            return stamps
    raise AssertionError("the stream ended early")


def _open(url: str, transport: str = "tcp") -> Any:
    return av.open(url, options={"rtsp_transport": transport, "timeout": "4000000"}, timeout=8)


@pytest.mark.skipif(shutil.which("ffprobe") is None, reason="Debian's ffmpeg is part of the system packages")
@pytest.mark.parametrize("transport", ["tcp", "udp"])
def test_ffprobe_accepts_the_stream(rtsp: ServerThread, transport: str) -> None:
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-rtsp_transport", transport, "-show_streams", "-of", "json", rtsp.url("cam-a")],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    (stream,) = json.loads(out.stdout)["streams"]
    assert (stream["codec_name"], stream["width"], stream["height"]) == ("h264", W, H)
    assert stream["profile"] in ("Constrained Baseline", "Baseline")


def test_two_clients_share_one_encoder_and_the_clock_advances(rtsp: ServerThread) -> None:
    cam = rtsp.cameras["cam-b"]
    _wait(lambda: not cam.encoding)
    starts = cam.encoder_starts
    first = _open(rtsp.url("cam-b"))
    try:
        a = _stamps(first, 3)
        second = _open(rtsp.url("cam-b"), "udp")
        try:
            assert rtsp.call(lambda: cam.subscribers) == 2
            b = _stamps(second, 10)
            # The first client (TCP, nothing lost) reads on until it has seen the pictures the second saw.
            while a[-1].counter < b[-1].counter and len(a) < 300:
                a += _stamps(first, 1)
        finally:
            second.close()
    finally:
        first.close()
    assert cam.encoder_starts == starts + 1, "the second client joined the running encoder"
    for stamps in (a, b):
        now_us = time.time_ns() // 1000
        times = [formats.unwrap_time_us(s.time_us, now_us) for s in stamps]
        assert times == sorted(times) and times[-1] - times[0] >= 8 * 40_000  # 25 fps: 40 ms per picture
        assert abs(times[-1] - now_us) < 5e6, "the stamp is the wall clock at capture"
    # One encoder: the second client's pictures are pictures the first one saw too.
    assert {s.counter for s in b} <= {s.counter for s in a}
    assert {s.time_us for s in b} <= {s.time_us for s in a}
    # Both clients sent TEARDOWN: the encoder stops when nobody plays.
    _wait(lambda: not cam.encoding and cam.subscribers == 0)
    assert not rtsp.server.sessions


def test_reboot_drops_the_stream_refuses_then_plays_again(rtsp: ServerThread) -> None:
    cam = rtsp.cameras["cam-a"]
    seen: list[bool] = []
    unsubscribe = rtsp.call(lambda: cam.on_reboot(lambda c, online: seen.append(online)))
    container = _open(rtsp.url("cam-a"))
    try:
        _stamps(container, 2)
        rtsp.call(lambda: cam.reboot(3.0))
        with pytest.raises((av.error.FFmpegError, AssertionError, OSError)):
            _stamps(container, 200)  # 8 s of video: the stream ends long before
    finally:
        container.close()
    assert not cam.online and seen == [False]
    with pytest.raises(av.error.FFmpegError):
        _open(rtsp.url("cam-a")).close()
    status, headers = _ask(rtsp, "DESCRIBE", rtsp.url("cam-a"))
    assert status == 503 and int(headers["retry-after"]) >= 1
    _wait(lambda: cam.online, 10)
    assert seen == [False, True]
    again = _open(rtsp.url("cam-a"))
    try:
        assert len(_stamps(again, 3)) == 3
    finally:
        again.close()
    rtsp.call(unsubscribe)


def test_events_reach_listeners_unless_rebooting() -> None:
    cam = SimCctv("cam-e", width=W, height=H)
    events: list[CameraEvent] = []
    stop = cam.on_event(events.append)

    async def scenario() -> None:
        cam.raise_event("motion", True)
        cam.reboot(0.05)
        cam.raise_event("tamper", True)  # offline: not delivered
        await asyncio.sleep(0.1)
        cam.raise_event("motion", False)
        stop()
        cam.raise_event("motion", True)
        await cam.close()

    asyncio.run(scenario())
    assert [(e.camera_id, e.topic, e.active) for e in events] == [("cam-e", "motion", True), ("cam-e", "motion", False)]
    assert cam.active_events == {"motion": True}


# --- the protocol by hand ---------------------------------------------------------------------------


def _raw(rtsp: ServerThread, data: bytes, sock: socket.socket | None = None) -> tuple[int, dict[str, str], bytes]:
    own = sock is None
    s = sock or socket.create_connection(("127.0.0.1", rtsp.server.port), timeout=5)
    try:
        s.sendall(data)
        buf = b""
        while b"\r\n\r\n" not in buf:
            chunk = s.recv(4096)
            if not chunk:
                break
            buf += chunk
        head, _, body = buf.partition(b"\r\n\r\n")
        lines = head.decode().split("\r\n")
        headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
        length = int(headers.get("content-length", "0"))
        while len(body) < length:
            body += s.recv(4096)
        return int(lines[0].split()[1]), headers, body
    finally:
        if own:
            s.close()


def _ask(rtsp: ServerThread, method: str, url: str, sock: socket.socket | None = None, **headers: str) -> Any:
    lines = [f"{method} {url} RTSP/1.0", "CSeq: 7"] + [f"{k.replace('_', '-')}: {v}" for k, v in headers.items()]
    status, reply, _ = _raw(rtsp, ("\r\n".join(lines) + "\r\n\r\n").encode(), sock)
    if "cseq" in reply:
        assert reply["cseq"] == "7"
    return status, reply


def test_errors_are_rtsp_replies_and_never_stop_the_server(rtsp: ServerThread) -> None:
    base = f"rtsp://127.0.0.1:{rtsp.server.port}"
    assert _ask(rtsp, "DESCRIBE", f"{base}/no-such-camera")[0] == 404
    assert _ask(rtsp, "DESCRIBE", f"{base}/cam-a/trackID=9")[0] == 404
    assert _ask(rtsp, "PLAY", f"{base}/cam-a")[0] == 455  # before SETUP
    assert _ask(rtsp, "PLAY", f"{base}/cam-a", Session="DEADBEEF")[0] == 454
    assert _ask(rtsp, "TEARDOWN", f"{base}/cam-a", Session="DEADBEEF")[0] == 454
    assert _ask(rtsp, "FROB", f"{base}/cam-a")[0] == 501
    assert _ask(rtsp, "RECORD", f"{base}/cam-a")[0] == 405
    multicast = "RTP/AVP;multicast;port=5000-5001"
    assert _ask(rtsp, "SETUP", f"{base}/cam-a/trackID=0", Transport=multicast)[0] == 461
    assert _ask(rtsp, "SETUP", f"{base}/cam-a/trackID=0")[0] == 461
    assert _ask(rtsp, "SETUP", f"{base}/cam-a/trackID=0", Transport="RTP/AVP;unicast;client_port=x")[0] == 400
    for junk in (
        b"hello there\r\n\r\n",
        b"OPTIONS * RTSP/1.0\r\n\r\n",  # no CSeq
        b"OPTIONS * RTSP/2.0\r\nCSeq: 1\r\n\r\n",
        b"OPTIONS * RTSP/1.0\r\nCSeq: 1\r\nno colon here\r\n\r\n",
        b"DESCRIBE rtsp://127.0.0.1/cam-a RTSP/1.0\r\nCSeq: 1\r\nContent-Length: -3\r\n\r\n",
        b"OPTIONS * RTSP/1.0\r\nCSeq: 1\r\nX: " + b"a" * 20_000 + b"\r\n\r\n",
        b"\xff\xfe\x00garbage\r\n\r\n",
    ):
        status, _, _ = _raw(rtsp, junk)
        assert status in (400, 413, 505), junk[:40]
    # Interleaved junk and a half-sent request: the connection just ends.
    with socket.create_connection(("127.0.0.1", rtsp.server.port), timeout=5) as s:
        s.sendall(b"$\x01\x00\x04abcdDESCRIBE rtsp://127.0.0.1/cam-a RTSP/1.0\r\nCSe")
    status, headers = _ask(rtsp, "OPTIONS", f"{base}/cam-a")
    assert status == 200 and "DESCRIBE" in headers["public"]


def test_describe_setup_play_over_udp_and_session_timeout() -> None:
    cam = SimCctv("cam-u", width=W, height=H, fps=25)
    st = ServerThread({"cam-u": cam}, session_timeout=1.0)
    rtp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    rtp.bind(("127.0.0.1", 0))
    rtp.settimeout(5)
    try:
        url = st.url("cam-u")
        with socket.create_connection(("127.0.0.1", st.server.port), timeout=5) as s:
            status, headers, sdp = _raw(st, f"DESCRIBE {url} RTSP/1.0\r\nCSeq: 7\r\n\r\n".encode(), s)
            text = sdp.decode()
            assert status == 200 and headers["content-type"] == "application/sdp"
            assert "m=video 0 RTP/AVP 96" in text and "a=rtpmap:96 H264/90000" in text
            assert "packetization-mode=1" in text and "sprop-parameter-sets=Z" in text  # base64 of an SPS (0x67)
            assert "a=control:trackID=0" in text
            port = rtp.getsockname()[1]
            transport = f"RTP/AVP;unicast;client_port={port}-{port + 1};destination=192.0.2.1"
            status, headers = _ask(st, "SETUP", headers["content-base"] + "trackID=0", s, Transport=transport)
            assert status == 200
            assert f"client_port={port}-{port + 1}" in headers["transport"] and "server_port=" in headers["transport"]
            sid, _, timeout = headers["session"].partition(";")
            assert timeout == "timeout=1"
            ssrc = int(headers["transport"].split("ssrc=")[1], 16)
            status, headers = _ask(st, "PLAY", url, s, Session=sid)
            assert status == 200 and "rtptime=" in headers["rtp-info"]
            first_seq = int(headers["rtp-info"].split("seq=")[1].split(";")[0])
            seqs, markers = [], 0
            while markers < 5:
                packet, sender = rtp.recvfrom(2048)
                v, pt, seq, _ts, got_ssrc = struct.unpack("!BBHII", packet[:12])
                assert v >> 6 == 2 and pt & 0x7F == 96 and got_ssrc == ssrc
                assert sender[1] == st.server.server_ports[0]
                seqs.append(seq)
                markers += pt >> 7
            assert seqs[0] == first_seq, "the first packet is the one RTP-Info announced"
            assert seqs == [(first_seq + k) & 0xFFFF for k in range(len(seqs))]
            nal = packet[12] & 0x1F
            assert nal in (1, 5, 28)  # a slice or an FU-A fragment of one
            assert _ask(st, "GET_PARAMETER", url, s, Session=sid)[0] == 200
            # No more keep-alives: the session times out and the encoder stops.
            _wait(lambda: not st.server.sessions and not cam.encoding, 5)
            assert _ask(st, "GET_PARAMETER", url, s, Session=sid)[0] == 454
    finally:
        rtp.close()
        st.close()


def test_an_interleaved_session_lives_with_its_connection() -> None:
    """Over TCP a client that only reads (no keep-alives) keeps its stream past the session timeout."""
    cam = SimCctv("cam-t", width=W, height=H, fps=25)
    st = ServerThread({"cam-t": cam}, session_timeout=1.0)
    try:
        url = st.url("cam-t")
        with socket.create_connection(("127.0.0.1", st.server.port), timeout=5) as s:
            transport = "RTP/AVP/TCP;unicast;interleaved=4-5"
            status, headers = _ask(st, "SETUP", f"{url}/trackID=0", s, Transport=transport)
            assert status == 200 and "interleaved=4-5" in headers["transport"]
            sid = headers["session"].split(";")[0]
            assert _ask(st, "PLAY", url, s, Session=sid)[0] == 200
            stream = s.makefile("rb")
            ssrc = int(headers["transport"].split("ssrc=")[1], 16)
            deadline, markers, reports = time.monotonic() + 2.5, 0, 0
            while time.monotonic() < deadline:
                magic, channel, length = struct.unpack("!BBH", stream.read(4))
                packet = stream.read(length)
                assert magic == 0x24 and channel in (4, 5)
                if channel == 5:  # RTCP: a sender report (and the SDES with our CNAME)
                    assert packet[1] == 200 and struct.unpack("!I", packet[4:8])[0] == ssrc and b"cam-t@" in packet
                    ntp_seconds = struct.unpack("!I", packet[8:12])[0] - 2_208_988_800
                    assert abs(ntp_seconds - time.time()) < 5
                    reports += 1
                    continue
                assert packet[1] & 0x7F == 96
                markers += packet[1] >> 7
            assert markers >= 25, "pictures kept coming for 2.5 s with a 1 s session timeout"
            assert reports >= 1
            assert sid in st.server.sessions
            stream.close()  # the socket closes only once its file is closed too
        _wait(lambda: not st.server.sessions and not cam.encoding, 5)  # closing the connection ends it
    finally:
        st.close()
