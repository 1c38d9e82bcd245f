"""Byte transports named by connection strings, as thin asyncio shells.

``udpin:HOST:PORT`` binds and answers whoever sent; ``udpout:HOST:PORT`` sends to a fixed peer
(and hears its replies); ``tcp:HOST:PORT`` connects as a client and reconnects after a drop;
``serial:DEVICE:BAUD`` needs pyserial. Each endpoint only moves bytes: it hands what it receives
to ``on_data(endpoint, data, peer)`` and sends what it is given. Framing, routing and everything
MAVLink live above.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

try:
    import serial  # type: ignore[import-untyped]
except ImportError:  # only serial: links need pyserial; they say so when opened
    serial = None

log = logging.getLogger(__name__)

RCVBUF_BYTES = 4 << 20
#: Datagrams read per readiness event after the first (see _Datagrams).
DRAIN_BATCH = 256
MAX_DATAGRAM = 65535

Peer = Any  # (host, port) for UDP; the endpoint's name for streams
OnData = Callable[["Endpoint", bytes, Peer], None]


@dataclass(frozen=True)
class EndpointSpec:
    kind: str  # udpin | udpout | tcp | serial
    host: str
    port: int  # baud rate for serial

    @property
    def url(self) -> str:
        return f"{self.kind}:{self.host}:{self.port}"


def connection_strings(value: str) -> list[str]:
    """Several connection strings written as one, comma-separated (DD_MAVLINK); blanks dropped."""
    return [u.strip() for u in value.split(",") if u.strip()]


def parse_url(url: str) -> EndpointSpec:
    """Parse a connection string; raises ValueError with the accepted forms on a bad one."""
    kind, sep, rest = url.strip().partition(":")
    host, sep2, port_s = rest.rpartition(":")
    forms = "udpin:HOST:PORT, udpout:HOST:PORT, tcp:HOST:PORT or serial:DEVICE:BAUD"
    if not sep or not sep2 or kind not in ("udpin", "udpout", "tcp", "serial", "udp"):
        raise ValueError(f"bad MAVLink connection string {url!r}: expected {forms}")
    try:
        port = int(port_s)
    except ValueError:
        raise ValueError(f"bad port or baud rate in {url!r}: expected {forms}") from None
    if kind == "udp":  # MAVProxy/pymavlink spelling of udpin
        kind = "udpin"
    if not host:
        host = "127.0.0.1" if kind != "serial" else host
    if kind != "serial" and not 0 < port < 65536:
        raise ValueError(f"port out of range in {url!r}")
    return EndpointSpec(kind, host, port)


class Endpoint:
    """One socket or device. ``datagram`` endpoints deliver whole datagrams."""

    datagram = True

    def __init__(self, spec: EndpointSpec, on_data: OnData) -> None:
        self.spec = spec
        self.on_data = on_data
        #: A peer we can send to before hearing anyone (udpout, tcp, serial).
        self.default_peer: Peer | None = None
        self.bytes_in = 0
        self.bytes_out = 0

    async def open(self) -> None:
        raise NotImplementedError

    def send(self, data: bytes, peer: Peer | None = None) -> None:
        raise NotImplementedError

    async def close(self) -> None:
        raise NotImplementedError


class _Datagrams(asyncio.DatagramProtocol):
    """Hands each datagram to the endpoint, and drains the socket while it has more.

    asyncio's selector transport reads one datagram per pass of the event loop. One udpin socket
    carries every vehicle's telemetry, and a pass of a busy loop (the service, and in tests and
    soaks the simulated fleet too) can take tens of milliseconds on a loaded host: at one datagram
    a pass the socket then fills faster than it is read, and its deep receive queue turns into
    seconds of delay on everything the vehicles say, mission requests included - longer than
    PX4's 5 s transfer timeout. So after the transport's read we read on until the socket is
    empty (at most DRAIN_BATCH more, so other callbacks still get their turn).
    """

    def __init__(self, owner: UdpEndpoint, sock: socket.socket) -> None:
        self.owner = owner
        self.sock = sock
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self._deliver(data, addr)
        for _ in range(DRAIN_BATCH):
            if self.transport is None or self.transport.is_closing():
                return
            try:
                data, addr = self.sock.recvfrom(MAX_DATAGRAM)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                self.error_received(exc)
                return
            self._deliver(data, addr)

    def _deliver(self, data: bytes, addr: tuple[str, int]) -> None:
        self.owner.bytes_in += len(data)
        self.owner.on_data(self.owner, data, addr)

    def error_received(self, exc: Exception) -> None:
        # ICMP port unreachable when a vehicle went away: not an error for us.
        log.debug("udp %s: %s", self.owner.spec.url, exc)


class UdpEndpoint(Endpoint):
    def __init__(self, spec: EndpointSpec, on_data: OnData) -> None:
        super().__init__(spec, on_data)
        self.transport: asyncio.DatagramTransport | None = None
        if spec.kind == "udpout":
            self.default_peer = (spec.host, spec.port)

    async def open(self) -> None:
        loop = asyncio.get_running_loop()
        if self.spec.kind == "udpin":
            local = (self.spec.host, self.spec.port)
        else:
            local = ("127.0.0.1" if self.spec.host == "127.0.0.1" else "0.0.0.0", 0)
        # Our own socket, so that the protocol can drain it (the transport only lends a wrapper).
        infos = await loop.getaddrinfo(*local, family=socket.AF_INET, type=socket.SOCK_DGRAM)
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            sock.setblocking(False)
            if self.spec.kind == "udpin":
                with contextlib.suppress(OSError):
                    # Hundreds of vehicles send in bursts; a deep receive queue rides them out.
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RCVBUF_BYTES)
            sock.bind(infos[0][4])
            self.transport, _ = await loop.create_datagram_endpoint(lambda: _Datagrams(self, sock), sock=sock)
        except BaseException:
            sock.close()
            raise

    @property
    def local_address(self) -> tuple[str, int] | None:
        return self.transport.get_extra_info("sockname") if self.transport else None

    def send(self, data: bytes, peer: Peer | None = None) -> None:
        target = peer or self.default_peer
        if self.transport is None or target is None:
            return
        self.bytes_out += len(data)
        self.transport.sendto(data, target)

    async def close(self) -> None:
        if self.transport is not None:
            self.transport.close()
            self.transport = None
            # The socket itself closes in a callback the loop runs next: let it, so the port
            # is free again when stop() returns.
            await asyncio.sleep(0)


class _StreamEndpoint(Endpoint):
    """A byte stream that is reopened after it drops (a TCP connection, a serial device).

    Each connection is a peer of its own, ``(url, n)``: whatever the old one left half-sent is
    not joined to the new one's bytes, and a vehicle's sequence numbers start afresh with it.
    """

    datagram = False
    RECONNECT_S = 1.0

    def __init__(self, spec: EndpointSpec, on_data: OnData) -> None:
        super().__init__(spec, on_data)
        self.connections = 0
        self.default_peer = (spec.url, 0)
        self.connected = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._failing = False

    async def open(self) -> None:
        # The first attempt is made here, so a stream that is there is open when the link starts;
        # one that is not is retried in the background (a radio not plugged in yet, a vehicle booting).
        opened = await self._try_connect()
        self._task = asyncio.create_task(self._run(opened), name=f"mavlink {self.spec.url}")

    async def _try_connect(self) -> bool:
        try:
            await self._connect()
        except OSError as exc:
            # Said once as a warning, then quietly until it works.
            level = logging.DEBUG if self._failing else logging.WARNING
            log.log(level, "%s: cannot open (%s); retrying every %.0f s", self.spec.url, exc, self.RECONNECT_S)
            self._failing = True
            return False
        self._failing = False
        self.connections += 1
        self.default_peer = (self.spec.url, self.connections)  # before any of its bytes are handed on
        self.connected.set()
        log.info("%s: connected", self.spec.url)
        return True

    async def _run(self, opened: bool) -> None:
        while True:  # reconnect loop: each pass has the stream open and reads it until it drops
            while not opened:
                await asyncio.sleep(self.RECONNECT_S)
                opened = await self._try_connect()
            opened = False
            try:
                await self._read_until_closed()
            except OSError as exc:
                log.warning("%s: connection lost (%s)", self.spec.url, exc)
            else:
                log.warning("%s: closed by the other end", self.spec.url)
            finally:
                self.connected.clear()
                self._disconnect()

    def _received(self, data: bytes) -> None:
        self.bytes_in += len(data)
        self.on_data(self, data, self.default_peer)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        self.connected.clear()
        self._disconnect()  # also when it was opened but never read

    async def _connect(self) -> None:
        raise NotImplementedError

    async def _read_until_closed(self) -> None:
        raise NotImplementedError

    def _disconnect(self) -> None:
        raise NotImplementedError


class TcpEndpoint(_StreamEndpoint):
    CONNECT_TIMEOUT_S = 3.0

    def __init__(self, spec: EndpointSpec, on_data: OnData) -> None:
        super().__init__(spec, on_data)
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def _connect(self) -> None:
        # Bounded, so an address that drops connection attempts cannot hold up the link's start
        # (TimeoutError is an OSError: retried like a refusal).
        self._reader, self._writer = await asyncio.wait_for(
            asyncio.open_connection(self.spec.host, self.spec.port), self.CONNECT_TIMEOUT_S
        )

    async def _read_until_closed(self) -> None:
        assert self._reader is not None
        while data := await self._reader.read(65536):
            self._received(data)

    def _disconnect(self) -> None:
        if self._writer is not None:
            self._writer.close()
        self._reader = self._writer = None

    def send(self, data: bytes, peer: Peer | None = None) -> None:
        if self._writer is not None and not self._writer.is_closing():
            self.bytes_out += len(data)
            self._writer.write(data)


class SerialEndpoint(_StreamEndpoint):
    """``serial:DEVICE:BAUD`` with pyserial; a device that vanishes (a USB radio unplugged) is
    closed and opened again by its path until it is back."""

    def __init__(self, spec: EndpointSpec, on_data: OnData) -> None:
        super().__init__(spec, on_data)
        self._port: Any = None
        self._gone: asyncio.Future[None] | None = None

    async def open(self) -> None:
        if serial is None:
            raise RuntimeError(f"{self.spec.url}: serial links need the 'pyserial' package")
        await super().open()

    async def _connect(self) -> None:
        try:
            self._port = serial.Serial(self.spec.host, self.spec.port, timeout=0, write_timeout=0)
        except serial.SerialException as exc:
            raise OSError(str(exc)) from exc
        self._gone = asyncio.get_running_loop().create_future()
        asyncio.get_running_loop().add_reader(self._port.fileno(), self._readable)

    async def _read_until_closed(self) -> None:
        assert self._gone is not None
        await self._gone

    def _readable(self) -> None:
        try:
            data = self._port.read(4096)
        except Exception as exc:  # the device went away: stop reading it, reopen it later
            if self._gone is not None and not self._gone.done():
                self._gone.set_exception(OSError(str(exc)))
            asyncio.get_running_loop().remove_reader(self._port.fileno())
            return
        if data:
            self._received(data)

    def _disconnect(self) -> None:
        if self._port is not None:
            with contextlib.suppress(Exception):  # a vanished device may refuse even this
                asyncio.get_running_loop().remove_reader(self._port.fileno())
            with contextlib.suppress(Exception):
                self._port.close()
            self._port = None
        self._gone = None

    def send(self, data: bytes, peer: Peer | None = None) -> None:
        if self._port is None:
            return
        try:
            self._port.write(data)
            self.bytes_out += len(data)
        except Exception as exc:  # a full or vanished serial port drops the frame, as a radio would
            log.debug("%s: write failed: %s", self.spec.url, exc)


def make_endpoint(spec: EndpointSpec, on_data: OnData) -> Endpoint:
    if spec.kind in ("udpin", "udpout"):
        return UdpEndpoint(spec, on_data)
    if spec.kind == "tcp":
        return TcpEndpoint(spec, on_data)
    return SerialEndpoint(spec, on_data)
