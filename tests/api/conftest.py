from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from dronedispatch.service import create_app
from dronedispatch.settings import Settings
from dronedispatch.store.users import ROLES, hash_password
from tests.fixtures.services import free_udp_port

PASSWORD = "test-password-1"
INGEST_KEY = "test-ingest-key"


def make_settings(tmp_path: Path, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "database_url": f"sqlite:///{tmp_path / 'dd.db'}",
        "mavlink": f"udpin:127.0.0.1:{free_udp_port()}",
        "secret_key": "test-secret-key-that-is-long-enough-for-hs256",
        "ingest_api_keys": [INGEST_KEY],
    }
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return make_settings(tmp_path)


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    app = create_app(settings)
    with TestClient(app) as c:
        store = app.state.runtime.store
        hashed = hash_password(PASSWORD)
        for role in ROLES:
            store.upsert_user(role, hashed, role)
        yield c


@pytest.fixture
def auth(client: TestClient) -> Callable[[str], dict[str, str]]:
    tokens: dict[str, str] = {}

    def headers(role: str) -> dict[str, str]:
        if role not in tokens:
            r = client.post("/api/v1/auth/token", data={"username": role, "password": PASSWORD})
            assert r.status_code == 200, r.text
            tokens[role] = r.json()["access_token"]
        return {"Authorization": f"Bearer {tokens[role]}"}

    return headers
