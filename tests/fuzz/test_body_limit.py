"""The webhook and CAP endpoints refuse bodies over their size limit with 413 before holding them
whole, whether the length is announced or the body comes in chunks; hostile XML gets 422."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from dronedispatch.ingest.base import MAX_PAYLOAD_BYTES
from dronedispatch.ingest.cap import MAX_CAP_BYTES
from dronedispatch.service import create_app
from tests.api.conftest import INGEST_KEY, make_settings

from .test_ingest_fuzz import BILLION_LAUGHS, XXE_FILE

WEBHOOK = "/api/v1/ingest/webhook"
CAP = "/api/v1/ingest/cap"
KEY = {"X-API-Key": INGEST_KEY}


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    settings = make_settings(Path(tmp_path_factory.mktemp("body-limit")))
    with TestClient(create_app(settings)) as c:
        yield c


def _chunks(total: int, size: int = 64 * 1024) -> Iterator[bytes]:
    sent = 0
    while sent < total:
        n = min(size, total - sent)
        sent += n
        yield b" " * n


@pytest.mark.parametrize(("path", "limit"), [(WEBHOOK, MAX_PAYLOAD_BYTES), (CAP, MAX_CAP_BYTES)])
def test_bodies_over_the_limit_get_413(client: TestClient, path: str, limit: int) -> None:
    # announced: refused from the header, even before the key is looked at
    for headers in (KEY, {}):
        r = client.post(path, content=b" " * (limit + 1), headers=headers)
        assert r.status_code == 413, r.text
        assert str(limit) in r.json()["detail"]
    # chunked, no length: refused once it passes the limit
    r = client.post(path, content=_chunks(limit * 4), headers=KEY)
    assert r.status_code == 413, r.text
    # a forged small length does not let a large body in either
    r = client.post(path, content=_chunks(limit * 2), headers={**KEY, "Content-Length": "10"})
    assert r.status_code in (400, 413, 422), r.text
    r = client.post(path, content=b"{}", headers={**KEY, "Content-Length": "ten"})
    assert r.status_code in (400, 422), r.text
    # at the limit the body is read and judged on what it says
    r = client.post(path, content=b" " * limit, headers=KEY)
    assert r.status_code == 422, r.text


def test_hostile_xml_and_bytes_get_422(client: TestClient) -> None:
    headers = {**KEY, "Content-Type": "application/xml"}
    for body in (BILLION_LAUGHS.encode(), XXE_FILE.encode(), b"\xff\xfe<alert/>", b"<a>" * 50_000):
        r = client.post(CAP, content=body, headers=headers)
        assert r.status_code == 422, r.text
        assert "root:" not in r.text
    for body in (b"\xff\xfe{}", b"[" * 100_000, b'{"lat": NaN}', b"1e999"):
        r = client.post(WEBHOOK, content=body, headers={**KEY, "Content-Type": "application/json"})
        assert r.status_code == 422, r.text
    assert client.get("/healthz").status_code == 200  # the service is still there
