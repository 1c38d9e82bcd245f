"""Leases on links against a real nats-server with JetStream.

Every test runs a fence monitor: sampled every few milliseconds, no link ever has two open fences.
Time bounds are derived from the TTL and generous; none measures speed.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

import nats
import pytest
from nats.aio.client import Client as NatsClient

from dronedispatch.cluster.leases import LeaseManager, cancel_for_sure, lease_key
from dronedispatch.cluster.nodes import NodeRegistry
from dronedispatch.scenario.broker import NatsServer

TTL = 2.0
LINKS = [f"udpout:127.0.0.1:{14550 + i}" for i in range(4)]


async def connect(url: str) -> NatsClient:
    return await nats.connect(
        url, reconnect_time_wait=0.1, max_reconnect_attempts=-1, connect_timeout=2, allow_reconnect=True
    )


async def wait_until(predicate: Callable[[], bool], within: float, what: str) -> float:
    """Seconds it took until ``predicate`` held; fails after ``within`` seconds."""
    start = time.monotonic()
    while not predicate():
        if time.monotonic() - start > within:
            pytest.fail(f"not within {within:.1f}s: {what}")
        await asyncio.sleep(0.02)
    return time.monotonic() - start


@dataclass
class Node:
    manager: LeaseManager
    registry: NodeRegistry
    events: list[tuple[str, str]] = field(default_factory=list)


@dataclass
class Cluster:
    url: str
    bucket: str = field(default_factory=lambda: "t_" + uuid.uuid4().hex[:10])
    nodes: list[Node] = field(default_factory=list)
    clients: list[NatsClient] = field(default_factory=list)
    violations: list[str] = field(default_factory=list)

    async def add(self, node_id: str, links: list[str]) -> Node:
        nc = await connect(self.url)
        self.clients.append(nc)
        events: list[tuple[str, str]] = []
        manager = LeaseManager(
            nc, node_id, links, bucket=self.bucket, ttl=TTL, live_nodes=lambda: registry.live_node_ids(),
            on_acquired=lambda link: events.append(("acquired", link)),
            on_lost=lambda link: events.append(("lost", link)),
        )  # fmt: skip
        registry = NodeRegistry(
            nc, node_id, f"http://127.0.0.1/{node_id}", bucket=self.bucket + "_nodes", ttl=TTL, links=manager.held
        )
        await registry.start()
        await manager.start()
        node = Node(manager, registry, events)
        self.nodes.append(node)
        return node

    def holders(self, link: str) -> list[str]:
        return [n.manager.node_id for n in self.nodes if n.manager.fence(link)]

    def counts(self) -> list[int]:
        return sorted((len(n.manager.held()) for n in self.nodes), reverse=True)

    def settled(self, links: list[str]) -> bool:
        return all(len(self.holders(link)) == 1 for link in links)

    async def monitor(self) -> None:
        while True:
            for link in LINKS:
                if len(holders := self.holders(link)) > 1:
                    self.violations.append(f"{link}: {holders}")
            await asyncio.sleep(0.005)


@contextlib.asynccontextmanager
async def cluster_on(url: str) -> AsyncIterator[Cluster]:
    cluster = Cluster(url)
    monitor = asyncio.create_task(cluster.monitor())
    try:
        yield cluster
        assert not cluster.violations, cluster.violations[:5]
    finally:
        monitor.cancel()
        for node in cluster.nodes:
            await node.manager.stop()
            await node.registry.stop()
        for nc in cluster.clients:
            await nc.close()


async def stays(predicate: Callable[[], bool], seconds: float) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        assert predicate()
        await asyncio.sleep(0.05)


async def test_one_link_two_managers_one_holder_renewing(nats_server: NatsServer) -> None:
    async with cluster_on(nats_server.url) as cluster:
        a = await cluster.add("a", LINKS[:1])
        b = await cluster.add("b", LINKS[:1])
        await wait_until(lambda: cluster.settled(LINKS[:1]), TTL, "one holder")
        holder = a if a.manager.fence(LINKS[0]) else b
        lease = holder.manager.lease(LINKS[0])
        assert lease is not None and lease.key == lease_key(LINKS[0])
        first = lease.revision
        # Renewals rewrite the key: the revision moves on, the token (acquisition revision) stays.
        await wait_until(lambda: lease.revision > first, TTL, "a renewal")
        await stays(lambda: cluster.holders(LINKS[0]) == [holder.manager.node_id], 2 * TTL)
        assert lease.token == first and lease.fence()
        assert holder.events == [("acquired", LINKS[0])]
        assert (a if holder is b else b).events == []


async def test_graceful_stop_hands_the_link_over_at_once(nats_server: NatsServer) -> None:
    async with cluster_on(nats_server.url) as cluster:
        a = await cluster.add("a", LINKS[:1])
        await wait_until(lambda: a.manager.fence(LINKS[0]), TTL, "a holds the link")
        b = await cluster.add("b", LINKS[:1])
        await asyncio.sleep(TTL / 2)
        assert cluster.holders(LINKS[0]) == ["a"]
        old = a.manager.lease(LINKS[0])
        assert old is not None
        await a.manager.stop()
        assert not old.fence() and a.events == [("acquired", LINKS[0]), ("lost", LINKS[0])]
        # The release and the wake-up message: well before the lease could have expired.
        took = await wait_until(lambda: b.manager.fence(LINKS[0]), TTL, "b takes over")
        assert took < TTL / 2
        new = b.manager.lease(LINKS[0])
        assert new is not None and new.token > old.revision  # fencing tokens only grow


async def test_a_paused_holder_finds_its_fence_closed_and_the_other_takes_over(nats_server: NatsServer) -> None:
    async with cluster_on(nats_server.url) as cluster:
        a = await cluster.add("a", LINKS[:1])
        await wait_until(lambda: a.manager.fence(LINKS[0]), TTL, "a holds the link")
        b = await cluster.add("b", LINKS[:1])
        lease = a.manager.lease(LINKS[0])
        assert lease is not None
        # Pause: the renewals stop, nothing is released, no callback runs.
        task = a.manager._loop_task
        assert task is not None
        await cancel_for_sure(task)
        paused_at = lease.renewed_at
        await wait_until(lambda: not lease.fence(), TTL, "the fence closes")
        assert time.monotonic() - paused_at <= TTL - lease.margin + 0.1
        took = await wait_until(lambda: b.manager.fence(LINKS[0]), TTL + 3, "b takes over")
        assert took <= TTL + 3
        assert ("lost", LINKS[0]) not in a.events  # nobody told a: the fence alone kept it quiet
        # a wakes up: its first round gives the lease up and does not take the link back.
        await a.manager.round()
        await asyncio.sleep(0.1)
        assert lease.lost and not lease.fence() and a.events[-1] == ("lost", LINKS[0])
        assert cluster.holders(LINKS[0]) == ["b"]
        a.manager._loop_task = asyncio.create_task(a.manager._run())  # resumed, for a clean stop
        await stays(lambda: cluster.holders(LINKS[0]) == ["b"], TTL)


async def test_someone_else_writing_the_key_loses_the_lease_at_once(nats_server: NatsServer) -> None:
    async with cluster_on(nats_server.url) as cluster:
        a = await cluster.add("a", LINKS[:1])
        await wait_until(lambda: a.manager.fence(LINKS[0]), TTL, "a holds the link")
        lease = a.manager.lease(LINKS[0])
        assert lease is not None
        nc = await connect(nats_server.url)
        try:
            kv = await nc.jetstream().key_value(cluster.bucket)
            entry = await kv.get(lease_key(LINKS[0]))
            await kv.update(lease_key(LINKS[0]), b'{"node": "intruder", "instance": "x"}', last=entry.revision)
        finally:
            await nc.close()
        await wait_until(lambda: lease.lost, TTL / 3 + 1, "a loses the lease at its next renewal")
        assert not lease.fence() and a.events[-1] == ("lost", LINKS[0])
        # The intruder's value is not a lease of a's: a does not claim it back while it lives.
        await stays(lambda: not a.manager.fence(LINKS[0]), TTL / 2)


async def test_links_spread_evenly_and_a_joining_node_evens_them_out(nats_server: NatsServer) -> None:
    async with cluster_on(nats_server.url) as cluster:
        await cluster.add("a", LINKS)
        await cluster.add("b", LINKS)
        await wait_until(lambda: cluster.settled(LINKS) and cluster.counts() == [2, 2], 3 * TTL, "2 and 2")
        await stays(lambda: cluster.counts() == [2, 2], TTL)
        c = await cluster.add("c", LINKS)
        await wait_until(lambda: cluster.settled(LINKS) and cluster.counts() == [2, 1, 1], 4 * TTL, "2, 1 and 1")
        assert len(c.manager.held()) == 1
        await stays(lambda: cluster.settled(LINKS) and cluster.counts() == [2, 1, 1], TTL)
        # The heartbeats list who holds what.
        await asyncio.sleep(TTL / 3 + 0.2)
        listed = {n.node_id: sorted(n.links) for n in await c.registry.nodes()}
        assert listed == {n.manager.node_id: sorted(n.manager.held()) for n in cluster.nodes}


async def test_a_dead_nodes_links_are_taken_over_within_the_ttl(nats_server: NatsServer) -> None:
    async with cluster_on(nats_server.url) as cluster:
        a = await cluster.add("a", LINKS)
        b = await cluster.add("b", LINKS)
        await wait_until(lambda: cluster.settled(LINKS) and cluster.counts() == [2, 2], 3 * TTL, "2 and 2")
        # b dies: its loops stop, nothing is released, its heartbeat is left to expire.
        for task in (b.manager._loop_task, b.registry._task):
            assert task is not None
            await cancel_for_sure(task)
        b.manager._loop_task = b.registry._task = None
        b.registry._kv = None  # no goodbye
        await wait_until(lambda: len(a.manager.held()) == 4, TTL + 3, "a holds every link")


async def test_a_restarted_server_leaves_every_link_with_one_holder(nats_factory: Callable[[], NatsServer]) -> None:
    server = nats_factory()
    async with cluster_on(server.url) as cluster:
        await cluster.add("a", LINKS)
        await cluster.add("b", LINKS)
        await wait_until(lambda: cluster.settled(LINKS) and cluster.counts() == [2, 2], 3 * TTL, "2 and 2")
        await asyncio.to_thread(server.restart)
        await asyncio.sleep(TTL / 3)
        await wait_until(lambda: all(nc.is_connected for nc in cluster.clients), 10, "clients reconnect")
        await wait_until(lambda: cluster.settled(LINKS) and cluster.counts() == [2, 2], 3 * TTL + 5, "settled")
        await stays(lambda: cluster.settled(LINKS), TTL)
