"""Blocking store writes kept in order per key, off the event loop.

The MAVLink listener decides a mission's next state at once (in memory, on the loop) and must
never wait for a commit; the store must still see that mission's transitions in the order they
happened. :class:`OrderedWrites` runs each submitted job after the previous job of the same key
(a mission), and jobs of different keys side by side; a job does its blocking work through
``asyncio.to_thread``.

A job that fails because the store is unavailable for now (``retry_if`` says so: the database is
stopped or restarting) is run again with backoff until it succeeds, holding the jobs queued after it
for the same key, so transitions decided during an outage are written when the database returns, in
order. Any other failure is logged and does not stop the ones queued after it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Hashable
from typing import TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")

#: First and longest wait between attempts at a write the store could not take, seconds.
RETRY_FIRST_S = 0.5
RETRY_MAX_S = 5.0


class OrderedWrites:
    def __init__(self, retry_if: Callable[[BaseException], bool] | None = None) -> None:
        self._tails: dict[Hashable, asyncio.Task[object]] = {}
        self._retry_if = retry_if
        self._retrying = True  # cleared at shutdown: a database that stays down must not hold the exit

    def submit(self, key: Hashable, job: Callable[[], Awaitable[T]]) -> asyncio.Task[T]:
        """Run ``job`` after every job already submitted for ``key``; await the task for its result."""
        previous = self._tails.get(key)
        task: asyncio.Task[T] = asyncio.create_task(self._after(key, previous, job), name=f"write-{key}")
        self._tails[key] = task  # type: ignore[assignment]
        task.add_done_callback(lambda t: self._forget(key, t))
        return task

    async def _after(self, key: Hashable, previous: asyncio.Task[object] | None, job: Callable[[], Awaitable[T]]) -> T:
        if previous is not None:
            await asyncio.gather(previous, return_exceptions=True)  # its failure was logged by its own waiter
        delay, attempts = RETRY_FIRST_S, 0
        while True:
            try:
                result = await job()
            except Exception as exc:
                if not (self._retrying and self._retry_if is not None and self._retry_if(exc)):
                    raise
                attempts += 1
                if attempts == 1:
                    log.warning("store write for %s waits for the database: %s", key, _first_line(exc))
                await asyncio.sleep(delay)
                delay = min(delay * 2, RETRY_MAX_S)
                continue
            if attempts:
                log.info("store write for %s done after %d retries", key, attempts)
            return result

    def _forget(self, key: Hashable, task: asyncio.Task[object]) -> None:
        if self._tails.get(key) is task:
            del self._tails[key]
        if not task.cancelled() and task.exception() is not None:
            log.error("store write for %s failed", key, exc_info=task.exception())

    def stop_retrying(self) -> None:
        """At shutdown: a write the store cannot take fails now instead of waiting for the database."""
        self._retrying = False

    async def drain(self) -> None:
        """Wait until every job submitted so far has run (at shutdown, and in tests)."""
        while self._tails:
            await asyncio.gather(*list(self._tails.values()), return_exceptions=True)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
