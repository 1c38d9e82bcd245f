"""Service nodes as real processes: started side by side, each waited for, stopped in the end."""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import httpx

from tests.e2e.conftest import DD, PASSWORD, wait_for
from tests.fixtures.services import free_tcp_port


@dataclass
class Node:
    name: str
    url: str
    proc: subprocess.Popen[bytes]
    log: Path

    def client(self, role: str) -> httpx.Client:
        c = httpx.Client(base_url=self.url, timeout=30)
        r = c.post("/api/v1/auth/token", data={"username": role, "password": PASSWORD})
        r.raise_for_status()
        c.headers["Authorization"] = f"Bearer {r.json()['access_token']}"
        return c

    def metrics(self) -> str:
        return httpx.get(f"{self.url}/metrics", timeout=10).text

    def answers(self) -> bool:
        """Up and serving (fails the test, with its log, if the process ended)."""
        if self.proc.poll() is not None:
            raise AssertionError(f"node {self.name} exited\n{self.log.read_text(errors='replace')[-3000:]}")
        try:
            return httpx.get(f"{self.url}/healthz", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False


def spawn_node(name: str, env: dict[str, str], logs: Path) -> Node:
    port = free_tcp_port()
    log = logs / f"{name}.log"
    with open(log, "ab") as out:
        proc = subprocess.Popen([*DD, "serve", "--port", str(port)], env={**env, "DD_NODE_ID": name},
                                stdout=out, stderr=subprocess.STDOUT)  # fmt: skip
    return Node(name, f"http://127.0.0.1:{port}", proc, log)


def start_nodes(
    names: Iterable[str], env: dict[str, str], logs: Path, ready: Callable[[Node], bool] = Node.answers
) -> dict[str, Node]:
    """Start every node at once (they find each other through the bus), then wait for each."""
    nodes = {name: spawn_node(name, env, logs) for name in names}
    for node in nodes.values():
        wait_for(lambda node=node: ready(node), 60, f"node {node.name} to be ready")  # type: ignore[misc]
    return nodes


def stop_node(node: Node) -> None:
    if node.proc.poll() is None:
        node.proc.terminate()
    try:
        node.proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        node.proc.kill()
        node.proc.wait(timeout=20)


def add_users(node: Node, roles: Iterable[str]) -> None:
    """Accounts for ``roles``, through the admin API (the admin account comes from :func:`add_admin`)."""
    admin = node.client("admin")
    for role in roles:
        r = admin.post("/api/v1/admin/users", json={"username": role, "role": role, "password": PASSWORD})
        assert r.status_code in (201, 409), r.text


def add_admin(env: dict[str, str]) -> None:
    """The admin account, by the command line, before any node runs."""
    subprocess.run([*DD, "users", "add", "admin", "--role", "admin"], input=f"{PASSWORD}\n".encode(), env=env,
                   check=True, capture_output=True, timeout=60)  # fmt: skip
