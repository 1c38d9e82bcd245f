"""Property-based run of every documented operation against the served app: no input may cause a 5xx.

The app runs for real (uvicorn on a free loopback port, SQLite store, a MAVLink endpoint nobody
talks to), so requests go through the same stack a browser uses. Schemathesis generates the
requests from the app's own OpenAPI schema; every one carries an admin token, so the handlers
behind the role checks are reached too. The example count is bounded to keep the run short.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import schemathesis
import uvicorn
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.core.result import Ok

from dronedispatch.service import create_app
from dronedispatch.store.users import hash_password
from tests.api.conftest import INGEST_KEY, PASSWORD, make_settings
from tests.fixtures.services import free_tcp_port

#: Examples per operation; with about twenty operations the run stays well under a minute.
MAX_EXAMPLES = 30


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, dict[str, str]]]:
    """(base URL, admin headers) of the app served on a free port for this module."""
    tmp: Path = tmp_path_factory.mktemp("schemathesis")
    app = create_app(make_settings(tmp))
    port = free_tcp_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, name="schemathesis-uvicorn", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:  # uvicorn offers no awaitable from another thread
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the app did not start")
        time.sleep(0.05)
    store = app.state.runtime.store
    store.upsert_user("admin", hash_password(PASSWORD), "admin")
    base = f"http://127.0.0.1:{port}"
    token = httpx.post(f"{base}/api/v1/auth/token", data={"username": "admin", "password": PASSWORD}).json()
    headers = {"Authorization": f"Bearer {token['access_token']}"}
    # something to act on: an incident the generated ids can hit
    httpx.post(
        f"{base}/api/v1/incidents",
        json={"category": "fire", "location": {"lat": 37.3926, "lon": 126.6378}},
        headers=headers,
    ).raise_for_status()
    try:
        yield base, headers
    finally:
        server.should_exit = True
        thread.join(timeout=15)


def _exercise(operation: schemathesis.APIOperation, base: str, headers: dict[str, str]) -> int:
    """Run ``MAX_EXAMPLES`` generated requests for one operation; raise on the first 5xx. Returns how many were sent."""
    sent_count = 0

    @given(case=operation.as_strategy())
    @settings(
        max_examples=MAX_EXAMPLES,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    )
    def run(case: schemathesis.Case) -> None:
        nonlocal sent_count
        sent_count += 1
        sent = dict(headers)
        if case.path == "/api/v1/ingest/webhook":
            sent["X-API-Key"] = INGEST_KEY  # reach the parser, not only the key check
        if case.path == "/api/v1/auth/logout":
            sent.pop("Authorization")  # signing the admin out would leave every later operation at 401
        case.call_and_validate(base_url=base, headers=sent, checks=[not_a_server_error], timeout=30)

    run()
    return sent_count


def test_no_server_errors(served: tuple[str, dict[str, str]]) -> None:
    base, admin = served
    schema = schemathesis.openapi.from_dict(httpx.get(f"{base}/openapi.json").json())
    failures: list[str] = []
    tried = cases = 0
    for result in schema.get_all_operations():
        if not isinstance(result, Ok):
            failures.append(f"the schema has an operation schemathesis cannot read: {result.err()}")
            continue
        operation = result.ok()
        tried += 1
        try:
            cases += _exercise(operation, base, admin)
        except (Exception, BaseExceptionGroup) as exc:
            failures.append(f"{operation.method.upper()} {operation.path}: {exc}")
    print(f"\nschemathesis: {tried} operations, {cases} requests sent, {len(failures)} operations with a 5xx")
    assert tried >= 15, "the schema lists the API's operations"
    assert not failures, "\n\n".join(failures)
