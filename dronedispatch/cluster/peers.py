"""Request/reply between service nodes: launches and pilot commands go to the vehicle's holder.

Only the node holding a vehicle's link may send to it (its lease fences every byte). A dispatch or
a pilot command that arrives at another node's API is carried to the holder over NATS
request/reply on ``dd.node.<node id>.missions``; the holder runs it through its own mission
supervisor and answers ``{"ok": true}`` or the refusal, which is raised again on the asking node
as the same typed error, so the person gets the same answer whichever node they reached.

:class:`ClusterPeers` implements :class:`dronedispatch.app.ports.PeerNodes`.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from nats.aio.client import Client as Nats
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.errors import NoRespondersError
from nats.errors import TimeoutError as NatsTimeout

from dronedispatch.app import errors as app_errors
from dronedispatch.app.missions import MissionSupervisor
from dronedispatch.cluster.nodes import NodeInfo
from dronedispatch.store.repo import NotFound

log = logging.getLogger(__name__)

#: A launch is only handed over (the holder answers before it uploads); a pilot command waits for
#: the vehicle's acknowledgement, retries included.
LAUNCH_TIMEOUT_S = 10.0
COMMAND_TIMEOUT_S = 30.0

#: Refusals that travel between nodes by name; anything else arrives as a plain ServiceError.
_ERRORS: dict[str, type[app_errors.ServiceError]] = {
    cls.__name__: cls
    for cls in (
        app_errors.ServiceError,
        app_errors.UnknownObject,
        app_errors.Conflict,
        app_errors.Unprocessable,
        app_errors.DispatchRefused,
        app_errors.ImpossibleMission,
        app_errors.CommandRejected,
        app_errors.VehicleUnavailable,
        app_errors.VehicleTimeout,
    )
}


def subject(node: str) -> str:
    return f"dd.node.{node}.missions"


class ClusterPeers:
    def __init__(self, node_id: str) -> None:
        self.node_id = node_id
        #: drone id → the node holding its link, from the nodes' heartbeats (kept fresh by the runtime)
        self.holders: dict[str, str] = {}
        self._nc: Nats | None = None
        self._sub: Subscription | None = None
        self._missions: MissionSupervisor | None = None
        self._nodes: Callable[[], Awaitable[list[NodeInfo]]] | None = None

    async def start(
        self, nc: Nats, missions: MissionSupervisor, nodes: Callable[[], Awaitable[list[NodeInfo]]]
    ) -> None:
        self._nc, self._missions, self._nodes = nc, missions, nodes
        self._sub = await nc.subscribe(subject(self.node_id), cb=self._serve)

    async def stop(self) -> None:
        if self._sub is not None:
            await self._sub.unsubscribe()
            self._sub = None

    # -- asking --------------------------------------------------------------------------------
    def holder_of(self, drone_id: str) -> str | None:
        node = self.holders.get(drone_id)
        return node if node is not None and node != self.node_id else None

    async def locate(self, drone_id: str) -> str | None:
        if self._nodes is not None:
            try:
                self.holders = {d: n.node_id for n in await self._nodes() for d in n.drones}
            except Exception as exc:  # the bus away for a moment: the last view stands
                log.warning("could not read the nodes' heartbeats: %s", exc)
        return self.holder_of(drone_id)

    async def launch(self, node: str, mission_id: int, return_seq: int | None) -> None:
        await self._request(node, {"op": "launch", "mission_id": mission_id, "return_seq": return_seq},
                            LAUNCH_TIMEOUT_S)  # fmt: skip

    async def command(
        self, node: str, mission_id: int, command: str, actor: str, position: tuple[float, float] | None
    ) -> None:
        body = {"op": "command", "mission_id": mission_id, "command": command, "actor": actor,
                "position": list(position) if position else None}  # fmt: skip
        await self._request(node, body, COMMAND_TIMEOUT_S)

    async def _request(self, node: str, body: dict[str, Any], timeout_s: float) -> None:
        if self._nc is None:
            raise app_errors.VehicleUnavailable(f"node {node} cannot be reached: not connected to the cluster")
        try:
            msg = await self._nc.request(subject(node), json.dumps(body).encode(), timeout=timeout_s)
        except (NatsTimeout, NoRespondersError) as exc:
            raise app_errors.VehicleTimeout(
                f"node {node}, which holds the vehicle, did not answer within {timeout_s:.0f} s"
            ) from exc
        reply = json.loads(msg.data)
        error = reply.get("error")
        if error:
            cls = _ERRORS.get(error.get("kind", ""), app_errors.ServiceError)
            raise cls(error.get("reason", "refused by the node holding the vehicle"), error.get("code"))

    # -- answering -----------------------------------------------------------------------------
    async def _serve(self, msg: Msg) -> None:
        try:
            body = json.loads(msg.data)
            await self._carry_out(body)
            reply: dict[str, Any] = {"ok": True}
        except app_errors.ServiceError as exc:
            reply = {"error": {"kind": type(exc).__name__, "code": exc.code, "reason": exc.reason}}
        except NotFound as exc:
            reply = {"error": {"kind": "UnknownObject", "code": "unknown", "reason": str(exc)}}
        except Exception as exc:  # a bad request or a fault here must still answer, never leave the asker waiting
            log.exception("request from another node failed")
            reply = {"error": {"kind": "ServiceError", "code": "node_error", "reason": f"node {self.node_id}: {exc}"}}
        if msg.reply:
            await msg.respond(json.dumps(reply).encode())

    async def _carry_out(self, body: dict[str, Any]) -> None:
        missions = self._missions
        assert missions is not None
        op = body.get("op")
        if op == "launch":
            await missions.take_launch(int(body["mission_id"]), body.get("return_seq"))
        elif op == "command":
            p = body.get("position")
            position = (float(p[0]), float(p[1])) if p else None
            await missions.command(int(body["mission_id"]), str(body["command"]), str(body["actor"]),
                                   position=position, from_peer=True)  # fmt: skip
        else:
            raise app_errors.Unprocessable(f"unknown request {op!r}", "bad_request")
