"""Node heartbeats in a key-value bucket, against a real nats-server."""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from datetime import UTC, datetime

import nats
import pytest

from dronedispatch.cluster.leases import cancel_for_sure
from dronedispatch.cluster.nodes import NodeRegistry, node_key
from dronedispatch.scenario.broker import NatsServer

TTL = 3.0  # generous: a loaded 2-core machine can hold a beat back for a second
VALID_KEY = "^[-/_=a-zA-Z0-9]+$"


def test_node_keys_are_nats_safe_and_distinct() -> None:
    a, b = node_key("host:8000"), node_key("host_8000")
    assert a != b
    for key in (a, b, node_key("ünïcode node/1.2"), node_key("x" * 300)):
        assert re.fullmatch(VALID_KEY, key), key


async def test_heartbeats_list_live_nodes_and_drop_stopped_and_dead_ones(nats_server: NatsServer) -> None:
    bucket = "t_nodes_" + uuid.uuid4().hex[:8]
    nc = await nats.connect(nats_server.url)
    held = ["udpout:127.0.0.1:14550"]
    before = datetime.now(UTC)
    a = NodeRegistry(nc, "host:8000", "http://127.0.0.1:8000", bucket=bucket, ttl=TTL,
                     links=lambda: held, drones=lambda: ["dd-01", "dd-02"])  # fmt: skip
    b = NodeRegistry(nc, "host:8001", "http://127.0.0.1:8001", bucket=bucket, ttl=TTL)
    c = NodeRegistry(nc, "host:8002", "http://127.0.0.1:8002", bucket=bucket, ttl=TTL)
    try:
        for r in (a, b, c):
            await r.start()
        nodes = await a.nodes()
        assert [n.node_id for n in nodes] == ["host:8000", "host:8001", "host:8002"]
        first = nodes[0]
        assert first.http_url == "http://127.0.0.1:8000"
        assert first.links == held and first.drones == ["dd-01", "dd-02"]
        assert before <= first.started_at <= first.heartbeat_at and first.heartbeat_at.tzinfo is not None
        assert nodes[1].links == [] and nodes[1].drones == []
        assert await b.live_node_ids() == {"host:8000", "host:8001", "host:8002"}

        # Holdings change: the next heartbeat says so; heartbeats keep coming past the TTL.
        held.append("udpout:127.0.0.1:14551")
        await asyncio.sleep(TTL + 0.5)
        nodes = await b.nodes()
        assert len(nodes) == 3 and nodes[0].links == held and nodes[0].heartbeat_at > first.heartbeat_at

        # A graceful stop deletes the heartbeat at once.
        await b.stop()
        assert [n.node_id for n in await a.nodes()] == ["host:8000", "host:8002"]

        # A dead node (no more beats, no goodbye) drops out once its heartbeat expires.
        assert c._task is not None
        await cancel_for_sure(c._task)
        c._task = None
        c._kv = None
        start = time.monotonic()
        while "host:8002" in {n.node_id for n in await a.nodes()}:
            assert time.monotonic() - start < TTL + 3, "the dead node's heartbeat did not expire"
            await asyncio.sleep(0.1)
        assert await a.live_node_ids() == {"host:8000"}
    finally:
        for r in (a, b, c):
            await r.stop()
        await nc.close()


async def test_an_empty_bucket_lists_no_node(nats_server: NatsServer) -> None:
    nc = await nats.connect(nats_server.url)
    try:
        r = NodeRegistry(nc, "solo", "http://127.0.0.1:1", bucket="t_nodes_" + uuid.uuid4().hex[:8], ttl=TTL)
        assert await r.nodes() == []
        assert await r.live_node_ids() == {"solo"}
    finally:
        await nc.close()


def test_a_ttl_must_be_positive() -> None:
    with pytest.raises(ValueError):
        NodeRegistry(None, "n", "http://x", ttl=0)  # type: ignore[arg-type]
