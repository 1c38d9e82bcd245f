"""Share links in the service, on SQLite and PostgreSQL, with the clock injected: a link opens until
the very moment it expires, a revoked one never again, and a link's live viewers are hung up when it
is revoked or expires (a page that stops polling keeps no video). The flight log's store query is
checked on both databases here too, beside the share store's."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import pytest
from sqlalchemy import Engine
from sqlmodel import Session

from dronedispatch.app.errors import UnknownObject, Unprocessable, VideoUnavailable
from dronedispatch.app.fleet import Fleet
from dronedispatch.app.shares import ShareGone, ShareService, token_hash
from dronedispatch.domain.incidents import Category, Report, Severity
from dronedispatch.store.db import make_engine, migrate
from dronedispatch.store.flight_log import FlightLogStore
from dronedispatch.store.models import Mission, Share
from dronedispatch.store.repo import Store
from dronedispatch.store.shares import ShareStore
from tests.api.test_public_flight_log import _fill
from tests.fixtures.services import PostgresServer

T0 = datetime(2026, 12, 3, 9, 0, tzinfo=UTC)


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def engine(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    drop = None
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('shares') / 'dd.db'}"
    else:
        server: PostgresServer = request.getfixturevalue("postgres_server")
        drop = server.create_database()
        url = server.url(drop)
    engine = make_engine(url)
    migrate(engine)
    yield engine
    engine.dispose()
    if drop is not None:
        with contextlib.suppress(Exception):
            request.getfixturevalue("postgres_server").drop_database(drop)


class Clock:
    def __init__(self, at: datetime) -> None:
        self.at = at

    def __call__(self) -> datetime:
        return self.at


class FakeVideo:
    """Answers every offer and records how each viewer can be hung up."""

    def __init__(self) -> None:
        self.offers: list[str] = []
        self.hung_up: list[int] = []

    async def offer(
        self, drone_id: str, sdp: str, type_: str, on_viewer: Callable[[Any], None] | None = None
    ) -> tuple[str, str]:
        n = len(self.offers)
        self.offers.append(drone_id)

        async def hang_up() -> None:
            self.hung_up.append(n)

        assert on_viewer is not None
        on_viewer(hang_up)
        return f"answer-{n}", "answer"


def _incident(store: Store) -> int:
    report = Report(source="operator", category=Category.FIRE, severity=Severity.SEVERE, lat=37.39, lon=126.64,
                    observed_at=T0, description="x")  # fmt: skip
    incident = store.create_incident(report, report.lat or 0, report.lon or 0)
    assert incident.id is not None
    return incident.id


def _flying(engine: Engine, incident_id: int, drone_id: str) -> int:
    with Session(engine, expire_on_commit=False) as s:
        m = Mission(incident_id=incident_id, drone_id=drone_id, sysid=1, state="on_scene", template="t",
                    created_by="pilot", launched_at=T0)  # fmt: skip
        s.add(m)
        s.commit()
        assert m.id is not None
        return m.id


def _service(engine: Engine, clock: Clock, video: FakeVideo) -> ShareService:
    return ShareService(ShareStore(engine), Store(engine), cast(Fleet, None), video, now=clock)


def test_a_link_opens_until_it_expires_and_never_after_revocation(engine: Engine) -> None:
    clock = Clock(T0)
    store = Store(engine)
    service = _service(engine, clock, FakeVideo())
    incident_id = _incident(store)
    new = service.create(incident_id, 2, "operator")
    token = new.url.removeprefix("/share/")
    share = new.share
    assert share.expires_at == T0 + timedelta(hours=2)
    stored = ShareStore(engine).get_share(share.id)
    assert stored.token_sha256 == token_hash(token) and token not in stored.model_dump_json()
    assert stored.expires_at == T0 + timedelta(hours=2) and stored.expires_at.tzinfo is not None

    clock.at = T0 + timedelta(hours=2) - timedelta(seconds=1)
    assert service.open(token).id == share.id
    clock.at = T0 + timedelta(hours=2)
    with pytest.raises(ShareGone) as gone:
        service.open(token)
    assert gone.value.why == "expired"
    with pytest.raises(UnknownObject):
        service.open(token[:-1] + ("A" if token[-1] != "A" else "B"))
    for hours in (0, 24.01, -2):
        with pytest.raises(Unprocessable):
            service.create(incident_id, hours, "operator")

    clock.at = T0
    other = service.create(incident_id, 24, "pilot")
    other_token = other.url.removeprefix("/share/")
    assert other_token != token
    revoked = asyncio.run(service.revoke(other.share.id, "pilot"))
    assert revoked.revoked_at == T0 and revoked.revoked_by == "pilot"
    clock.at = T0 + timedelta(minutes=5)
    again = asyncio.run(service.revoke(other.share.id, "admin"))
    assert (again.revoked_at, again.revoked_by) == (T0, "pilot")  # the first revocation stands
    with pytest.raises(ShareGone) as gone:
        service.open(other_token)
    assert gone.value.why == "revoked"
    listed: Sequence[Share] = service.list(incident_id)
    assert [s.id for s in listed] and {s.id for s in listed} >= {share.id, other.share.id}
    actions = [(a.action, a.target_id) for a in store.audit_log(target_type="share")]
    assert ("share.create", share.id) in actions and ("share.revoke", other.share.id) in actions


def test_viewers_are_hung_up_on_revocation_and_at_expiry(engine: Engine) -> None:
    store = Store(engine)
    incident_id = _incident(store)

    async def scenario() -> None:
        clock = Clock(datetime.now(UTC))
        video = FakeVideo()
        service = _service(engine, clock, video)
        token = service.create(incident_id, 1, "operator").url.removeprefix("/share/")
        with pytest.raises(VideoUnavailable):  # nothing flies for the incident yet
            await service.offer(token, "v=0", "offer")
        _flying(engine, incident_id, "dd-07")
        revoked = service.create(incident_id, 1, "operator")
        r_token = revoked.url.removeprefix("/share/")
        assert await service.offer(r_token, "v=0", "offer") == ("answer-0", "answer")
        assert await service.offer(r_token, "v=0", "offer") == ("answer-1", "answer")
        assert video.offers == ["dd-07", "dd-07"]
        # an expiring link: its viewer is hung up when the link's time is up, without any poll
        # (300 ms of real time left: the revocation below, an audited write, must come first on a busy machine)
        clock.at = clock.at + timedelta(hours=1) - timedelta(milliseconds=300)
        assert await service.offer(token, "v=0", "offer") == ("answer-2", "answer")
        assert video.hung_up == []
        await service.revoke(revoked.share.id, "pilot")
        assert sorted(video.hung_up) == [0, 1]
        await asyncio.sleep(0.8)
        assert sorted(video.hung_up) == [0, 1, 2]

    asyncio.run(scenario())


def test_flight_log_store_reads_ended_flights_in_the_period(engine: Engine) -> None:
    _fill(engine)
    flights = FlightLogStore(engine).ended_flights(datetime(2026, 11, 1, tzinfo=UTC), datetime(2026, 12, 1, tzinfo=UTC),
                                                   limit=10)  # fmt: skip
    assert [(f.category, f.launched_at) for f in flights] == [
        ("missing_person", datetime(2026, 11, 21, 12, 15, 42, tzinfo=UTC)),
        ("fire", datetime(2026, 11, 20, 9, 15, 42, tzinfo=UTC)),
    ]
    assert all(len(f.track) == 240 for f in flights)
    assert flights[1].track[0] == (37.38, 126.63)  # in flight order
    only = FlightLogStore(engine).ended_flights(datetime(2026, 11, 20, 9, 15, 42, tzinfo=UTC),
                                                datetime(2026, 11, 21, 12, 15, 42, tzinfo=UTC), limit=10)  # fmt: skip
    assert [f.category for f in only] == ["fire"]  # from inclusive, to exclusive
    assert len(FlightLogStore(engine).ended_flights(datetime(2026, 1, 1, tzinfo=UTC), T0, limit=1)) == 1
