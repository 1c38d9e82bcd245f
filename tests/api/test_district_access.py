"""Per-district access, route by route, against the served app (uvicorn on loopback, SQLite).

A Cheongna operator and a Cheongna pilot see Cheongna only; the centre's supervisors (operator and
pilot without a district) see the whole city. Every route that takes an object's id is called with a
Songdo object's id: the Cheongna accounts get exactly the answer an unknown id gets (404), the
supervisors get past it. Lists and the WebSocket event stream (snapshot and live events) are
filtered the same way, and a route added with an id but without the district check fails here.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
import websockets
from fastapi.routing import iter_route_contexts

from dronedispatch.api.access import CHECKS
from dronedispatch.domain.docks import DockState, DoorState
from dronedispatch.events import AlertRaised, DockChanged, DroneChanged, IncidentChanged
from dronedispatch.runtime import Runtime
from dronedispatch.schemas import Alert, IncidentPublic
from dronedispatch.service import create_app
from dronedispatch.store.db import make_engine
from dronedispatch.store.models import Evidence, Mission
from dronedispatch.store.repo import Store
from dronedispatch.store.users import add_user_cli, hash_password
from tests.api.conftest import make_settings
from tests.fixtures.services import free_tcp_port

PASSWORD = "district-access-password-1"
SONGDO = {"lat": 37.3926, "lon": 126.6378}  # Central Park
CHEONGNA = {"lat": 37.531, "lon": 126.643}  # Lake Park
ACCOUNTS = {  # name: (role, district)
    "cheongna-op": ("operator", "cheongna"),
    "cheongna-pilot": ("pilot", "cheongna"),
    "supervisor": ("operator", None),
    "supervisor-pilot": ("pilot", None),
    "admin": ("admin", None),
}
#: Path parameters that are not checked against the caller's district, and why.
UNSCOPED = {
    "report_id": "the split route checks the report's incident, which is in the same path (incident_id)",
    "username": "administration: admins work for the whole city",
    "lockout_id": "administration: admins work for the whole city",
    "key_id": "ingest keys: admins only, and sources belong to the city",
    "run_id": "scenario runs: testers only, who work for the whole city",
    "name": "a scenario run's file: testers only",
    "token": "a share link: the link itself is the access, no account",
}


@dataclass
class City:
    base: str
    runtime: Runtime
    headers: dict[str, dict[str, str]]
    ids: dict[str, Any]  # path parameter -> a Songdo object's id
    cheongna: dict[str, int]  # a Cheongna incident and its mission


def _serve(runtime: Runtime, app: Any) -> tuple[uvicorn.Server, threading.Thread, str]:
    port = free_tcp_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", ws="websockets-sansio")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "the service did not start"
        time.sleep(0.05)
    return server, thread, f"127.0.0.1:{port}"


@pytest.fixture(scope="module")
def city(tmp_path_factory: pytest.TempPathFactory) -> Iterator[City]:
    tmp = tmp_path_factory.mktemp("district")
    settings = make_settings(tmp, recordings_dir=tmp / "recordings")
    runtime = Runtime(settings)
    server, thread, address = _serve(runtime, create_app(settings, runtime))
    try:
        store = runtime.store
        hashed = hash_password(PASSWORD)
        for name, (role, district) in ACCOUNTS.items():
            store.upsert_user(name, hashed, role, district=district)
        base = f"http://{address}"
        with httpx.Client(base_url=base, timeout=30) as http:
            headers = {}
            for name in ACCOUNTS:
                r = http.post("/api/v1/auth/token", data={"username": name, "password": PASSWORD})
                assert r.status_code == 200, r.text
                headers[name] = {"Authorization": f"Bearer {r.json()['access_token']}"}

            def incident(where: dict[str, float], who: str, description: str) -> int:
                body = {"category": "fire", "severity": 3, "location": where, "description": description}
                r = http.post("/api/v1/incidents", json=body, headers=headers[who])
                assert r.status_code == 201, r.text
                return int(r.json()["id"])

            songdo = incident(SONGDO, "supervisor", "smoke in the park")
            cheongna = incident(CHEONGNA, "cheongna-op", "smoke by the lake")
            # no vehicle flies here: the missions are written as the dispatcher would leave them
            m_songdo = store.add_mission(Mission(incident_id=songdo, drone_id="dd-02", sysid=2, template="orbit",
                                                 state="enroute", created_by="supervisor"))  # fmt: skip
            m_cheongna = store.add_mission(Mission(incident_id=cheongna, drone_id="dd-01", sysid=1, template="orbit",
                                                   state="enroute", created_by="cheongna-op"))  # fmt: skip
            clip = tmp / "songdo.vtt"
            clip.write_text("WEBVTT\n")
            evidence = store.add_evidence(Evidence(
                mission_id=m_songdo.id, incident_id=songdo, kind="subtitles", path=str(clip), media_type="text/vtt",
                sha256=hashlib.sha256(clip.read_bytes()).hexdigest(), size_bytes=clip.stat().st_size,
            ))  # fmt: skip
            r = http.post(f"/api/v1/incidents/{songdo}/share", json={}, headers=headers["supervisor"])
            assert r.status_code == 201, r.text
            share = r.json()["id"]
        report = store.incident_reports(songdo)[0].id
        ids = {
            "incident_id": songdo, "mission_id": m_songdo.id, "evidence_id": evidence.id, "drone_id": "dd-06",
            "camera_id": "cctv-songdo-centralpark", "share_id": share, "report_id": report,
        }  # fmt: skip
        assert m_cheongna.id is not None
        yield City(base, runtime, headers, ids, {"incident": cheongna, "mission": m_cheongna.id})
    finally:
        server.should_exit = True
        thread.join(30)


def _id_routes() -> list[tuple[str, str, Any]]:
    """(method, path, route) of every route of the app whose path names something."""
    app = create_app(make_settings(Path("/nonexistent")))
    found = []
    for ctx in iter_route_contexts(app.routes):
        if ctx.path and "{" in ctx.path:
            for method in sorted(ctx.methods or {"WS"}):
                found.append((method, ctx.path, ctx))
    return found


def _calls(dependant: Any) -> set[Any]:
    """Every dependency callable a route's dependant reaches."""
    out = set()
    for d in dependant.dependencies:
        out.add(d.call)
        out |= _calls(d)
    return out


