"""The service nodes: which is alive, and which links and drones each holds (admin, tester)."""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import APIRouter
from pydantic import BaseModel, Field

from dronedispatch.api.deps import RuntimeDep, Tester
from dronedispatch.cluster.nodes import NodeInfo

router = APIRouter(tags=["cluster"])


class ClusterPublic(BaseModel):
    node: str = Field(description="The node that answered.")
    bus: str = Field(description="'in-process' for one node, else the NATS server's URL.")
    nodes: list[NodeInfo] = Field(description="Live nodes with their last heartbeat, links and drones held.")


@router.get("/cluster", response_model=ClusterPublic, summary="Live nodes, their heartbeats, links and drones")
async def cluster(runtime: RuntimeDep, _: Tester) -> ClusterPublic:
    if runtime.cluster is None:
        now = datetime.now(UTC)
        alone = NodeInfo(
            node_id=runtime.node_id, http_url="", started_at=runtime.started_at, heartbeat_at=now,
            links=runtime.settings.mavlink_urls, drones=[e.spec.id for e in runtime.registry if e.vehicle is not None],
        )  # fmt: skip
        return ClusterPublic(node=runtime.node_id, bus="in-process", nodes=[alone])
    return ClusterPublic(node=runtime.node_id, bus=runtime.settings.bus_url, nodes=await runtime.cluster.nodes())
