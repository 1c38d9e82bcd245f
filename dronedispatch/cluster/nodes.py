"""Which nodes are alive: each writes a heartbeat to the key-value bucket ``dd_nodes``, which forgets it
after a few seconds without a new one.

The heartbeat says who the node is and what it holds: ``GET /api/v1/cluster`` lists them, and the
lease rules take the node ids as the live nodes among which the links are spread. A node that stops
gracefully deletes its heartbeat so the others rebalance at once; a dead one drops out after the TTL.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import re
from collections.abc import Callable, Sequence
from datetime import UTC, datetime

import nats.errors
import nats.js.errors
from nats.aio.client import Client as NatsClient
from nats.js.kv import KeyValue
from pydantic import BaseModel, Field, ValidationError

from dronedispatch.cluster.leases import cancel_for_sure

__all__ = ["DEFAULT_NODES_BUCKET", "DEFAULT_NODES_TTL", "NodeInfo", "NodeRegistry", "node_key"]

log = logging.getLogger(__name__)

DEFAULT_NODES_BUCKET = "dd_nodes"
#: Seconds a heartbeat lives: a node beats every third of it.
DEFAULT_NODES_TTL = 5.0

NATS_ERRORS = (nats.errors.Error, TimeoutError, OSError)


class NodeInfo(BaseModel):
    """One node as its last heartbeat described it."""

    node_id: str = Field(description="The node's name (DD_NODE_ID).")
    http_url: str = Field(description="Where the node's HTTP API listens.")
    started_at: datetime = Field(description="When the node started (UTC).")
    heartbeat_at: datetime = Field(description="When the node wrote this heartbeat (UTC).")
    links: list[str] = Field(default_factory=list, description="The MAVLink connection strings it holds.")
    drones: list[str] = Field(default_factory=list, description="The ids of the drones on those links.")


def node_key(node_id: str) -> str:
    """The bucket key of a node: its id with the characters NATS keys refuse replaced, and a short hash
    so that two ids differing only in those characters do not share a key."""
    readable = re.sub(r"[^-_=a-zA-Z0-9]", "_", node_id)[:64]
    return f"{readable}_{hashlib.blake2b(node_id.encode(), digest_size=4).hexdigest()}"


def _now() -> datetime:
    # wall time: heartbeats are read by the other nodes (whether a node is alive is the bucket's TTL, kept by
    # the NATS server, not a comparison of clocks)
    return datetime.now(UTC)


class NodeRegistry:
    """This node's heartbeat and the list of live nodes.

    ``links`` and ``drones`` are called at every heartbeat for what the node holds now (the lease
    manager's :meth:`~dronedispatch.cluster.leases.LeaseManager.held`, the runtime's drones).
    """

    def __init__(
        self,
        nc: NatsClient,
        node_id: str,
        http_url: str,
        *,
        bucket: str = DEFAULT_NODES_BUCKET,
        ttl: float = DEFAULT_NODES_TTL,
        links: Callable[[], Sequence[str]] | None = None,
        drones: Callable[[], Sequence[str]] | None = None,
    ) -> None:
        if ttl <= 0:
            raise ValueError("the heartbeat TTL must be positive")
        self.nc = nc
        self.node_id = node_id
        self.http_url = http_url
        self.bucket = bucket
        self.ttl = ttl
        self.interval = ttl / 3
        self.key = node_key(node_id)
        self.started_at = _now()
        self._links = links
        self._drones = drones
        self._kv: KeyValue | None = None
        self._task: asyncio.Task[None] | None = None
        self.beats = 0  # heartbeats written

    async def start(self) -> None:
        """Create (or bind) the bucket, write the first heartbeat and keep beating. Raises if the
        server cannot be reached."""
        if self._task is not None:
            raise RuntimeError("the registry is already started")
        await self._ensure_bucket()
        await self.beat()
        self._task = asyncio.create_task(self._run(), name=f"heartbeat-{self.node_id}")

    async def stop(self) -> None:
        """Stop beating and delete this node's heartbeat, so the others see it gone at once."""
        if self._task is not None:
            await cancel_for_sure(self._task)
            self._task = None
        if self._kv is not None:
            with contextlib.suppress(*NATS_ERRORS):
                await self._kv.delete(self.key)

    def info(self) -> NodeInfo:
        return NodeInfo(
            node_id=self.node_id,
            http_url=self.http_url,
            started_at=self.started_at,
            heartbeat_at=_now(),
            links=list(self._links() if self._links else []),
            drones=list(self._drones() if self._drones else []),
        )

    async def beat(self) -> None:
        """Write the heartbeat now (also after this node's holdings changed). Raises on failure."""
        if self._kv is None:
            await self._ensure_bucket()
        assert self._kv is not None
        try:
            await self._kv.put(self.key, self.info().model_dump_json().encode())
        except nats.js.errors.NoStreamResponseError:
            self._kv = None  # the bucket is gone: create it again on the next beat
            raise
        self.beats += 1

    async def nodes(self) -> list[NodeInfo]:
        """The live nodes (heartbeat within the TTL), sorted by node id. Raises if the bucket cannot be read."""
        if self._kv is None:
            await self._ensure_bucket()
        assert self._kv is not None
        watcher = await self._kv.watchall(inactive_threshold=max(self.ttl, 5.0))
        found: dict[str, NodeInfo] = {}
        try:
            while (entry := await watcher.updates(timeout=max(1.0, self.interval))) is not None:
                if entry.operation is not None or not entry.value:
                    continue  # a deleted heartbeat
                try:
                    info = NodeInfo.model_validate_json(entry.value)
                except ValidationError:
                    log.warning("ignoring a malformed heartbeat under %s", entry.key)
                    continue
                found[info.node_id] = info
        finally:
            with contextlib.suppress(*NATS_ERRORS):
                await watcher.stop()
        return sorted(found.values(), key=lambda n: n.node_id)

    async def live_node_ids(self) -> set[str]:
        """The ids of the live nodes, this one included: the lease manager's ``live_nodes``."""
        return {n.node_id for n in await self.nodes()} | {self.node_id}

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                await self.beat()
            except NATS_ERRORS as exc:  # the server is away: beat again next time
                log.warning("heartbeat of %s failed (%s)", self.node_id, exc or type(exc).__name__)

    async def _ensure_bucket(self) -> None:
        js = self.nc.jetstream(timeout=max(0.5, self.interval))
        try:
            self._kv = await js.create_key_value(bucket=self.bucket, ttl=self.ttl, history=1)
        except nats.js.errors.BadRequestError:
            self._kv = await js.key_value(self.bucket)  # exists with another TTL: use it as it is
