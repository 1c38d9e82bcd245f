"""Incidents reported over MQTT to two service nodes are stored once, also while a node restarts.

Real processes on loopback: mosquitto, nats-server, PostgreSQL and two `dronedispatch serve` nodes
with DD_MQTT_URL set. The nodes subscribe as one MQTT 5 shared subscription group, each with its own
persistent session, so mosquitto hands every message to one of them.
"""

from __future__ import annotations

import json
import os
import re
import signal
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import paho.mqtt.publish
import pytest
import yaml

from dronedispatch import cityfiles
from tests.cluster.conftest import Node, add_admin, add_users, start_nodes, stop_node
from tests.e2e.conftest import PASSWORD, wait_for
from tests.fixtures.services import MosquittoServer, NatsServer, free_udp_port

pytestmark = pytest.mark.e2e

LINKS = 2
#: Fire cameras of the demo city more than the fire merge radius (500 m) apart from each other.
CAMERAS = [
    "cctv-songdo-centralpark",
    "cctv-songdo-technopark",
    "cctv-songdo-bridge-tollgate",
    "cctv-songdo-campustown",
    "cctv-cheongna-lakepark",
]
#: The line of each node's /metrics that counts what its MQTT subscription stored from the JSON topic.
ACCEPTED = re.compile(
    r'^dronedispatch_ingest_messages_total\{outcome="accepted",source="dronedispatch/reports/#"\} (\S+)$', re.M
)


def subscribed(node: Node) -> bool:
    return node.answers() and "dronedispatch_ingest_mqtt_connected 1.0" in node.metrics()


def accepted_json(node: Node) -> int:
    found = ACCEPTED.search(node.metrics())
    return int(float(found.group(1))) if found else 0


@dataclass
class MqttCluster:
    nodes: dict[str, Node]
    env: dict[str, str]
    logs: Path
    broker: MosquittoServer

    def client(self, node: str = "node-a") -> httpx.Client:
        c = httpx.Client(base_url=self.nodes[node].url, timeout=30)
        r = c.post("/api/v1/auth/token", data={"username": "operator", "password": PASSWORD})
        r.raise_for_status()
        c.headers["Authorization"] = f"Bearer {r.json()['access_token']}"
        return c

    def publish(self, messages: list[tuple[str, bytes]]) -> None:
        paho.mqtt.publish.multiple(
            [{"topic": t, "payload": p, "qos": 1} for t, p in messages],
            hostname=self.broker.host,
            port=self.broker.port,
            client_id=f"pub-{uuid.uuid4().hex[:8]}",
        )

    def tail(self) -> str:
        return "\n".join(
            f"--- {p.name}\n" + "\n".join(p.read_text(errors="replace").splitlines()[-40:])
            for p in sorted(self.logs.glob("*.log"))
        )


@pytest.fixture
def mqtt_cluster(
    tmp_path: Path, fresh_postgres_db: str, nats_factory: Callable[[], NatsServer], mosquitto: MosquittoServer
) -> Iterator[MqttCluster]:
    nats = nats_factory()
    fleet_file = tmp_path / "fleet.yaml"
    fleet_file.write_text(yaml.safe_dump(cityfiles.load_fleet().sized(LINKS).model_dump(), allow_unicode=True))
    env = {
        **os.environ,
        "DD_DATABASE_URL": fresh_postgres_db,
        "DD_BUS_URL": nats.url,
        "DD_MQTT_URL": mosquitto.url,
        # no vehicle answers: this test is about ingest, the links are only leased
        "DD_MAVLINK": ",".join(f"udpout:127.0.0.1:{free_udp_port()}" for _ in range(LINKS)),
        "DD_FLEET": str(fleet_file),
        "DD_SECRET_KEY": "cluster-secret-key-cluster-secret-key-0123",
        "DD_LEASE_TTL_S": "3",
        "DD_RECORDINGS_DIR": str(tmp_path / "recordings"),
        "PYTHONUNBUFFERED": "1",
    }
    add_admin(env)
    nodes: dict[str, Node] = {}
    try:
        nodes.update(start_nodes(("node-a", "node-b"), env, tmp_path, ready=subscribed))
        add_users(nodes["node-a"], ("operator",))
        yield MqttCluster(nodes, env, tmp_path, mosquitto)
    finally:
        for node in nodes.values():
            stop_node(node)