def test_every_route_taking_an_id_checks_the_district() -> None:
    routes = _id_routes()
    assert len(routes) > 25
    unchecked = []
    for method, path, ctx in routes:
        calls = _calls(ctx.dependant)
        for param in re.findall(r"{(\w+)}", path):
            if param in UNSCOPED:
                continue
            if param not in CHECKS or CHECKS[param] not in calls:
                unchecked.append(f"{method} {path}: {param}")
    assert not unchecked, "routes taking an id without the district check (use IncidentId, MissionId …):\n" + (
        "\n".join(unchecked)
    )


def _url(path: str, ids: dict[str, Any]) -> str:
    return re.sub(r"{(\w+)}", lambda m: str(ids[m.group(1)]), path)


def _call(http: httpx.Client, method: str, url: str, headers: dict[str, str]) -> httpx.Response:
    body: dict[str, Any] = {"sdp": "v=0", "type": "offer"} if url.endswith("/offer") else {}
    if url.endswith("/commands"):
        body = {"command": "pause"}
    if url.endswith("/maintenance"):
        body = {"maintenance": False}
    if url.endswith("/coverage") and method == "PUT":
        body = {"mode": "none"}
    return http.request(method, url, headers=headers, json=body if method in ("POST", "PUT") else None)


def test_a_district_account_reaches_no_object_of_another_district_by_id(city: City) -> None:
    unknown = {
        "incident_id": 999_999, "mission_id": 999_999, "evidence_id": 999_999, "drone_id": "dd-99",
        "camera_id": "cctv-nowhere", "share_id": "nosuchshare", "report_id": 999_999,
    }  # fmt: skip
    checked = 0
    with httpx.Client(base_url=city.base, timeout=30) as http:
        for method, path, _ in _id_routes():
            params = set(re.findall(r"{(\w+)}", path))
            if params & set(UNSCOPED) - {"report_id"}:
                continue
            url = _url(path, city.ids)
            for district_account, supervisor in (("cheongna-op", "supervisor"), ("cheongna-pilot", "supervisor-pilot")):
                r = _call(http, method, url, city.headers[district_account])
                if r.status_code == 403 and "may not do this" in r.text:
                    continue  # the role may not use the route at all, whatever the district
                assert r.status_code == 404, f"{district_account} {method} {url}: {r.status_code} {r.text}"
                # the same answer as an id that does not exist: the id reveals nothing
                first = next(p for p in re.findall(r"{(\w+)}", path) if p in CHECKS)
                nothing = _call(http, method, _url(path, {**city.ids, first: unknown[first]}),
                                city.headers[supervisor])  # fmt: skip
                assert nothing.status_code == 404, f"{method} {path} with an unknown {first}: {nothing.text}"
                assert r.json().get("code") == nothing.json().get("code"), (url, r.text, nothing.text)
                assert r.json()["detail"] == nothing.json()["detail"].replace(
                    str(unknown[first]), str(city.ids[first])
                ), (url, r.text, nothing.text)
                s = _call(http, method, url, city.headers[supervisor])
                assert s.status_code != 404 or s.json()["detail"] != r.json()["detail"], (
                    f"{supervisor} {method} {url}: {s.status_code} {s.text}"
                )
                checked += 1
    assert checked >= 25


