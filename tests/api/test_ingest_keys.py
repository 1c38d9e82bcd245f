"""Ingest keys: kept hashed, each scoped to its source, revoked on every node at once, audited."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from dronedispatch.cli import main
from dronedispatch.service import create_app
from dronedispatch.settings import Settings
from dronedispatch.store.audit_chain import verify_chain
from tests.api.conftest import INGEST_KEY, make_settings
from tests.ingest.capdata import cap_flood_sent_at

WEBHOOK = {"category": "fire", "severity": 3, "location": {"lat": 37.39, "lon": 126.63}, "description": "smoke"}
KEYS = "/api/v1/admin/ingest-keys"


def post_webhook(client: TestClient, key: str) -> int:
    return client.post("/api/v1/ingest/webhook", json=WEBHOOK, headers={"X-API-Key": key}).status_code


def post_cap(client: TestClient, key: str) -> int:
    headers = {"X-API-Key": key, "Content-Type": "application/xml"}
    return client.post("/api/v1/ingest/cap", content=cap_flood_sent_at(), headers=headers).status_code


def test_keys_are_scoped_revoked_on_every_node_and_audited(
    client: TestClient, auth: Callable[[str], dict[str, str]], settings: Settings, tmp_path: Path
) -> None:
    admin = auth("admin")
    assert client.post(KEYS, json={"source": "webhook"}, headers=auth("operator")).status_code == 403
    assert client.post(KEYS, json={"source": "frigate"}, headers=admin).status_code == 422
    r = client.post(KEYS, json={"source": "webhook"}, headers=admin)
    assert r.status_code == 201, r.text
    created = r.json()
    key, key_id = created["key"], created["id"]
    assert created["source"] == "webhook" and created["created_by"] == "admin" and created["revoked_at"] is None

    # only the hash is stored; the list never shows a key
    runtime = client.app.state.runtime  # type: ignore[attr-defined]
    (row,) = runtime.ingest_keys.all_keys()
    assert row.key_sha256 == hashlib.sha256(key.encode()).hexdigest() and key not in str(row.model_dump())
    listed = client.get(KEYS, headers=admin).json()
    assert [k["id"] for k in listed] == [key_id] and "key" not in listed[0]
    assert listed[0]["last_used_at"] is None

    assert post_webhook(client, key) == 202
    assert client.get(KEYS, headers=admin).json()[0]["last_used_at"] is not None
    # a CAP alert is not the webhook's to send
    r = client.post("/api/v1/ingest/cap", content=cap_flood_sent_at(),
                    headers={"X-API-Key": key, "Content-Type": "application/xml"})  # fmt: skip
    assert r.status_code == 403
    assert "belongs to source 'webhook'" in r.json()["detail"] and "'cap'" in r.json()["detail"]
    # a key from the settings (the old way) still sends either
    assert post_webhook(client, INGEST_KEY) == 202 and post_cap(client, INGEST_KEY) == 202

    # a second node on the same database; the CLI adds a key without restarting either
    other = create_app(make_settings(tmp_path))
    with TestClient(other) as node2:
        assert post_webhook(node2, key) == 202
        assert main(["ingest-keys", "add", "cap", "--database-url", settings.database_url, "--by", "kim"]) == 0
        (cap_key,) = [k for k in runtime.ingest_keys.all_keys() if k.source == "cap"]
        assert cap_key.created_by == "kim"

        r = client.delete(f"{KEYS}/{key_id}", headers=admin)
        assert r.status_code == 200 and r.json()["revoked_at"] is not None and r.json()["revoked_by"] == "admin"
        assert post_webhook(node2, key) == 401 and post_webhook(client, key) == 401  # at once, on every node
        assert client.delete(f"{KEYS}/999", headers=admin).status_code == 404

    actions = [(e.action, e.actor, e.detail.get("source")) for e in runtime.store.audit_log(target_type="ingest_key")]
    assert actions == [("ingest_key.revoke", "admin", "webhook"), ("ingest_key.add", "kim", "cap"),
                       ("ingest_key.add", "admin", "webhook")]  # fmt: skip
    assert verify_chain(runtime.engine).holds


def test_cli_adds_lists_and_revokes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url = f"sqlite:///{tmp_path / 'keys.db'}"
    assert main(["ingest-keys", "add", "webhook", "--database-url", url]) == 0
    key = capsys.readouterr().out.strip()
    assert key.startswith("ddk_") and len(key) > 40
    assert main(["ingest-keys", "add", "nosuch", "--database-url", url]) == 2
    assert "unknown ingest source" in capsys.readouterr().err
    assert main(["ingest-keys", "list", "--database-url", url]) == 0
    out = capsys.readouterr().out
    assert "webhook\tactive" in out and key not in out
    assert main(["ingest-keys", "revoke", "1", "--database-url", url, "--by", "kim"]) == 0
    assert main(["ingest-keys", "list", "--database-url", url]) == 0
    out = capsys.readouterr().out
    assert "ingest key 1 of source 'webhook' revoked" in out and "\trevoked " in out and " by kim\t" in out
    assert main(["ingest-keys", "revoke", "7", "--database-url", url]) == 2
