"""Two sans-I/O ends joined by a lossy, delaying, duplicating channel in virtual time.

Like h11's ConnectionPair, but the wire misbehaves on purpose: each message is dropped with
probability ``loss``, duplicated with probability ``dup``, and delayed by ``delay`` plus up to
``jitter`` seconds (which reorders messages). Every message crossing is recorded as
``(time, direction, type, fields)`` so a failing run can be read like a capture.
"""

from __future__ import annotations

import heapq
import itertools
import random
from dataclasses import dataclass, field
from typing import Any

from dronedispatch.mavlink.transaction import Transaction


@dataclass
class Channel:
    rng: random.Random
    loss: float = 0.0
    dup: float = 0.0
    delay: float = 0.001
    jitter: float = 0.0
    #: (start, end): everything sent in between, either way, is lost (a link outage).
    outages: tuple[tuple[float, float], ...] = ()
    #: (start, end): what the vehicle sends in between reaches the ground station only at ``end``,
    #: in order (a backlog: a host too busy to read its socket, a radio buffering).
    stalls: tuple[tuple[float, float], ...] = ()


@dataclass
class Run:
    now: float = 0.0
    log: list[tuple[float, str, str, dict[str, Any]]] = field(default_factory=list)


def run_pair(
    tx: Transaction,
    vehicle: Any,
    channel: Channel,
    *,
    until: float = 300.0,
    mission_current_hz: float = 1.0,
) -> Run:
    run = Run()
    heap: list[tuple[float, int, str, Any]] = []
    order = itertools.count()
    rng = channel.rng

    def send(direction: str, msgs: list[Any], now: float) -> None:
        for m in msgs:
            run.log.append((round(now, 4), direction, m.get_type(), m.to_dict()))
            if rng.random() < channel.loss or any(a <= now < b for a, b in channel.outages):
                continue
            copies = 2 if rng.random() < channel.dup else 1
            for _ in range(copies):
                at = now + channel.delay + rng.random() * channel.jitter
                if direction == "veh>gcs":
                    at = max([at] + [b for a, b in channel.stalls if a <= now < b])
                heapq.heappush(heap, (at, next(order), direction, m))

    send("gcs>veh", tx.start(0.0), 0.0)
    next_current = 1.0 / mission_current_hz if mission_current_hz else None
    while not tx.done:
        candidates = [t for t in (tx.deadline, vehicle.deadline, next_current) if t is not None]
        if heap:
            candidates.append(heap[0][0])
        if not candidates:
            break
        now = min(candidates)
        if now > until:
            break
        run.now = now
        if heap and heap[0][0] == now:
            _, _, direction, m = heapq.heappop(heap)
            if direction == "gcs>veh":
                send("veh>gcs", vehicle.receive(m, now), now)
            else:
                send("gcs>veh", tx.receive(m, now), now)
        elif tx.deadline is not None and tx.deadline == now:
            send("gcs>veh", tx.on_timeout(now), now)
        elif vehicle.deadline is not None and vehicle.deadline == now:
            send("veh>gcs", vehicle.on_timeout(now), now)
        else:
            assert next_current is not None
            send("veh>gcs", [vehicle.mission_current()], now)
            next_current = now + 1.0 / mission_current_hz
    return run
