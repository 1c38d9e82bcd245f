"""The database down for a while: writes wait for it in order, requests are refused with 503 and a reason."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Awaitable, Callable

import psycopg
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy.exc import IntegrityError, OperationalError

from dronedispatch.api.errors import install_error_handlers
from dronedispatch.app import writes as writes_module
from dronedispatch.app.writes import OrderedWrites
from dronedispatch.store.availability import database_unavailable


def refused() -> OperationalError:
    return OperationalError("SELECT 1", {}, psycopg.OperationalError("connection refused"))


def test_which_store_errors_mean_the_database_is_away() -> None:
    assert database_unavailable(refused())
    assert database_unavailable(OperationalError("x", {}, sqlite3.OperationalError("database is locked")))
    # a statement the database refused is the caller's problem, not an outage: never retried
    assert not database_unavailable(OperationalError("x", {}, sqlite3.OperationalError("no such table: missions")))
    assert not database_unavailable(IntegrityError("x", {}, psycopg.IntegrityError("duplicate key")))
    assert not database_unavailable(RuntimeError("boom"))


async def test_writes_during_an_outage_wait_for_the_database_and_keep_their_order(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(writes_module, "RETRY_FIRST_S", 0.01)
    monkeypatch.setattr(writes_module, "RETRY_MAX_S", 0.02)
    writes = OrderedWrites(retry_if=database_unavailable)
    up = asyncio.Event()
    committed: list[str] = []
    attempts = {"enroute": 0}

    def job(state: str) -> Callable[[], Awaitable[str]]:
        async def run() -> str:
            attempts[state] = attempts.get(state, 0) + 1
            if not up.is_set():
                raise refused()
            committed.append(state)
            return state

        return run

    tasks = [writes.submit(1, job(s)) for s in ("enroute", "on_scene", "returning")]
    await asyncio.sleep(0.1)
    assert committed == [] and attempts["enroute"] > 2, "the first write is retried, the rest wait behind it"
    assert "on_scene" not in attempts, "a later transition never overtakes an earlier one"
    up.set()
    assert [await t for t in tasks] == ["enroute", "on_scene", "returning"]
    assert committed == ["enroute", "on_scene", "returning"], "each written once, in order"


async def test_other_failures_are_not_retried_and_shutdown_stops_waiting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(writes_module, "RETRY_FIRST_S", 0.01)
    writes = OrderedWrites(retry_if=database_unavailable)
    calls = 0

    async def bad() -> None:
        nonlocal calls
        calls += 1
        raise IntegrityError("x", {}, psycopg.IntegrityError("duplicate key"))

    with pytest.raises(IntegrityError):
        await writes.submit("m", bad)
    assert calls == 1

    async def down() -> None:
        raise refused()

    pending = writes.submit("m", down)
    await asyncio.sleep(0.05)
    assert not pending.done()
    writes.stop_retrying()
    with pytest.raises(OperationalError):
        await pending
    await writes.drain()


def test_a_request_while_the_database_is_down_gets_503_with_a_reason() -> None:
    app = FastAPI()
    install_error_handlers(app)

    @app.get("/down")
    def down() -> None:
        raise refused()

    @app.get("/broken")
    def broken() -> None:
        raise OperationalError("x", {}, sqlite3.OperationalError("no such table: missions"))

    client = TestClient(app, raise_server_exceptions=False)
    r = client.get("/down")
    assert r.status_code == 503 and r.json()["code"] == "database_unavailable"
    assert "database" in r.json()["detail"] and r.headers["Retry-After"] == "5"
    assert client.get("/broken").status_code == 500
