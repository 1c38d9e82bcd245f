"""One publisher/subscriber interface for everything that goes to browsers and brokers.

In-process by default. A broker-backed bus (NATS, Redis) implements the same interface
(:class:`EventBus`), so several API nodes can share events without any of them holding session
state. What travels is a typed event (:mod:`dronedispatch.events` lists them all).

Back-pressure is per subscriber: each has a bounded queue. When a slow subscriber's queue is
full, an older telemetry event for the same drone is replaced by the newer one (telemetry is
a state, not a history); if the queue is still full the subscriber is marked lagging and
closed, so it reconnects and starts again from a snapshot. Publishers never wait.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Protocol

from pydantic import BaseModel, PrivateAttr

log = logging.getLogger(__name__)


class BusEvent(BaseModel):
    """Base of every event: ``type`` says how to read ``data``; subclasses fix both."""

    type: str
    _json: str | None = PrivateAttr(default=None)

    @property
    def key(self) -> str | None:
        """Events with the same non-empty key replace each other in a slow subscriber's queue
        (a state, such as a drone's telemetry, rather than a history)."""
        return None

    def json_text(self) -> str:
        """The event as subscribers receive it, serialised once for all of them."""
        if self._json is None:
            self._json = self.model_dump_json()
        return self._json


@dataclass(frozen=True, slots=True)
class BusStats:
    published: int
    subscribers: int


class Subscription(Protocol):
    def __aiter__(self) -> AsyncIterator[BusEvent]: ...
    def close(self) -> None: ...
    @property
    def lagging(self) -> bool: ...


class Publisher(Protocol):
    """What the application services need of the bus: they only ever publish."""

    def publish(self, event: BusEvent) -> None: ...


class EventBus(Publisher, Protocol):
    def subscribe(self, maxsize: int = 1000) -> Subscription: ...
    def stats(self) -> BusStats: ...


class _LocalSubscription:
    def __init__(self, bus: LocalEventBus, maxsize: int) -> None:
        self._bus = bus
        self._maxsize = maxsize
        self._queue: deque[BusEvent] = deque()
        self._wakeup = asyncio.Event()
        self._closed = False
        self.lagging = False

    def offer(self, event: BusEvent) -> None:
        if self._closed:
            return
        if len(self._queue) >= self._maxsize and event.key is not None:
            for i, queued in enumerate(self._queue):
                if queued.key == event.key:
                    del self._queue[i]
                    break
        if len(self._queue) >= self._maxsize:
            self.lagging = True
            log.warning("event subscriber lagging by %d events; closing it", len(self._queue))
            self.close()
            return
        self._queue.append(event)
        self._wakeup.set()

    def close(self) -> None:
        self._closed = True
        self._bus._remove(self)
        self._wakeup.set()

    async def __aiter__(self) -> AsyncIterator[BusEvent]:
        try:
            while not self._closed:
                while self._queue:
                    yield self._queue.popleft()
                if self._closed:
                    break
                self._wakeup.clear()
                await self._wakeup.wait()
        finally:
            self.close()


def on_loop(loop: asyncio.AbstractEventLoop | None, fn: Callable[[BusEvent], None], event: BusEvent) -> None:
    """``fn(event)`` on ``loop``: at once when called there (or before a loop is bound), else handed over
    from the calling thread (sync API routes publish from worker threads)."""
    try:
        running = asyncio.get_running_loop()
    except RuntimeError:
        running = None
    if loop is not None and running is not loop:
        loop.call_soon_threadsafe(fn, event)
    else:
        fn(event)


class LocalEventBus:
    """In-process bus. Publishing from a worker thread (sync API routes run in one) hands the
    event to the bus's event loop, so subscribers only ever run on that loop."""

    def __init__(self) -> None:
        self._subs: set[_LocalSubscription] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self.published = 0

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop

    def publish(self, event: BusEvent) -> None:
        on_loop(self._loop, self._deliver, event)

    def _deliver(self, event: BusEvent) -> None:
        self.published += 1
        for sub in list(self._subs):
            sub.offer(event)

    def subscribe(self, maxsize: int = 1000) -> _LocalSubscription:
        sub = _LocalSubscription(self, maxsize)
        self._subs.add(sub)
        return sub

    def _remove(self, sub: _LocalSubscription) -> None:
        self._subs.discard(sub)

    def resync(self) -> None:
        """Close every subscriber as lagging: events may have been missed (a broker-backed bus that was
        cut off), so each starts again from a fresh snapshot, as a slow one does."""
        for sub in list(self._subs):
            sub.lagging = True
            sub.close()

    def stats(self) -> BusStats:
        return BusStats(published=self.published, subscribers=len(self._subs))
