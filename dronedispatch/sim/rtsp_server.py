"""A small RTSP 1.0 server (RFC 2326) for the simulated CCTV cameras, on 127.0.0.1 only.

Camera ``ID`` is at ``rtsp://127.0.0.1:<port>/ID`` with one H.264 track (control ``trackID=0``).
Methods: OPTIONS, DESCRIBE (SDP: payload type 96, packetization-mode=1, sprop-parameter-sets),
SETUP (``RTP/AVP/TCP;interleaved=`` or ``RTP/AVP;unicast;client_port=``), PLAY (with RTP-Info),
PAUSE, GET_PARAMETER and SET_PARAMETER (keep-alive), TEARDOWN. Errors as RTSP says: 400 for a
malformed request, 404 for an unknown camera, 454 for an unknown session, 455 for a method out
of state (PLAY before SETUP), 461 for a transport we do not serve (multicast), 501 for an unknown
method, 503 (with Retry-After) while the camera reboots, 505 for another protocol version.

A UDP session times out after ``session_timeout`` seconds without a request on its connection or
an RTCP packet from the client's ports; an interleaved (TCP) session ends with its connection, so
a client that only reads is never cut off. Over UDP, RTP goes from
one shared server port pair to the client's RTP port on 127.0.0.1 — never anywhere else, whatever
the request says. A TCP client that cannot keep up loses pictures until the next IDR rather than
growing our buffers.

When a camera reboots, every session of that camera ends and its connection is closed (a real
camera's TCP connections die with it); until it is back, requests for it are answered 503 and
the connection is closed.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import os
import secrets
import socket
import struct
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote, urlsplit

from dronedispatch.sim.cctv import EncodedUnit, SimCctv

log = logging.getLogger(__name__)

PAYLOAD_TYPE = 96
TRACK = "trackID=0"
SERVER = "dronedispatch-sim-rtsp/1.0"
MAX_HEADER_BYTES = 16 * 1024
MAX_BODY_BYTES = 64 * 1024
TCP_BACKLOG_LIMIT = 4 * 1024 * 1024
"""Bytes queued for a TCP client beyond which pictures are dropped until the next IDR."""
SENDER_REPORT_S = 2.0
NTP_UNIX_OFFSET = 2_208_988_800
"""Seconds from the NTP epoch (1900) to the Unix epoch."""
PUBLIC = "OPTIONS, DESCRIBE, SETUP, PLAY, PAUSE, GET_PARAMETER, SET_PARAMETER, TEARDOWN"
REASONS = {
    200: "OK",
    400: "Bad Request",
    404: "Not Found",
    405: "Method Not Allowed",
    413: "Request Entity Too Large",
    454: "Session Not Found",
    455: "Method Not Valid in This State",
    459: "Aggregate Operation Not Allowed",
    461: "Unsupported Transport",
    501: "Not Implemented",
    503: "Service Unavailable",
    505: "RTSP Version Not Supported",
}


class RtspError(Exception):
    def __init__(self, status: int, headers: dict[str, str] | None = None, *, close: bool = False) -> None:
        super().__init__(f"{status} {REASONS.get(status, '')}")
        self.status, self.headers, self.close = status, headers or {}, close


@dataclass
class Request:
    method: str
    url: str
    headers: dict[str, str]
    """Lower-cased names."""
    body: bytes = b""

    @property
    def cseq(self) -> str | None:
        return self.headers.get("cseq")


@dataclass(eq=False)
class Session:
    id: str
    camera: SimCctv
    conn: _Connection
    ssrc: int = field(default_factory=lambda: int.from_bytes(os.urandom(4), "big"))
    seq: int = field(default_factory=lambda: int.from_bytes(os.urandom(2), "big") & 0x7FFF)
    interleaved: int | None = None
    """RTP channel over the RTSP connection (TCP); None for UDP."""
    client_rtp: int | None = None
    playing: bool = False
    need_keyframe: bool = True
    last_seen: float = field(default_factory=time.monotonic)
    packets_sent: int = 0
    octets_sent: int = 0
    last_report: float = 0.0
    sink: Any = None
    """The delivery callback subscribed to the camera while playing."""

    def rtp(self, unit: EncodedUnit) -> list[bytes]:
        out = []
        last = len(unit.payloads) - 1
        for k, payload in enumerate(unit.payloads):
            marker = 0x80 if k == last else 0
            out.append(
                struct.pack("!BBHII", 0x80, marker | PAYLOAD_TYPE, self.seq, unit.timestamp, self.ssrc) + payload
            )
            self.seq = (self.seq + 1) & 0xFFFF
        self.packets_sent += len(out)
        self.octets_sent += sum(len(p) for p in unit.payloads)
        return out

    def sender_report(self) -> bytes | None:
        """An RTCP SR + SDES CNAME (RFC 3550) when one is due: maps this stream's RTP time to wall-clock time."""
        now = time.monotonic()
        if now - self.last_report < SENDER_REPORT_S:
            return None
        self.last_report = now
        ntp = time.time() + NTP_UNIX_OFFSET
        seconds = int(ntp)
        sr = struct.pack(
            "!BBHIIIIII", 0x80, 200, 6, self.ssrc, seconds & 0xFFFFFFFF, int((ntp - seconds) * 2**32) & 0xFFFFFFFF,
            self.camera.rtp_timestamp, self.packets_sent & 0xFFFFFFFF, self.octets_sent & 0xFFFFFFFF,
        )  # fmt: skip
        cname = f"{self.camera.id}@dronedispatch".encode()[:255]
        chunk = struct.pack("!IBB", self.ssrc, 1, len(cname)) + cname + b"\x00"
        chunk += b"\x00" * (-len(chunk) % 4)
        sdes = struct.pack("!BBH", 0x81, 202, len(chunk) // 4) + chunk
        return sr + sdes


class RtspServer:
    """Serves ``cameras`` (id → camera) over RTSP. ``port=0`` picks a free port (see ``port`` after start)."""

    def __init__(
        self,
        cameras: Mapping[str, SimCctv],
        *,
        host: str = "127.0.0.1",
        port: int = 8554,
        session_timeout: float = 60.0,
    ) -> None:
        self.cameras = cameras
        self.host, self.port = host, port
        self.session_timeout = session_timeout
        self.sessions: dict[str, Session] = {}
        self._server: asyncio.Server | None = None
        self._connections: set[_Connection] = set()
        self._rtp: asyncio.DatagramTransport | None = None
        self._rtcp: asyncio.DatagramTransport | None = None
        self.server_ports = (0, 0)
        self._unsubscribe: list[Any] = []
        self._reaper: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._connected, self.host, self.port, limit=MAX_HEADER_BYTES)
        self.port = self._server.sockets[0].getsockname()[1]
        await self._open_udp()
        for cam in self.cameras.values():
            self._unsubscribe.append(cam.on_reboot(self._on_reboot))
        self._reaper = asyncio.create_task(self._reap(), name="rtsp-sessions")
        log.info("RTSP server on rtsp://%s:%d/ (%d cameras)", self.host, self.port, len(self.cameras))

    async def _open_udp(self) -> None:
        """An even RTP port and the RTCP port above it (RFC 3550), shared by every UDP session."""
        loop = asyncio.get_running_loop()
        for _ in range(50):
            probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            probe.bind((self.host, 0))
            port = probe.getsockname()[1] & ~1
            probe.close()
            try:
                rtp, _ = await loop.create_datagram_endpoint(lambda: _Rtcp(self), local_addr=(self.host, port))
            except OSError:
                continue
            try:
                rtcp, _ = await loop.create_datagram_endpoint(lambda: _Rtcp(self), local_addr=(self.host, port + 1))
            except OSError:
                rtp.close()
                continue
            self._rtp, self._rtcp, self.server_ports = rtp, rtcp, (port, port + 1)
            return
        raise OSError("no free UDP port pair for RTP/RTCP")

    async def stop(self) -> None:
        for unsubscribe in self._unsubscribe:
            unsubscribe()
        self._unsubscribe.clear()
        if self._reaper is not None:
            self._reaper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reaper
        if self._server is not None:
            self._server.close()
        for conn in list(self._connections):
            conn.close()
        for session in list(self.sessions.values()):
            self.end_session(session)
        if self._server is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 2)
            self._server = None
        for t in (self._rtp, self._rtcp):
            if t is not None:
                t.close()
        self._rtp = self._rtcp = None

    async def __aenter__(self) -> RtspServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def url(self, camera_id: str) -> str:
        return f"rtsp://{self.host}:{self.port}/{camera_id}"

    # --- sessions ---------------------------------------------------------------------------------

    def end_session(self, session: Session) -> None:
        self.sessions.pop(session.id, None)
        session.conn.sessions.discard(session)
        if session.playing:
            session.playing = False
            session.camera.unsubscribe(session.sink)

    def _on_reboot(self, camera: SimCctv, online: bool) -> None:
        if online:
            return
        for conn in list(self._connections):
            if any(s.camera is camera for s in conn.sessions) or conn.camera is camera:
                conn.close()
        for session in [s for s in self.sessions.values() if s.camera is camera]:
            self.end_session(session)

    async def _reap(self) -> None:
        while True:
            await asyncio.sleep(min(5.0, self.session_timeout / 4))
            limit = time.monotonic() - self.session_timeout
            # An interleaved session lives as long as its TCP connection: a client that reads its stream
            # without keep-alives (several RTSP clients over TCP do) is alive as long as it keeps reading.
            for session in [s for s in self.sessions.values() if s.last_seen < limit and s.interleaved is None]:
                log.info("RTSP session %s (%s) timed out", session.id, session.camera.id)
                self.end_session(session)

    def rtcp_from(self, addr: tuple[str, int]) -> None:
        now = time.monotonic()
        for s in self.sessions.values():
            if s.client_rtp is not None and addr[1] in (s.client_rtp, s.client_rtp + 1):
                s.last_seen = now

    def send_udp(self, session: Session, packets: list[bytes], report: bytes | None = None) -> None:
        if self._rtp is None or session.client_rtp is None:
            return
        for p in packets:
            self._rtp.sendto(p, ("127.0.0.1", session.client_rtp))  # loopback only, whatever was asked
        if report is not None and self._rtcp is not None:
            self._rtcp.sendto(report, ("127.0.0.1", session.client_rtp + 1))

    async def _connected(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conn = _Connection(self, reader, writer)
        self._connections.add(conn)
        try:
            await conn.serve()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        except Exception:
            log.exception("RTSP connection failed")
        finally:
            self._connections.discard(conn)
            conn.close()
            for session in list(conn.sessions):
                if session.interleaved is not None:
                    self.end_session(session)
                else:
                    # A UDP session outlives its connection (RFC 2326 §10.11); it ends at TEARDOWN or timeout.
                    session.conn.sessions.discard(session)


class _Rtcp(asyncio.DatagramProtocol):
    def __init__(self, server: RtspServer) -> None:
        self.server = server

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.server.rtcp_from(addr)  # receiver reports keep a UDP session alive

    def error_received(self, exc: Exception) -> None:
        pass  # ICMP port unreachable: the client went away; its session times out


class _Connection:
    def __init__(self, server: RtspServer, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.server, self.reader, self.writer = server, reader, writer
        self.sessions: set[Session] = set()
        self.camera: SimCctv | None = None
        """The camera the last request named (closed with it when it reboots)."""

    def close(self) -> None:
        if not self.writer.is_closing():
            self.writer.close()

    def sink(self, session: Session) -> Any:
        """The callback that sends a camera's pictures to this session."""

        def deliver(unit: EncodedUnit) -> None:
            if session.need_keyframe:
                if not unit.keyframe:
                    return
                session.need_keyframe = False
            if session.interleaved is None:
                self.server.send_udp(session, session.rtp(unit), session.sender_report())
                return
            if self.writer.is_closing():
                return
            if self.writer.transport.get_write_buffer_size() > TCP_BACKLOG_LIMIT:
                session.need_keyframe = True  # a slow reader: skip to the next IDR
                session.camera.request_keyframe()
                return
            ch = session.interleaved
            self.writer.write(b"".join(struct.pack("!BBH", 0x24, ch, len(p)) + p for p in session.rtp(unit)))
            report = session.sender_report()
            if report is not None:
                self.writer.write(struct.pack("!BBH", 0x24, ch + 1, len(report)) + report)

        return deliver

    async def serve(self) -> None:
        while True:
            first = await self.reader.read(1)
            if not first:
                return
            if first == b"$":
                # Interleaved binary data from the client (RTCP receiver reports): skip it, note it as life.
                head = await self.reader.readexactly(3)
                await self.reader.readexactly(int.from_bytes(head[1:3], "big"))
                self._touch()
                continue
            try:
                request = await self._read_request(first)
            except RtspError as exc:
                self._reply(exc.status, None, exc.headers)
                await self.writer.drain()
                return  # we can no longer tell where the next request starts
            if request is None:
                continue  # blank line between requests
            self._touch(request)
            close = False
            try:
                headers, body = self._handle(request)
                self._reply(200, request, headers, body)
            except RtspError as exc:
                self._reply(exc.status, request, exc.headers)
                close = exc.close
            await self.writer.drain()
            if close:
                return

    def _touch(self, request: Request | None = None) -> None:
        now = time.monotonic()
        sid = request.headers.get("session", "").split(";")[0].strip() if request else ""
        for s in self.sessions:
            s.last_seen = now
        if sid in self.server.sessions:
            self.server.sessions[sid].last_seen = now

    async def _read_request(self, first: bytes) -> Request | None:
        try:
            head = first + await self.reader.readuntil(b"\r\n\r\n" if first != b"\r" and first != b"\n" else b"\n")
        except asyncio.LimitOverrunError:
            raise RtspError(413, close=True) from None
        if len(head) > MAX_HEADER_BYTES:
            raise RtspError(413, close=True)
        text = head.decode("utf-8", "replace")
        if not text.strip():
            return None
        lines = text.replace("\r\n", "\n").split("\n")
        parts = lines[0].split()
        if len(parts) != 3 or not parts[0].replace("_", "").isalpha() or not parts[0].isupper():
            raise RtspError(400, close=True)
        method, url, version = parts
        headers: dict[str, str] = {}
        for line in lines[1:]:
            if not line.strip():
                continue
            name, sep, value = line.partition(":")
            if not sep or not name.strip():
                raise RtspError(400, close=True)
            headers[name.strip().lower()] = value.strip()
        if not version.startswith("RTSP/"):
            raise RtspError(400, close=True)
        request = Request(method, url, headers)
        if version != "RTSP/1.0":
            raise RtspError(505, close=True)
        length_s = headers.get("content-length", "0")
        if not length_s.isdigit():
            raise RtspError(400, close=True)
        if int(length_s) > MAX_BODY_BYTES:
            raise RtspError(413, close=True)
        if int(length_s):
            request.body = await self.reader.readexactly(int(length_s))
        return request

    def _reply(self, status: int, request: Request | None, headers: dict[str, str], body: bytes = b"") -> None:
        lines = [f"RTSP/1.0 {status} {REASONS.get(status, 'Error')}"]
        if request is not None and request.cseq is not None:
            lines.append(f"CSeq: {request.cseq}")
        lines.append(f"Server: {SERVER}")
        lines.append(f"Date: {time.strftime('%a, %d %b %Y %H:%M:%S GMT', time.gmtime())}")
        lines += [f"{k}: {v}" for k, v in headers.items()]
        if body:
            lines.append(f"Content-Length: {len(body)}")
        self.writer.write(("\r\n".join(lines) + "\r\n\r\n").encode() + body)

    # --- methods ----------------------------------------------------------------------------------

    def _handle(self, r: Request) -> tuple[dict[str, str], bytes]:
        if r.cseq is None:
            raise RtspError(400)
        handler = {
            "OPTIONS": self._options,
            "DESCRIBE": self._describe,
            "SETUP": self._setup,
            "PLAY": self._play,
            "PAUSE": self._pause,
            "GET_PARAMETER": self._keepalive,
            "SET_PARAMETER": self._keepalive,
            "TEARDOWN": self._teardown,
        }.get(r.method)
        if handler is None:
            if r.method in ("ANNOUNCE", "RECORD", "REDIRECT"):
                raise RtspError(405, {"Allow": PUBLIC})
            raise RtspError(501)
        return handler(r)

    def _target(self, r: Request) -> tuple[SimCctv, str]:
        """The camera a URL names and what follows its id ('' for the stream, 'trackID=0' for the track)."""
        if r.url == "*":
            raise RtspError(404)
        parts = urlsplit(r.url)
        if parts.scheme.lower() not in ("rtsp", "rtspu", "") or not parts.path.startswith("/"):
            raise RtspError(400)
        segments = [unquote(s) for s in parts.path.split("/") if s]
        cam = self.server.cameras.get(segments[0]) if segments else None
        rest = "/".join(segments[1:])
        if cam is None or rest not in ("", TRACK):
            raise RtspError(404)
        self.camera = cam
        if not cam.online:
            raise RtspError(503, {"Retry-After": str(max(1, round(cam.back_in)))}, close=True)
        return cam, rest

    def _session(self, r: Request) -> Session:
        sid = r.headers.get("session", "").split(";")[0].strip()
        if not sid:
            raise RtspError(454)
        session = self.server.sessions.get(sid)
        if session is None:
            raise RtspError(454)
        return session

    def _session_header(self, session: Session) -> str:
        return f"{session.id};timeout={int(self.server.session_timeout)}"

    def _options(self, r: Request) -> tuple[dict[str, str], bytes]:
        if r.url != "*":
            self._target(r)
        headers = {"Public": PUBLIC}
        if "session" in r.headers:
            headers["Session"] = self._session_header(self._session(r))
        return headers, b""

    def _keepalive(self, r: Request) -> tuple[dict[str, str], bytes]:
        headers: dict[str, str] = {}
        if "session" in r.headers:
            headers["Session"] = self._session_header(self._session(r))
        elif r.url != "*":
            self._target(r)
        return headers, b""

    def _describe(self, r: Request) -> tuple[dict[str, str], bytes]:
        cam, rest = self._target(r)
        if rest:
            raise RtspError(404)
        sps, pps = cam.parameter_sets()
        sprop = f"{base64.b64encode(sps).decode()},{base64.b64encode(pps).decode()}"
        profile = sps[1:4].hex().upper()
        sdp = "\r\n".join(
            [
                "v=0",
                f"o=- {int(time.time())} 1 IN IP4 {self.server.host}",
                f"s={cam.name}",
                f"c=IN IP4 {self.server.host}",
                "t=0 0",
                "a=control:*",
                "a=range:npt=0-",
                f"m=video 0 RTP/AVP {PAYLOAD_TYPE}",
                f"a=rtpmap:{PAYLOAD_TYPE} H264/90000",
                f"a=fmtp:{PAYLOAD_TYPE} packetization-mode=1;profile-level-id={profile};sprop-parameter-sets={sprop}",
                f"a=framerate:{cam.fps}",
                f"a=framesize:{PAYLOAD_TYPE} {cam.width}-{cam.height}",
                f"a=control:{TRACK}",
                "",
            ]
        ).encode()
        base = f"rtsp://{self.server.host}:{self.server.port}/{cam.id}/"
        return {"Content-Base": base, "Content-Type": "application/sdp"}, sdp

    def _setup(self, r: Request) -> tuple[dict[str, str], bytes]:
        cam, _ = self._target(r)
        existing: Session | None = None
        if "session" in r.headers:
            existing = self._session(r)
            if existing.camera is not cam:
                raise RtspError(459)
            if existing.playing:
                raise RtspError(455, {"Allow": "PLAY, PAUSE, TEARDOWN, GET_PARAMETER"})
        transport = r.headers.get("transport")
        if not transport:
            raise RtspError(461)
        choice = None
        for spec in transport.split(","):
            params = [p.strip() for p in spec.split(";") if p.strip()]
            if not params:
                continue
            proto = params[0].upper()
            options = {k.strip().lower(): v.strip() for k, _, v in (p.partition("=") for p in params[1:])}
            if "multicast" in options:
                continue
            if proto == "RTP/AVP/TCP" and "interleaved" in options:
                choice = ("tcp", options)
                break
            if proto in ("RTP/AVP", "RTP/AVP/UDP") and "client_port" in options:
                choice = ("udp", options)
                break
        if choice is None:
            raise RtspError(461)
        kind, options = choice
        session = existing or Session(secrets.token_hex(8).upper(), cam, self)
        try:
            if kind == "tcp":
                rtp_ch = int(options["interleaved"].split("-")[0])
                if not 0 <= rtp_ch <= 254:
                    raise ValueError(rtp_ch)
                session.interleaved, session.client_rtp = rtp_ch, None
                reply = f"RTP/AVP/TCP;unicast;interleaved={rtp_ch}-{rtp_ch + 1};ssrc={session.ssrc:08X}"
            else:
                rtp_port = int(options["client_port"].split("-")[0])
                if not 1 <= rtp_port <= 65534:
                    raise ValueError(rtp_port)
                session.interleaved, session.client_rtp = None, rtp_port
                sp = self.server.server_ports
                reply = (
                    f"RTP/AVP;unicast;client_port={rtp_port}-{rtp_port + 1};server_port={sp[0]}-{sp[1]}"
                    f";source={self.server.host};ssrc={session.ssrc:08X}"
                )
        except ValueError:
            raise RtspError(400) from None
        if existing is None:
            self.server.sessions[session.id] = session
        self.sessions.add(session)
        return {"Transport": reply, "Session": self._session_header(session)}, b""

    def _play(self, r: Request) -> tuple[dict[str, str], bytes]:
        if "session" not in r.headers:
            raise RtspError(455, {"Allow": "OPTIONS, DESCRIBE, SETUP"})  # PLAY before SETUP
        session = self._session(r)
        cam, _ = self._target(r)
        if session.camera is not cam:
            raise RtspError(454)
        self.sessions.add(session)
        session.conn = self
        if not session.playing:
            session.need_keyframe = True
            session.sink = self.sink(session)
            cam.subscribe(session.sink)
            session.playing = True
        base = f"rtsp://{self.server.host}:{self.server.port}/{cam.id}/{TRACK}"
        return {
            "Session": self._session_header(session),
            "Range": "npt=0.000-",
            "RTP-Info": f"url={base};seq={session.seq};rtptime={cam.rtp_timestamp}",
        }, b""

    def _pause(self, r: Request) -> tuple[dict[str, str], bytes]:
        session = self._session(r)
        if session.playing:
            session.playing = False
            session.camera.unsubscribe(session.sink)
        return {"Session": self._session_header(session)}, b""

    def _teardown(self, r: Request) -> tuple[dict[str, str], bytes]:
        session = self._session(r)
        self.server.end_session(session)
        return {"Session": session.id}, b""
