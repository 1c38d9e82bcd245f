"""Blocking store writes kept in order per key, off the event loop.

The MAVLink listener decides a mission's next state at once (in memory, on the loop) and must
never wait for a commit; the store must still see that mission's transitions in the order they
happened. :class:`OrderedWrites` runs each submitted job after the previous job of the same key
(a mission), and jobs of different keys side by side; a job does its blocking work through
``asyncio.to_thread``. A failed job is logged and does not stop the ones queued after it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Hashable
from typing import TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")


class OrderedWrites:
    def __init__(self) -> None:
        self._tails: dict[Hashable, asyncio.Task[object]] = {}

    def submit(self, key: Hashable, job: Callable[[], Awaitable[T]]) -> asyncio.Task[T]:
        """Run ``job`` after every job already submitted for ``key``; await the task for its result."""
        previous = self._tails.get(key)
        task: asyncio.Task[T] = asyncio.create_task(self._after(previous, job), name=f"write-{key}")
        self._tails[key] = task  # type: ignore[assignment]
        task.add_done_callback(lambda t: self._forget(key, t))
        return task

    @staticmethod
    async def _after(previous: asyncio.Task[object] | None, job: Callable[[], Awaitable[T]]) -> T:
        if previous is not None:
            await asyncio.gather(previous, return_exceptions=True)  # its failure was logged by its own waiter
        return await job()

    def _forget(self, key: Hashable, task: asyncio.Task[object]) -> None:
        if self._tails.get(key) is task:
            del self._tails[key]
        if not task.cancelled() and task.exception() is not None:
            log.error("store write for %s failed", key, exc_info=task.exception())

    async def drain(self) -> None:
        """Wait until every job submitted so far has run (at shutdown, and in tests)."""
        while self._tails:
            await asyncio.gather(*list(self._tails.values()), return_exceptions=True)
