"""The shape every sans-I/O protocol machine here shares.

A transaction is driven by its owner with three calls, each returning the messages to send:
``start(now)``, ``receive(msg, now)`` for every message from the vehicle component it talks to,
and ``on_timeout(now)`` once ``now >= deadline``. After sending, the owner may call ``idle(now)``
so the machine can prepare its next reply while the vehicle works on this one. It never reads a
clock, sleeps or touches a socket. When ``done`` is true, either ``result`` holds the outcome or
``error`` the failure."""

from __future__ import annotations

from typing import Any

from dronedispatch.mavlink.errors import LinkError


class Transaction:
    #: Component the transaction talks to; the owner routes only its messages here.
    target_component: int = 1
    #: Whether the owner should poll for the vehicle's reply rather than sleep (latency-critical).
    poll_for_reply: bool = False

    def __init__(self) -> None:
        self.deadline: float | None = None
        self.done = False
        self.result: Any = None
        self.error: LinkError | None = None
        #: Messages that belonged to this exchange but did not fit it (duplicates, strays).
        self.unexpected = 0

    def start(self, now: float) -> list[Any]:
        raise NotImplementedError

    def receive(self, msg: Any, now: float) -> list[Any]:
        raise NotImplementedError

    def on_timeout(self, now: float) -> list[Any]:
        raise NotImplementedError

    def idle(self, now: float) -> None:
        """Called after messages went out: work that can run while the vehicle answers them."""

    def _finish(self, result: Any = None) -> list[Any]:
        self.done = True
        self.result = result
        self.deadline = None
        return []

    def _fail(self, error: LinkError) -> list[Any]:
        self.done = True
        self.error = error
        self.deadline = None
        return []