def json_report(tag: str, i: int) -> tuple[str, bytes]:
    """A facility fault 550 m north of the previous one: beyond the merge radius, so one incident each."""
    body = {"category": "facility", "location": {"lat": 37.40 + 0.005 * i, "lon": 126.70},
            "source_ref": f"{tag}-{i}", "description": f"report {tag}-{i}"}  # fmt: skip
    return "dronedispatch/reports/gateway-1", json.dumps(body).encode()


def frigate_review(camera: str) -> tuple[str, bytes]:
    item = {
        "id": uuid.uuid4().hex[:12],
        "camera": camera,
        "start_time": 1764052200.0,
        "end_time": None,
        "severity": "alert",
        "data": {"objects": ["smoke"], "zones": [], "audio": [], "sub_labels": []},
    }
    return "frigate/reviews", json.dumps({"type": "new", "before": item, "after": item}).encode()


def _incidents(client: httpx.Client) -> list[dict]:
    r = client.get("/api/v1/incidents", params={"limit": 500})
    assert r.status_code == 200, r.text
    return list(r.json())


def test_each_mqtt_report_is_stored_once_over_two_nodes(mqtt_cluster: MqttCluster) -> None:
    system = mqtt_cluster
    a, b = system.nodes["node-a"], system.nodes["node-b"]
    op = system.client()
    messages = [frigate_review(c) for c in CAMERAS] + [json_report("first", i) for i in range(15)]
    assert len(messages) == 20
    system.publish(messages)

    wait_for(lambda: len(_incidents(op)) >= 20, 60, "twenty incidents")
    wait_for(lambda: accepted_json(a) + accepted_json(b) >= 15, 30, "both nodes' counts to add up")
    incidents = _incidents(op)
    assert len(incidents) == 20, system.tail()
    assert [i["report_count"] for i in incidents] == [1] * 20  # one report each: none processed twice
    assert accepted_json(a) + accepted_json(b) == 15  # the JSON reports, each taken by one node
    assert accepted_json(a) > 0 and accepted_json(b) > 0  # and the work was shared
    fires = [i for i in incidents if i["category"] == "fire"]
    assert len(fires) == len(CAMERAS)
    # the other node's store view agrees: one database
    assert len(_incidents(system.client("node-b"))) == 20

    # node B restarts; what is published meanwhile is processed once, by A or by B when it is back
    stop_node(b)
    system.publish([json_report("restart", i) for i in range(15, 23)])  # further north: new incidents
    system.nodes["node-b"] = b = start_nodes(("node-b",), system.env, system.logs, ready=subscribed)["node-b"]
    try:
        wait_for(lambda: len(_incidents(op)) >= 28, 60, "the eight reports published during the restart")
    except AssertionError as exc:
        raise AssertionError(f"{exc}: {len(_incidents(op))} incidents\n{system.tail()}") from None
    incidents = _incidents(op)
    assert len(incidents) == 28, system.tail()
    assert all(i["report_count"] == 1 for i in incidents)
    restarted = [i for i in incidents if str(i.get("description", "")).startswith("report restart-")]
    assert len(restarted) == 8
    # (mosquitto kept B's share queued in its session: B took it when back, or A, which saw B gone)


def test_reports_queued_for_a_node_that_never_comes_back_are_taken_up_by_a_survivor(
    mqtt_cluster: MqttCluster,
) -> None:
    system = mqtt_cluster
    b = system.nodes["node-b"]
    op = system.client()
    b.proc.send_signal(signal.SIGKILL)  # gone for good: nobody resumes its session by its own id
    b.proc.wait(10)
    # the broker still hands B's session every other report, until the survivor sees B's heartbeat
    # stop, resumes that session once and takes what it holds
    system.publish([json_report("orphan", i) for i in range(12)])
    try:
        wait_for(lambda: len(_incidents(op)) >= 12, 60, "the twelve reports, B's share included")
    except AssertionError as exc:
        raise AssertionError(f"{exc}: {len(_incidents(op))} incidents\n{system.tail()}") from None
    incidents = _incidents(op)
    assert len(incidents) == 12 and all(i["report_count"] == 1 for i in incidents), system.tail()
    assert "takes up what it left" in system.nodes["node-a"].log.read_text(errors="replace")
