"""Administration routes: accounts and drone maintenance, admin only, against the real app."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from dronedispatch.service import create_app
from dronedispatch.settings import Settings
from tests.api.conftest import PASSWORD
from tests.fixtures.services import free_udp_port


@pytest.mark.parametrize("role", ["operator", "pilot", "tester"])
def test_only_admins(client: TestClient, auth, role: str) -> None:  # type: ignore[no-untyped-def]
    h = auth(role)
    assert client.get("/api/v1/admin/users", headers=h).status_code == 403
    body = {"username": "kim", "role": "operator", "password": "long-enough"}
    assert client.post("/api/v1/admin/users", json=body, headers=h).status_code == 403
    assert client.post("/api/v1/admin/users/pilot/disable", headers=h).status_code == 403
    r = client.put("/api/v1/admin/drones/dd-01/maintenance", json={"maintenance": True}, headers=h)
    assert r.status_code == 403


def test_add_disable_enable_a_user(client: TestClient, auth) -> None:  # type: ignore[no-untyped-def]
    admin = auth("admin")
    names = [u["username"] for u in client.get("/api/v1/admin/users", headers=admin).json()]
    assert {"operator", "pilot", "tester", "admin"} <= set(names)

    r = client.post(
        "/api/v1/admin/users", json={"username": "kim", "role": "pilot", "password": "kim-password"}, headers=admin
    )
    assert r.status_code == 201, r.text
    assert r.json()["role"] == "pilot" and not r.json()["disabled"]
    login = {"username": "kim", "password": "kim-password"}
    assert client.post("/api/v1/auth/token", data=login).status_code == 200
    again = client.post(
        "/api/v1/admin/users", json={"username": "kim", "role": "admin", "password": "other-password"}, headers=admin
    )
    assert again.status_code == 409, "an existing account is never silently replaced"

    assert client.post("/api/v1/admin/users/kim/disable", headers=admin).json()["disabled"] is True
    assert client.post("/api/v1/auth/token", data=login).status_code == 401
    assert client.post("/api/v1/admin/users/kim/enable", headers=admin).json()["disabled"] is False
    assert client.post("/api/v1/auth/token", data=login).status_code == 200


@pytest.mark.parametrize(
    "body",
    [
        {"username": "x", "role": "operator", "password": "short"},
        {"username": "x", "role": "king", "password": "long-enough"},
        {"username": "bad name", "role": "operator", "password": "long-enough"},
        {"username": "", "role": "operator", "password": "long-enough"},
    ],
)
def test_bad_accounts_get_a_reason(client: TestClient, auth, body: dict) -> None:  # type: ignore[no-untyped-def]
    r = client.post("/api/v1/admin/users", json=body, headers=auth("admin"))
    assert r.status_code == 422 and r.json()["detail"]


def test_unknown_user_and_self_disable(client: TestClient, auth) -> None:  # type: ignore[no-untyped-def]
    admin = auth("admin")
    assert client.post("/api/v1/admin/users/nobody/disable", headers=admin).status_code == 404
    r = client.post("/api/v1/admin/users/admin/disable", headers=admin)
    assert r.status_code == 409, "an administrator cannot lock themselves out"
    assert client.post("/api/v1/auth/token", data={"username": "admin", "password": PASSWORD}).status_code == 200


def test_maintenance_takes_a_drone_out_of_service(client: TestClient, auth) -> None:  # type: ignore[no-untyped-def]
    admin = auth("admin")
    r = client.put("/api/v1/admin/drones/dd-01/maintenance", json={"maintenance": True}, headers=admin)
    assert r.status_code == 200 and r.json()["state"] == "maintenance"
    drones = {d["id"]: d for d in client.get("/api/v1/drones", headers=admin).json()}
    assert drones["dd-01"]["state"] == "maintenance"
    r = client.put("/api/v1/admin/drones/dd-01/maintenance", json={"maintenance": False}, headers=admin)
    assert r.json()["state"] != "maintenance"
    missing = client.put("/api/v1/admin/drones/nope/maintenance", json={"maintenance": True}, headers=admin)
    assert missing.status_code == 404
    assert client.put("/api/v1/admin/drones/dd-01/maintenance", json={}, headers=admin).status_code == 422


def test_maintenance_is_a_column_that_a_restart_reads_back(settings: Settings, auth, client: TestClient) -> None:  # type: ignore[no-untyped-def]
    admin = auth("admin")
    assert client.put("/api/v1/admin/drones/dd-02/maintenance", json={"maintenance": True}, headers=admin).is_success
    store = client.app.state.runtime.store  # type: ignore[attr-defined]
    assert store.maintenance_flags()["dd-02"] is True
    # a second service on the same database (a restart, or another node) sees it from the table
    other_node = settings.model_copy(update={"mavlink": f"udpin:127.0.0.1:{free_udp_port()}"})
    with TestClient(create_app(other_node)) as again:
        assert again.app.state.runtime.registry.get("dd-02").maintenance is True  # type: ignore[attr-defined]
        assert again.app.state.runtime.registry.get("dd-01").maintenance is False  # type: ignore[attr-defined]
