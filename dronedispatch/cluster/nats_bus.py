"""The event bus shared by every node, over NATS: one subject, every node reads every event back.

:class:`NatsEventBus` implements :class:`dronedispatch.bus.EventBus`, so it replaces the in-process
bus when ``DD_BUS_URL`` is set and the application services do not know the difference.

- **One subject** (:data:`SUBJECT`). NATS keeps the order of one publisher's messages on a subject
  as one subscription sees them; the client hands each subscription's messages to its callback in
  turn. Several subjects would mean several subscriptions, delivered independently, and a drone's
  telemetry could overtake the mission event published before it.
- **Every node reads its own events back** from NATS instead of delivering them locally: then the
  WebSocket clients of every node see the same events, each node's in the order that node published
  them, whichever node they are connected to. (How two nodes' events interleave may differ from
  node to node: NATS core orders per publisher, not across publishers. Per drone and per mission
  that is enough while one node publishes for each, as the holder of its link does.)
- **Publishers never wait.** :meth:`NatsEventBus.publish` is synchronous and may be called from a
  worker thread; the event joins an outbox that one sender task empties, in order, while connected.
  While disconnected the outbox holds at most ``buffer`` events; beyond that the oldest are dropped
  (counted in ``dropped`` and logged): every event carries the whole object it is about, so the
  newest events are the ones worth keeping.
- **Subscribers are local**, with the in-process bus's bounded queues, telemetry coalescing and
  lagging-subscriber closing: the events received from NATS feed a :class:`LocalEventBus`.

Delivery is NATS core's, at most once: events are not stored. What a node publishes while another
node is cut off from the server does not reach the cut-off node's subscribers, and what was in the
socket when a server died is lost; ``reconnects`` tells the application that a gap is possible.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque

import nats.errors
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from pydantic import ValidationError

from dronedispatch.bus import BusEvent, BusStats, LocalEventBus, Subscription, on_loop
from dronedispatch.events import EVENT

__all__ = ["DEFAULT_BUFFER", "SUBJECT", "BusConnectError", "NatsEventBus"]

log = logging.getLogger(__name__)

SUBJECT = "dd.events"
#: Events kept while disconnected (or while the sender is behind) before the oldest are dropped.
DEFAULT_BUFFER = 10_000
#: Between two attempts to reach the server: short, so a restarted server is found again at once.
RECONNECT_WAIT = 0.25
#: How long :meth:`NatsEventBus.start` tries before it gives up on the server.
CONNECT_TIMEOUT = 10.0
#: How long :meth:`NatsEventBus.stop` waits for the outbox to go out and the subscription to drain.
STOP_TIMEOUT = 5.0


class BusConnectError(RuntimeError):
    """The NATS server could not be reached at start; the message names the URL and why."""


class NatsEventBus:
    """An :class:`~dronedispatch.bus.EventBus` over NATS (see the module's docstring).

    Counters, as attributes: ``published`` (handed to :meth:`publish`), ``sent`` (given to NATS),
    ``received`` (read back from NATS, this node's own included), ``dropped`` (outbox overflow),
    ``malformed`` (messages on :data:`SUBJECT` that are not an event), ``reconnects``.
    """

    def __init__(self, buffer: int = DEFAULT_BUFFER) -> None:
        if buffer < 1:
            raise ValueError("buffer must hold at least one event")
        self.buffer = buffer
        self.node_id = ""
        self.published = 0
        self.sent = 0
        self.received = 0
        self.dropped = 0
        self.malformed = 0
        self.reconnects = 0
        self._local = LocalEventBus()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._outbox: deque[BusEvent] = deque()
        self._pending = asyncio.Event()  # the outbox is not empty
        self._empty = asyncio.Event()  # the outbox is empty (stop() waits for it)
        self._empty.set()
        self._connected = asyncio.Event()
        self._nc: NatsClient | None = None
        self._sender: asyncio.Task[None] | None = None
        self._dropped_at_disconnect = 0
        self._reported_error = False

    # -- lifecycle ---------------------------------------------------------------------------------

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        """The loop that owns the bus: a publish from another thread is handed to it."""
        self._loop = loop
        self._local.bind(loop)

    @property
    def connected(self) -> bool:
        """Connected, subscribed and sending (after a reconnection: once the client says it is back)."""
        return self._nc is not None and self._nc.is_connected and self._connected.is_set()

    async def start(self, url: str, node_id: str, *, connect_timeout: float = CONNECT_TIMEOUT) -> None:
        """Connect to the server at ``url`` as ``node_id`` and start reading and sending events.

        Raises :class:`BusConnectError` if the server cannot be reached within ``connect_timeout``.
        Once connected, the bus reconnects on its own, forever, every :data:`RECONNECT_WAIT` seconds.
        """
        if self._nc is not None:
            raise RuntimeError("the bus is already started")
        self.bind(asyncio.get_running_loop())
        self.node_id = node_id
        nc = NatsClient()
        try:
            async with asyncio.timeout(connect_timeout):
                await nc.connect(
                    servers=[url],
                    name=node_id,
                    allow_reconnect=True,
                    max_reconnect_attempts=-1,  # never give up: the server is restarted, not replaced
                    reconnect_time_wait=RECONNECT_WAIT,  # type: ignore[arg-type]  # a float works (asyncio.sleep)
                    connect_timeout=2,
                    dont_randomize=True,
                    error_cb=self._on_error,
                    disconnected_cb=self._on_disconnected,
                    reconnected_cb=self._on_reconnected,
                )
            await nc.subscribe(SUBJECT, cb=self._on_message)
            # The server has the subscription once it answers a ping sent after it: from here on
            # this node receives whatever any node publishes (a node starting later misses what
            # came before). Twice, as nats-py writes a ping straight to the socket, ahead of the
            # SUB still in its buffer; its flusher writes that buffer while the first ping is out.
            await nc.flush()
            await nc.flush()
        except (TimeoutError, OSError, ValueError, nats.errors.Error) as exc:
            with contextlib.suppress(Exception):
                await nc.close()
            reason = "no answer" if isinstance(exc, TimeoutError) else (str(exc) or type(exc).__name__)
            raise BusConnectError(f"cannot reach the NATS server at {url} ({reason})") from None
        self._nc = nc
        self._connected.set()
        self._reported_error = False
        self._sender = asyncio.create_task(self._send_loop(nc), name=f"nats-bus-sender-{node_id}")
        log.info("event bus on NATS %s as %s", url, node_id)

    async def stop(self, grace: float = STOP_TIMEOUT) -> None:
        """Send what is queued (while connected, for up to ``grace`` seconds), drain the subscription, close."""
        nc, self._nc = self._nc, None
        if nc is None:
            return
        if nc.is_connected and self._outbox:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(grace):
                    await self._empty.wait()
        if self._sender is not None:
            self._sender.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sender
            self._sender = None
        if self._outbox:
            log.warning("event bus stopped with %d events not sent", len(self._outbox))
        try:
            async with asyncio.timeout(grace):
                await nc.drain()  # flushes what the client holds, lets the reader finish, closes
        except (TimeoutError, nats.errors.Error):
            with contextlib.suppress(Exception):
                await nc.close()
        self._connected.clear()

    # -- publishing --------------------------------------------------------------------------------

    def publish(self, event: BusEvent) -> None:
        """Queue ``event`` for every node (this one included); never waits, callable from any thread."""
        on_loop(self._loop, self._enqueue, event)

    def _enqueue(self, event: BusEvent) -> None:
        self.published += 1
        if len(self._outbox) >= self.buffer:
            self._outbox.popleft()
            self.dropped += 1
            if (self.dropped - self._dropped_at_disconnect) % 1000 == 1:  # the first, then one in 1000
                log.warning("event bus outbox full (%d events): dropping the oldest", self.buffer)
        self._outbox.append(event)
        self._empty.clear()
        self._pending.set()

    async def _send_loop(self, nc: NatsClient) -> None:
        """The one task that hands events to NATS, oldest first; it waits while disconnected."""
        while True:
            if not self._outbox:
                self._empty.set()
                self._pending.clear()
                await self._pending.wait()
                continue
            if not nc.is_connected:
                # The client buffers while reconnecting too, but in bytes and raising when full;
                # the outbox keeps whole events and drops the oldest instead. The recheck every
                # few waits covers a reconnection whose callback has not run yet.
                self._connected.clear()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(RECONNECT_WAIT * 4):
                        await self._connected.wait()
                continue
            event = self._outbox[0]
            try:
                await nc.publish(SUBJECT, event.json_text().encode())
            except nats.errors.MaxPayloadError:
                self._outbox.popleft()
                self.dropped += 1
                log.error("event %s larger than the server's maximum payload: dropped", event.type)
                continue
            except (nats.errors.Error, OSError) as exc:
                log.debug("publish failed (%s); retrying", exc)
                await asyncio.sleep(RECONNECT_WAIT)
                continue
            # Only now: an event the client refused stays at the head and keeps its place in the order.
            self._outbox.popleft()
            self.sent += 1

    # -- receiving ---------------------------------------------------------------------------------

    async def _on_message(self, msg: Msg) -> None:
        try:
            event = EVENT.validate_json(msg.data)
        except ValidationError as exc:
            self.malformed += 1
            errors = exc.errors()
            what, where = (errors[0]["msg"], errors[0]["loc"]) if errors else ("invalid", ())
            log.warning("malformed message on %s ignored (%d so far): %s at %s", SUBJECT, self.malformed, what, where)
            return
        self.received += 1
        self._local.publish(event)  # on the bus's loop: delivered to the local subscribers at once

    def subscribe(self, maxsize: int = 1000) -> Subscription:
        """A local subscriber to every node's events, with the in-process bus's queue semantics."""
        return self._local.subscribe(maxsize)

    def stats(self) -> BusStats:
        return BusStats(published=self.published, subscribers=self._local.stats().subscribers)

    # -- connection callbacks ----------------------------------------------------------------------

    async def _on_error(self, exc: Exception) -> None:
        if isinstance(exc, nats.errors.SlowConsumerError):
            log.warning("event bus reader too slow: NATS dropped a message (%s)", exc)
        elif not self._reported_error:  # a server that is down fails every attempt: say it once
            self._reported_error = True
            log.warning("event bus connection error: %s", exc or type(exc).__name__)

    async def _on_disconnected(self) -> None:
        self._connected.clear()
        self._dropped_at_disconnect = self.dropped
        if self._nc is not None:  # not a stop()
            log.warning("event bus disconnected from NATS; keeping up to %d events until it is back", self.buffer)

    async def _on_reconnected(self) -> None:
        self.reconnects += 1
        self._reported_error = False
        self._connected.set()
        lost = self.dropped - self._dropped_at_disconnect
        log.warning("event bus reconnected to NATS (%d events waiting, %d dropped while away)", len(self._outbox), lost)
        # what other nodes published meanwhile never reached this node: its browsers start again from a snapshot
        self._local.resync()