def test_lists_show_a_district_account_its_district_only(city: City) -> None:
    songdo, cheongna = city.ids["incident_id"], city.cheongna["incident"]
    with httpx.Client(base_url=city.base, timeout=30) as http:

        def get(path: str, who: str) -> Any:
            r = http.get(path, headers=city.headers[who])
            assert r.status_code == 200, r.text
            return r.json()

        me = {"username": "cheongna-op", "role": "operator", "district": "cheongna"}
        assert get("/api/v1/me", "cheongna-op") == me
        assert get("/api/v1/me", "supervisor") == {"username": "supervisor", "role": "operator"}
        assert {i["id"] for i in get("/api/v1/incidents", "cheongna-op")} == {cheongna}
        assert {i["id"] for i in get("/api/v1/incidents", "supervisor")} >= {songdo, cheongna}
        assert {m["incident_id"] for m in get("/api/v1/missions", "cheongna-pilot")} == {cheongna}
        assert {m["incident_id"] for m in get("/api/v1/missions", "supervisor")} >= {songdo, cheongna}
        # Cheongna's own drones, and dd-01 of Songdo while it flies for a Cheongna incident
        assert {d["id"] for d in get("/api/v1/drones", "cheongna-op")} == {"dd-03", "dd-07", "dd-01"}
        assert len(get("/api/v1/drones", "supervisor")) == 8
        assert get("/api/v1/drones/dd-01", "cheongna-op")["id"] == "dd-01"
        assert {d["id"] for d in get("/api/v1/docks", "cheongna-op")} == {"cheongna"}
        cameras = {c["id"] for c in get("/api/v1/cameras", "cheongna-op")}
        assert cameras == {"cctv-cheongna-lakepark", "cctv-cheongna-canal", "cctv-cheongna-ic",
                           "sensor-cheongna-waterlevel"}  # fmt: skip
        assert {c["camera_id"] for c in get("/api/v1/cameras/video", "cheongna-op")} <= cameras
        plan = get("/api/v1/assignments", "cheongna-op")
        assert all(a["incident_id"] == cheongna for a in plan["assignments"] + plan["unassigned"])
        # the city's map stays whole
        assert get("/api/v1/airspace", "cheongna-op") == get("/api/v1/airspace", "supervisor")
        assert get("/api/v1/mission-templates", "cheongna-op") == get("/api/v1/mission-templates", "supervisor")


def test_writes_and_statistics_are_held_to_the_district(city: City) -> None:
    with httpx.Client(base_url=city.base, timeout=30) as http:
        op = city.headers["cheongna-op"]
        r = http.post("/api/v1/incidents", headers=op,
                      json={"category": "fire", "severity": 3, "location": SONGDO})  # fmt: skip
        assert r.status_code == 403, r.text
        assert "songdo" in r.json()["detail"] and "cheongna" in r.json()["detail"]
        r = http.post("/api/v1/incidents", headers=op,
                      json={"category": "fire", "severity": 3, "camera_id": "cctv-songdo-gtower"})  # fmt: skip
        assert r.status_code == 403, r.text
        r = http.get("/api/v1/stats/outcomes", params={"district": "songdo"}, headers=op)
        assert r.status_code == 403, r.text
        r = http.get("/api/v1/stats/outcomes", params={"group_by": "district"}, headers=op)
        assert r.status_code == 200, r.text
        assert r.json()["district"] == "cheongna"
        assert [row["key"] for row in r.json()["rows"]] == ["cheongna"], r.json()
        r = http.get("/api/v1/stats/outcomes", params={"district": "songdo"}, headers=city.headers["supervisor"])
        assert r.status_code == 200 and r.json()["district"] == "songdo"
        # the admin API: a known district for an operator or pilot only
        admin = city.headers["admin"]
        new = {"username": "yeongjong-op", "role": "operator", "password": "amber-kite-harbour-9"}
        r = http.post("/api/v1/admin/users", headers=admin, json={**new, "district": "atlantis"})
        assert r.status_code == 422 and "unknown district" in r.json()["detail"]
        r = http.post("/api/v1/admin/users", headers=admin, json={**new, "role": "tester", "district": "yeongjong"})
        assert r.status_code == 422 and "whole city" in r.json()["detail"]
        r = http.post("/api/v1/admin/users", headers=admin, json={**new, "district": "yeongjong"})
        assert r.status_code == 201 and r.json()["district"] == "yeongjong"
        listed = {u["username"]: u["district"] for u in http.get("/api/v1/admin/users", headers=admin).json()}
        assert listed["yeongjong-op"] == "yeongjong" and listed["supervisor"] is None


