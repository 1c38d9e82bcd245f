"""Hardened logins: lockouts per account and per address (429 + Retry-After, audited, listed and
cleared by admins), the password policy, rotating refresh tokens, sign-out that revokes, the
WebSocket's one-use ticket, a second node sharing the database, and the security headers."""

from __future__ import annotations

import io
import re
import secrets
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from dronedispatch.api.routes import events as events_route
from dronedispatch.domain.login_throttle import ACCOUNT_RULE, ThrottleRule, after_failure
from dronedispatch.domain.passwords import password_problem
from dronedispatch.service import create_app
from dronedispatch.store.db import make_engine, migrate
from dronedispatch.store.logins import LoginStore
from dronedispatch.store.users import ROLES, add_user_cli, hash_password, verify_password
from tests.api.conftest import PASSWORD, make_settings

TOKEN = "/api/v1/auth/token"
WEB = Path(__file__).resolve().parents[2] / "web"


def _login(client: TestClient, user: str, password: str = PASSWORD) -> TestClient:
    return client.post(TOKEN, data={"username": user, "password": password})  # type: ignore[return-value]


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_account_locks_after_five_failures_longer_each_time(
    client: TestClient, auth: Callable[[str], dict[str, str]]
) -> None:
    admin = auth("admin")
    for _ in range(4):
        r = _login(client, "pilot", "not-the-password")
        assert r.status_code == 401 and "Retry-After" not in r.headers
    r = _login(client, "pilot", "not-the-password")
    assert r.status_code == 429, r.text
    first_wait = int(r.headers["Retry-After"])
    assert 14 * 60 < first_wait <= 15 * 60
    # locked: even the right password is refused, and the name's case does not get around it
    for user in ("pilot", "PILOT"):
        locked = _login(client, user)
        assert locked.status_code == 429 and 0 < int(locked.headers["Retry-After"]) <= first_wait
    # the address is not locked (5 < 20): another account logs in from it
    assert _login(client, "tester").status_code == 200

    rows = client.get("/api/v1/admin/lockouts", headers=admin).json()
    account = next(x for x in rows if x["kind"] == "account")
    assert account["key"] == "pilot" and account["locked"] and account["lockouts"] == 1
    assert next(x for x in rows if x["kind"] == "address")["locked"] is False
    assert client.get("/api/v1/admin/lockouts", headers=auth("operator")).status_code == 403
    audit = client.get("/api/v1/audit", params={"target_type": "login_account"}, headers=admin).json()
    assert [e["action"] for e in audit] == ["auth.lockout"] and audit[0]["target_id"] == "pilot"

    assert client.delete(f"/api/v1/admin/lockouts/{account['id']}", headers=admin).status_code == 204
    assert client.delete(f"/api/v1/admin/lockouts/{account['id']}", headers=admin).status_code == 404
    assert _login(client, "pilot").status_code == 200
    actions = [e["action"] for e in client.get("/api/v1/audit", params={"target_type": "login_account"},
                                               headers=admin).json()]  # fmt: skip
    assert actions == ["auth.lockout_clear", "auth.lockout"]

    # a success starts the account afresh; a lockout after an earlier one (not cleared by a success) doubles
    for _ in range(5):
        r = _login(client, "operator", "wrong-wrong-wrong")
    assert r.status_code == 429 and int(r.headers["Retry-After"]) > 14 * 60
    row = next(x for x in client.get("/api/v1/admin/lockouts", headers=admin).json() if x["key"] == "operator")
    assert row["lockouts"] == 1


def test_lockouts_grow() -> None:
    t0 = datetime(2026, 12, 1, tzinfo=UTC)
    state = None
    lengths = []
    for round_ in range(8):
        at = t0 + timedelta(days=round_)
        for i in range(ACCOUNT_RULE.failures):
            state = after_failure(state, at + timedelta(seconds=i), ACCOUNT_RULE)
        assert state is not None and state.locked_until is not None
        lengths.append(state.locked_until - (at + timedelta(seconds=ACCOUNT_RULE.failures - 1)))
    assert lengths[:3] == [timedelta(minutes=15), timedelta(minutes=30), timedelta(hours=1)]
    assert lengths[-1] == timedelta(hours=24)  # the ceiling
    # failures spread wider than the window never lock
    state = None
    for i in range(20):
        state = after_failure(state, t0 + timedelta(minutes=11 * i), ACCOUNT_RULE)
        assert state.locked_until is None


