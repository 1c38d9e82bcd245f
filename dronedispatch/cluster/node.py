"""One service node among several: its links by lease, its heartbeat, its peers.

Theory of operation. Every node runs the same ``dronedispatch serve`` with the same
``DD_DATABASE_URL``, ``DD_SECRET_KEY``, ``DD_MAVLINK`` and ``DD_BUS_URL``; they find each other
through NATS only.

- Events: the bus (:class:`~dronedispatch.cluster.nats_bus.NatsEventBus`) carries every event to
  every node; drone events from the nodes that hear a vehicle keep the others' live fleet current.
- Links: each ``DD_MAVLINK`` entry is leased to one node at a time
  (:class:`~dronedispatch.cluster.leases.LeaseManager`). The holder opens that link with the
  lease's fence, so every datagram it sends is checked against a lease it still holds; losing the
  lease closes the link here, and the vehicles on it are handed over with their missions.
- Heartbeats (:class:`~dronedispatch.cluster.nodes.NodeRegistry`) say which links and drones each
  node holds: ``GET /api/v1/cluster`` lists them, and a launch or a pilot command that arrives at
  the wrong node goes to the holder (:class:`~dronedispatch.cluster.peers.ClusterPeers`).
- Truth stays in PostgreSQL: the database refuses a second active mission, and a node taking a
  link over reads each mission from the store and each vehicle's state from the vehicle.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Callable, Coroutine
from typing import Any

import nats.errors
from nats.aio.client import Client as NatsClient

from dronedispatch.app.fleet import Fleet
from dronedispatch.app.missions import MissionSupervisor
from dronedispatch.app.ports import AuditLog
from dronedispatch.bus import EventBus
from dronedispatch.cluster.leases import LeaseManager, cancel_for_sure
from dronedispatch.cluster.nodes import NodeInfo, NodeRegistry
from dronedispatch.cluster.peers import ClusterPeers
from dronedispatch.events import DroneChanged
from dronedispatch.link_gateway import LinkGateway
from dronedispatch.mavlink.events import VehicleEvent
from dronedispatch.mavlink.link import MavlinkLink

log = logging.getLogger(__name__)

#: How often a node reads the others' heartbeats (who holds which drone) and the store's drone rows.
REFRESH_S = 1.0
CONNECT_TIMEOUT_S = 5.0


class ClusterError(RuntimeError):
    """The node cannot join the cluster (the NATS server cannot be reached)."""


def default_node_id(port: int) -> str:
    return f"{socket.gethostname().split('.')[0]}-{port}"


class ClusterNode:
    def __init__(
        self,
        *,
        bus_url: str,
        node_id: str,
        http_url: str,
        links: list[str],
        lease_ttl_s: float,
        bus: EventBus,
        fleet: Fleet,
        missions: MissionSupervisor,
        peers: ClusterPeers,
        gateway: LinkGateway,
        open_link: Callable[[str, Callable[[], bool]], MavlinkLink],
        watch: Callable[[VehicleEvent], None],
        audit: AuditLog,
        on_node_gone: Callable[[str], Coroutine[Any, Any, None]] | None = None,
    ) -> None:
        self.bus_url = bus_url
        self.node_id = node_id
        self.http_url = http_url
        self.links = links
        self.lease_ttl_s = lease_ttl_s
        self._bus = bus
        self._fleet = fleet
        self._missions = missions
        self.peers = peers
        self._gateway = gateway
        self._open_link = open_link
        self._watch = watch
        self._audit = audit
        self._on_node_gone = on_node_gone
        self._known: set[str] = set()  # nodes seen alive, to notice one that is gone
        self._nc: NatsClient | None = None
        self.leases: LeaseManager | None = None
        self.registry: NodeRegistry | None = None
        self._open: dict[str, MavlinkLink] = {}
        self._link_lock = asyncio.Lock()
        self._tasks: list[asyncio.Task[None]] = []

    # -- lifecycle ---------------------------------------------------------------------------------
    async def start(self) -> None:
        nc = NatsClient()
        try:
            async with asyncio.timeout(CONNECT_TIMEOUT_S):
                await nc.connect(
                    servers=[self.bus_url], name=f"{self.node_id}-control", allow_reconnect=True,
                    max_reconnect_attempts=-1, reconnect_time_wait=1, connect_timeout=2, dont_randomize=True,
                )  # fmt: skip
        except (TimeoutError, OSError, nats.errors.Error) as exc:
            with contextlib.suppress(Exception):
                await nc.close()
            raise ClusterError(f"cannot reach the NATS server at {self.bus_url} ({exc or 'no answer'})") from None
        self._nc = nc
        self.registry = NodeRegistry(
            nc, self.node_id, self.http_url, ttl=max(self.lease_ttl_s, 3.0), links=self._held, drones=self._drones
        )
        self.leases = LeaseManager(
            nc, self.node_id, self.links, ttl=self.lease_ttl_s, live_nodes=self.registry.live_node_ids,
            on_acquired=self._acquired, on_lost=self._lost,
        )  # fmt: skip
        await self.peers.start(nc, self._missions, self.registry.nodes)
        await self.registry.start()
        await self.leases.start()
        self._tasks = [
            asyncio.create_task(self._follow_drones(), name="cluster-drones"),
            asyncio.create_task(self._refresh(), name="cluster-refresh"),
        ]
        log.info("node %s joined the cluster at %s (%d links to share)", self.node_id, self.bus_url, len(self.links))

    async def stop(self) -> None:
        for task in self._tasks:
            await cancel_for_sure(task)
        if self.leases is not None:
            await self.leases.stop(release=True)  # the others take the links at once
        async with self._link_lock:
            for url in list(self._open):
                await self._close(url)
        await self.peers.stop()
        if self.registry is not None:
            await self.registry.stop()
        if self._nc is not None:
            with contextlib.suppress(Exception):
                await self._nc.close()

    # -- links -------------------------------------------------------------------------------------
    async def _acquired(self, url: str) -> None:
        leases = self.leases
        assert leases is not None
        async with self._link_lock:
            if url in self._open:
                return
            link = self._open_link(url, lambda: leases.fence(url))
            link.add_listener(self._watch)
            try:
                await link.start()
            except OSError as exc:
                log.error("node %s holds %s but cannot open it: %s", self.node_id, url, exc)
                return
            self._open[url] = link
            self._gateway.links.append(link)
            lease = leases.lease(url)
            token = lease.token if lease is not None else None
            log.info("node %s holds %s (lease token %s)", self.node_id, url, token)
        await self._record("link.acquire", url, token=token)
        if self.registry is not None:
            with contextlib.suppress(Exception):
                await self.registry.beat()

    async def _lost(self, url: str) -> None:
        async with self._link_lock:
            await self._close(url)
        log.warning("node %s no longer holds %s", self.node_id, url)
        await self._record("link.release", url)
        if self.registry is not None:
            with contextlib.suppress(Exception):
                await self.registry.beat()

    async def _close(self, url: str) -> None:
        link = self._open.pop(url, None)
        if link is None:
            return
        if link in self._gateway.links:
            self._gateway.links.remove(link)
        for sysid in list(link.vehicles):
            self._missions.vehicle_gone(sysid)
            entry = self._fleet.registry.detach(sysid)
            if entry is not None:
                self._fleet.publish(entry)
        await link.stop()

    async def _record(self, action: str, url: str, **detail: object) -> None:
        """The audit log keeps every hand-over of a link (a store away for a moment only costs the line)."""
        try:
            await asyncio.to_thread(self._audit.audit, f"node:{self.node_id}", action, "link", url,
                                    node=self.node_id, **detail)  # fmt: skip
        except Exception as exc:
            log.warning("node %s: %s of %s not audited: %s", self.node_id, action, url, exc)

    def _held(self) -> list[str]:
        return list(self._open)

    def _drones(self) -> list[str]:
        out = []
        for link in self._open.values():
            for sysid in link.vehicles:
                entry = self._fleet.registry.by_sysid(sysid)
                if entry is not None:
                    out.append(entry.spec.id)
        return out

    # -- what the others say -----------------------------------------------------------------------
    async def nodes(self) -> list[NodeInfo]:
        assert self.registry is not None
        return await self.registry.nodes()

    def _notice_departures(self, live: set[str]) -> None:
        """A node whose heartbeat stopped (dead, or stopping) may leave work behind outside the store
        (its MQTT session's queued reports): one survivor, the first by name, takes it up."""
        gone, self._known = self._known - live, self._known | live
        self._known -= gone
        if gone and self._on_node_gone is not None and self.node_id == min(live):
            for node in sorted(gone):
                log.warning("node %s is gone; node %s takes up what it left", node, self.node_id)
                task = asyncio.create_task(self._on_node_gone(node), name=f"node-gone-{node}")
                self._tasks.append(task)

    async def _follow_drones(self) -> None:
        """Drones heard by other nodes, as they publish them, for this node's live fleet."""
        while True:  # a subscription closed by a resync (the bus was cut off) is opened again
            async for ev in self._bus.subscribe(maxsize=100_000):
                if isinstance(ev, DroneChanged):
                    self._fleet.registry.observe_remote(ev.data)

    async def _refresh(self) -> None:
        while True:  # periodic: who holds which drone, and the store's drone rows (another node may change them)
            try:
                nodes = await self.nodes()
                self.peers.holders = {d: n.node_id for n in nodes for d in n.drones}
                await asyncio.to_thread(self._fleet.load)
                self._notice_departures({n.node_id for n in nodes} | {self.node_id})
            except Exception as exc:  # the bus or the store away for a moment: keep the last view
                log.warning("node %s: cluster view not refreshed: %s", self.node_id, exc)
            await asyncio.sleep(REFRESH_S)