async def _follow(address: str, token: str, out: list[dict[str, Any]], until: str) -> None:
    async with websockets.connect(f"ws://{address}/api/v1/events?token={token}", max_size=None) as ws:
        async for raw in ws:
            msg = json.loads(raw)
            out.append(msg)
            if msg["type"] == "incident" and msg["data"]["description"] == until:
                return


def test_the_event_stream_is_filtered_per_connection(city: City) -> None:
    address = city.base.removeprefix("http://")
    tokens = {who: h["Authorization"].removeprefix("Bearer ") for who, h in city.headers.items()}
    songdo_mission, cheongna_mission = city.ids["mission_id"], city.cheongna["mission"]
    bus = city.runtime.bus
    drones = {d.id: d for d in city.runtime.fleet.public()}
    received: dict[str, list[dict[str, Any]]] = {"cheongna-op": [], "supervisor": []}
    end = city.runtime.store.get_incident(city.cheongna["incident"])

    def alert(message: str, mission_id: int | None) -> AlertRaised:
        at = datetime.now(UTC)
        return AlertRaised(
            data=Alert(level="warning", code="battery_low", message=message, mission_id=mission_id, at=at)
        )

    def dock(dock_id: str) -> DockChanged:
        at = datetime.now(UTC)
        return DockChanged(
            data=DockState(dock_id=dock_id, door=DoorState.CLOSED, drone_present=True, charging=False, updated_at=at)
        )

    async def run() -> None:
        followers = [asyncio.create_task(_follow(address, tokens[w], received[w], "END")) for w in received]
        deadline = time.monotonic() + 20
        while not all(received.values()):  # both snapshots in: both are subscribed
            assert time.monotonic() < deadline, "no snapshot"
            await asyncio.sleep(0.05)
        for event in (
            DroneChanged(data=drones["dd-06"]),  # Songdo, at home
            DroneChanged(data=drones["dd-07"]),  # Cheongna, at home
            DroneChanged(data=drones["dd-02"].model_copy(update={"mission_id": songdo_mission})),
            DroneChanged(data=drones["dd-01"].model_copy(update={"mission_id": cheongna_mission})),  # for Cheongna
            alert("songdo", songdo_mission),
            alert("cheongna", cheongna_mission),
            alert("centre", None),  # no drone, no mission: the centre's
            dock("gtower"),
            dock("cheongna"),
            IncidentChanged(data=IncidentPublic.of(city.runtime.store.get_incident(city.ids["incident_id"]))),
            IncidentChanged(data=IncidentPublic.of(end).model_copy(update={"description": "END"})),
        ):
            bus.publish(event)
        await asyncio.wait_for(asyncio.gather(*followers), 20)

    asyncio.run(run())

    def seen(who: str) -> list[tuple[str, Any]]:
        out = []
        for msg in received[who][1:]:
            d = msg["data"]
            key = {"drone": "id", "dock": "dock_id", "incident": "id", "alert": "message"}[msg["type"]]
            out.append((msg["type"], d[key]))
        return out

    assert seen("supervisor") == [
        ("drone", "dd-06"), ("drone", "dd-07"), ("drone", "dd-02"), ("drone", "dd-01"), ("alert", "songdo"),
        ("alert", "cheongna"), ("alert", "centre"), ("dock", "gtower"), ("dock", "cheongna"),
        ("incident", city.ids["incident_id"]), ("incident", city.cheongna["incident"]),
    ]  # fmt: skip
    assert seen("cheongna-op") == [
        ("drone", "dd-07"), ("drone", "dd-01"), ("alert", "cheongna"), ("dock", "cheongna"),
        ("incident", city.cheongna["incident"]),
    ]  # fmt: skip
    snap = received["cheongna-op"][0]["data"]
    assert {i["id"] for i in snap["incidents"]} == {city.cheongna["incident"]}
    assert {m["id"] for m in snap["missions"]} == {cheongna_mission}
    assert {d["id"] for d in snap["drones"]} == {"dd-03", "dd-07", "dd-01"}
    full = received["supervisor"][0]["data"]
    assert city.cheongna["incident"] in {i["id"] for i in full["incidents"]}  # (Songdo's was closed above)
    assert len(full["drones"]) == 8


def test_users_add_takes_a_known_district_for_operators_and_pilots(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    monkeypatch.setenv("DD_DATABASE_URL", url)
    for district, role, problem in (("atlantis", "operator", "unknown district"), ("cheongna", "admin", "whole city")):
        monkeypatch.setattr("sys.stdin", io.StringIO("amber-kite-harbour\n"))
        assert add_user_cli("kim", role, district) == 2
        assert problem in capsys.readouterr().err
    monkeypatch.setattr("sys.stdin", io.StringIO("amber-kite-harbour\n"))
    assert add_user_cli("kim", "pilot", "cheongna") == 0
    user = Store(make_engine(url)).get_user("kim")
    assert user is not None and user.district == "cheongna" and user.role == "pilot"