def test_address_locks_after_many_failures_over_any_names(
    client: TestClient, auth: Callable[[str], dict[str, str]]
) -> None:
    admin = auth("admin")
    for i in range(19):
        assert _login(client, f"nobody-{i}", "guess-guess-guess").status_code == 401
    r = _login(client, "nobody-19", "guess-guess-guess")
    assert r.status_code == 429 and int(r.headers["Retry-After"]) > 0
    assert _login(client, "operator").status_code == 429, "the address is locked for every account"
    other = TestClient(client.app, client=("192.0.2.7", 50000))
    assert _login(other, "operator").status_code == 200, "another address is not"
    address = next(x for x in client.get("/api/v1/admin/lockouts", headers=admin).json() if x["kind"] == "address")
    assert address["key"] == "testclient" and address["locked"]
    assert client.delete(f"/api/v1/admin/lockouts/{address['id']}", headers=admin).status_code == 204
    assert _login(client, "operator").status_code == 200


def test_password_policy(client: TestClient, auth: Callable[[str], dict[str, str]], tmp_path: Path,
                         monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    admin = auth("admin")
    for password, reason in (
        ("short-pw", "at least 12 characters"),
        ("Operator2026", None),
        ("operator2026", None),
        ("6202rotarepo", None),
        ("password1234", "too common"),
        ("aaaaaaaaaaab", "too common"),
    ):
        r = client.post("/api/v1/admin/users", json={"username": "operator2026", "role": "operator",
                                                     "password": password}, headers=admin)  # fmt: skip
        assert r.status_code == 422, (password, r.text)
        detail = r.json()["detail"]
        assert (reason or "user name") in detail, detail
    ok = client.post("/api/v1/admin/users", json={"username": "operator2026", "role": "operator",
                                                  "password": "amber-kite-harbour"}, headers=admin)  # fmt: skip
    assert ok.status_code == 201, ok.text

    # `dronedispatch users add`
    monkeypatch.setenv("DD_DATABASE_URL", f"sqlite:///{tmp_path / 'cli.db'}")
    monkeypatch.setattr("sys.stdin", io.StringIO("kim\n"))
    assert add_user_cli("kim", "pilot") == 2
    assert "at least 12 characters" in capsys.readouterr().err
    monkeypatch.setattr("sys.stdin", io.StringIO("welcome12345\n"))
    assert add_user_cli("kim", "pilot") == 2
    assert "too common" in capsys.readouterr().err
    monkeypatch.setattr("sys.stdin", io.StringIO("amber-kite-harbour\n"))
    assert add_user_cli("kim", "pilot") == 0

    # the demo's passwords: DD_DEMO_PASSWORD's documented example and the random ones
    for _ in range(200):
        assert password_problem("operator", secrets.token_urlsafe(9)) is None


def test_refresh_rotates_and_a_replayed_token_ends_the_session(client: TestClient) -> None:
    first = _login(client, "operator").json()
    assert first["expires_in"] == 15 * 60 and first["refresh_expires_in"] > 11 * 3600
    r = client.post("/api/v1/auth/refresh", json={"refresh_token": first["refresh_token"]})
    assert r.status_code == 200, r.text
    second = r.json()
    assert second["refresh_token"] != first["refresh_token"] and second["username"] == "operator"
    assert client.get("/api/v1/me", headers=_bearer(second["access_token"])).json()["username"] == "operator"
    # the old refresh token is refused, and being replayed it closes the session (someone holds a copy)
    replay = client.post("/api/v1/auth/refresh", json={"refresh_token": first["refresh_token"]})
    assert replay.status_code == 401 and "already used" in replay.json()["detail"]
    assert client.post("/api/v1/auth/refresh", json={"refresh_token": second["refresh_token"]}).status_code == 401
    assert client.get("/api/v1/me", headers=_bearer(second["access_token"])).status_code == 401
    assert client.post("/api/v1/auth/refresh", json={"refresh_token": "ddr_unknown"}).status_code == 401


def test_logout_revokes_access_and_refresh_tokens(client: TestClient) -> None:
    a = _login(client, "pilot").json()
    b = _login(client, "pilot").json()  # another sign-in of the same account (another browser)
    assert client.get("/api/v1/me", headers=_bearer(a["access_token"])).status_code == 200
    r = client.post("/api/v1/auth/logout", headers=_bearer(a["access_token"]),
                    json={"refresh_token": a["refresh_token"]})  # fmt: skip
    assert r.status_code == 204
    gone = client.get("/api/v1/me", headers=_bearer(a["access_token"]))
    assert gone.status_code == 401 and "signed out" in gone.json()["detail"]
    assert client.post("/api/v1/auth/refresh", json={"refresh_token": a["refresh_token"]}).status_code == 401
    assert client.get("/api/v1/me", headers=_bearer(b["access_token"])).status_code == 200, "other sign-ins stay"
    # signing out with the refresh token alone (the access token already expired)
    assert client.post("/api/v1/auth/logout", json={"refresh_token": b["refresh_token"]}).status_code == 204
    assert client.get("/api/v1/me", headers=_bearer(b["access_token"])).status_code == 401


def test_websocket_ticket_is_one_use_and_the_access_token_still_works(client: TestClient) -> None:
    tok = _login(client, "operator").json()
    r = client.post("/api/v1/auth/ws-ticket", headers=_bearer(tok["access_token"]))
    assert r.status_code == 200 and r.json()["expires_in"] == 30
    ticket = r.json()["ticket"]
    with client.websocket_connect(f"/api/v1/events?token={ticket}") as ws:
        snap = ws.receive_json()
        assert snap["type"] == "snapshot" and snap["user"] == "operator"
    with pytest.raises(WebSocketDisconnect) as exc, client.websocket_connect(f"/api/v1/events?token={ticket}") as ws:
        ws.receive_json()
    assert exc.value.code == 4401
    assert client.post("/api/v1/auth/ws-ticket").status_code == 401
    # outside tools keep the documented ?token=<access token>
    with client.websocket_connect(f"/api/v1/events?token={tok['access_token']}") as ws:
        assert ws.receive_json()["user"] == "operator"
    # a ticket of a session signed out since opens nothing
    late = client.post("/api/v1/auth/ws-ticket", headers=_bearer(tok["access_token"])).json()["ticket"]
    client.post("/api/v1/auth/logout", headers=_bearer(tok["access_token"]))
    with pytest.raises(WebSocketDisconnect) as exc, client.websocket_connect(f"/api/v1/events?token={late}") as ws:
        ws.receive_json()
    assert exc.value.code == 4401


def test_a_second_node_sharing_the_database_honours_disable_and_sign_out(tmp_path: Path) -> None:
    a_settings = make_settings(tmp_path)
    b_settings = make_settings(tmp_path)  # the same database file and key; its own MAVLink port
    assert a_settings.database_url == b_settings.database_url
    with TestClient(create_app(a_settings)) as a, TestClient(create_app(b_settings)) as b:
        store = a.app.state.runtime.store  # type: ignore[attr-defined]
        hashed = hash_password(PASSWORD)
        for role in ROLES:
            store.upsert_user(role, hashed, role)
        admin = _bearer(_login(a, "admin").json()["access_token"])
        pilot = _login(a, "pilot").json()
        assert b.get("/api/v1/me", headers=_bearer(pilot["access_token"])).status_code == 200
        assert a.post("/api/v1/admin/users/pilot/disable", headers=admin).status_code == 200
        refused = b.get("/api/v1/me", headers=_bearer(pilot["access_token"]))
        assert refused.status_code == 401 and "disabled" in refused.json()["detail"]
        assert b.post("/api/v1/auth/refresh", json={"refresh_token": pilot["refresh_token"]}).status_code == 401
        # lockouts counted on one node hold on the other
        for _ in range(5):
            a.post(TOKEN, data={"username": "tester", "password": "wrong-password"})
        assert b.post(TOKEN, data={"username": "tester", "password": PASSWORD}).status_code == 429
        # sign-out on one node ends the session on the other
        op = _login(b, "operator").json()
        assert a.post("/api/v1/auth/logout", headers=_bearer(op["access_token"])).status_code == 204
        assert b.get("/api/v1/me", headers=_bearer(op["access_token"])).status_code == 401


def test_security_headers_on_page_api_and_errors(client: TestClient, auth: Callable[[str], dict[str, str]]) -> None:
    for path, headers in (("/ui/", {}), ("/ui/app.js", {}), ("/api/v1/me", auth("operator")), ("/api/v1/me", {}),
                          ("/healthz", {}), ("/api/v1/no-such-route", {})):  # fmt: skip
        r = client.get(path, headers=headers)
        csp = r.headers["Content-Security-Policy"]
        assert "default-src 'self'" in csp and "script-src 'self'" in csp and "frame-ancestors 'none'" in csp, path
        assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
        assert re.search(r"connect-src 'self' ws: wss:", csp)
        assert r.headers["X-Content-Type-Options"] == "nosniff"
        assert r.headers["Referrer-Policy"] == "no-referrer"


def test_web_files_have_no_inline_script_or_style_attribute() -> None:
    for page in sorted(WEB.glob("*.html")):
        html = page.read_text()
        for tag in re.findall(r"<script\b[^>]*>", html):
            assert "src=" in tag, f"{page.name}: inline script {tag}"
        assert not re.search(r"\son[a-z]+\s*=", html), f"{page.name}: inline event handler"
    for source in sorted([*WEB.glob("*.js"), *WEB.glob("*.html")]):
        text = source.read_text()
        assert not re.search(r"""<[a-z][^>]*\sstyle\s*=\s*["'`$]""", text), f"{source.name}: style attribute"
        assert "events?token=${encodeURIComponent(session.token)" not in text


def test_argon2_dummy_verify_refuses() -> None:
    assert not verify_password(hash_password(secrets.token_urlsafe(16)), "")


def test_quiet_keys_are_forgotten_but_running_locks_kept(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'throttle.db'}")
    migrate(engine)
    store = LoginStore(engine)
    t0 = datetime(2026, 12, 1, tzinfo=UTC)
    store.record_failure("account", "guessed-name", t0, ACCOUNT_RULE, "guessed-name")
    for i in range(ACCOUNT_RULE.failures):  # locked until t0 + 15 min
        store.record_failure("account", "kim", t0 + timedelta(seconds=i), ACCOUNT_RULE, "kim")
    long_lock = ThrottleRule(1, timedelta(minutes=10), timedelta(days=3), timedelta(days=3))
    store.record_failure("address", "192.0.2.1", t0, long_lock, "x")  # locked until t0 + 3 days
    store.record_failure("account", "ana", t0 + timedelta(days=2), ACCOUNT_RULE, "ana")
    assert {r.key for r in store.throttles()} == {"ana", "192.0.2.1"}
    assert store.locked_until([("address", "192.0.2.1")], t0 + timedelta(days=2)) == t0 + timedelta(days=3)


def test_open_event_stream_closed_after_sign_out_or_disable(
    client: TestClient, auth: Callable[[str], dict[str, str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(events_route, "RECHECK_S", 0.2)
    for end in ("logout", "disable"):
        tok = _login(client, "pilot").json()
        ticket = client.post("/api/v1/auth/ws-ticket", headers=_bearer(tok["access_token"])).json()["ticket"]
        with client.websocket_connect(f"/api/v1/events?token={ticket}") as ws:
            assert ws.receive_json()["type"] == "snapshot"
            if end == "logout":
                client.post("/api/v1/auth/logout", headers=_bearer(tok["access_token"]))
            else:
                client.post("/api/v1/admin/users/pilot/disable", headers=auth("admin"))
            with pytest.raises(WebSocketDisconnect) as exc:
                while True:
                    ws.receive_json()
            assert exc.value.code == 4401
