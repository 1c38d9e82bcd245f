"""ONVIF cameras as an incident source: one supervised PullPoint subscription per camera.

For every camera of the cameras file with an ``onvif:`` block, one task (onvif-zeep-async):

1. reads the device's services and creates a PullPoint subscription (CreatePullPointSubscription
   with an InitialTerminationTime of ``subscription_s``);
2. long-polls PullMessages (Timeout up to ``pull_timeout_s``) and renews the subscription when half
   its granted time is left, so a late or lost answer still leaves time to renew again (the library's
   own PullPointManager never renews sooner than after 48 s, whatever the camera granted);
3. after a fault (the subscription expired or the camera forgot it), a refused connection (the
   camera rebooted) or any other failure, closes everything and starts over with exponential
   backoff (with jitter, capped).

A camera with no successful pull for ``silent_after_s`` is *silent*: a warning alert says so once,
and an info alert when it answers again; its state is on /metrics (``dronedispatch_onvif_camera_up``)
and in :meth:`OnvifIngest.snapshot`. A refused password is the state ``unauthorized`` with a clear
message; credentials are never logged.

Several nodes: with ``owns`` (camera id -> whether this node takes it), each camera is subscribed by
one node; the others keep it in the state ``elsewhere`` and look again every ``owner_check_s``, and the
owner looks at every renewal, so the cameras of a node that goes are taken up by the others.

Mapping (pure, :class:`EventPairs` and :func:`to_report`): the topic (``tns1:`` and other prefixes
ignored; short names motion, line_crossing, intrusion, tamper allowed in the table) is looked up in
the camera's ``topics`` table, else in :data:`DEFAULT_TOPICS`; a topic in neither is ignored. A
stateful event (a Data item such as IsMotion, IsInside or State) is one report when it becomes true;
the matching false closes the pair and is no new report, and an Initialized true that is already
open (a re-created subscription re-announces every property) is not reported again. A pulse (line
crossing) is one report each time. Reports go through the usual ingest path, so repeated events of
one camera merge into its open incident and one event delivered twice is recognised by its
``source_ref``.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import random
import re
from collections.abc import Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import zeep.exceptions
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from dronedispatch.domain.assets import Camera, OnvifSource
from dronedispatch.domain.incidents import Category, Report, Severity

from .base import IngestError, IngestStats, Outcome, bounded_ref
from .onvif_lib import ONVIFCamera, ONVIFError, is_auth_error, stringify_onvif_error

log = logging.getLogger(__name__)

SOURCE = "onvif"
EVENTS_NS = "http://www.onvif.org/ver10/events/wsdl"
PULLPOINT_NS = f"{EVENTS_NS}/PullPointSubscription"

#: Short names a cameras file may use for the usual topics.
SHORT_NAMES = {
    "motion": "RuleEngine/CellMotionDetector/Motion",
    "line_crossing": "RuleEngine/LineDetector/Crossed",
    "intrusion": "RuleEngine/FieldDetector/ObjectsInside",
    "tamper": "VideoSource/GlobalSceneChange/ImagingService",
}
#: Topic -> category when a camera has no table of its own.
DEFAULT_TOPICS: dict[str, Category] = {
    SHORT_NAMES["motion"]: Category.OTHER,
    SHORT_NAMES["line_crossing"]: Category.CRIME,  # a guarded line crossed
    SHORT_NAMES["intrusion"]: Category.CRIME,  # someone inside a protected field
    SHORT_NAMES["tamper"]: Category.FACILITY,  # a camera covered, moved or blinded
}
SEVERITY = {
    Category.FIRE: Severity.SEVERE,
    Category.TRAFFIC_ACCIDENT: Severity.SEVERE,
    Category.MISSING_PERSON: Severity.SEVERE,
    Category.FLOOD: Severity.SEVERE,
    Category.CRIME: Severity.MODERATE,
}
#: Data items whose boolean value opens (true) and closes (false) a pair.
STATE_ITEMS = frozenset({"IsMotion", "IsInside", "State", "IsTamper", "IsActive", "Active", "LogicalState"})
_PREFIX = re.compile(r"(^|/)[A-Za-z_][\w.-]*:")


def normalize_topic(topic: str) -> str:
    """``tns1:RuleEngine/CellMotionDetector/Motion`` (any prefixes) or a short name → ``RuleEngine/…/Motion``."""
    topic = topic.strip()
    return SHORT_NAMES.get(topic, _PREFIX.sub(r"\1", topic).strip("/"))


def topic_table(config: OnvifSource) -> dict[str, Category]:
    """The camera's table, normalised; ValueError naming an unknown category."""
    if config.topics is None:
        return dict(DEFAULT_TOPICS)
    table: dict[str, Category] = {}
    for topic, category in config.topics.items():
        try:
            table[normalize_topic(topic)] = Category(category)
        except ValueError:
            known = ", ".join(c.value for c in Category)
            raise ValueError(f"onvif.topics[{topic!r}]: unknown category {category!r} (known: {known})") from None
    return table


@dataclass(frozen=True)
class Notification:
    """One ONVIF event message, flattened."""

    topic: str  # normalised
    operation: str  # Initialized | Changed | Deleted ("" when the camera sends none)
    at: datetime
    source: tuple[tuple[str, str], ...]
    data: tuple[tuple[str, str], ...]

    @property
    def state(self) -> bool | None:
        """True/False for a stateful event, None for a pulse."""
        for name, value in self.data:
            if name in STATE_ITEMS:
                return value.strip().lower() in ("true", "1")
        return None

    def as_raw(self) -> dict[str, Any]:
        return {
            "topic": self.topic,
            "operation": self.operation,
            "utc_time": self.at.isoformat(),
            "source": dict(self.source),
            "data": dict(self.data),
        }


def _items(container: Any) -> tuple[tuple[str, str], ...]:
    items = getattr(container, "SimpleItem", None) or []
    return tuple((str(i.Name), str(i.Value)) for i in items)


def parse_notification(msg: Any, now: datetime) -> Notification:
    """A zeep NotificationMessage → :class:`Notification`; IngestError when it lacks a topic."""
    topic = getattr(getattr(msg, "Topic", None), "_value_1", None)
    if not isinstance(topic, str) or not topic.strip():
        raise IngestError.at(SOURCE, "Topic", "notification without a topic")
    body = getattr(getattr(msg, "Message", None), "_value_1", None)
    at = getattr(body, "UtcTime", None)
    if not isinstance(at, datetime):
        at = now
    elif at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    return Notification(
        topic=normalize_topic(topic),
        operation=str(getattr(body, "PropertyOperation", None) or ""),
        at=at,
        source=_items(getattr(body, "Source", None)),
        data=_items(getattr(body, "Data", None)),
    )


class EventPairs:
    """Which stateful events of one camera are open: a start is news, its end and repeats are not."""

    def __init__(self) -> None:
        self._open: dict[tuple[str, tuple[tuple[str, str], ...]], datetime] = {}
        self._unconfirmed: set[tuple[str, tuple[tuple[str, str], ...]]] = set()

    def is_news(self, n: Notification) -> bool:
        state = n.state
        if state is None:
            return n.operation != "Deleted"  # a pulse: every one counts
        key = (n.topic, n.source)
        self._unconfirmed.discard(key)
        if not state or n.operation == "Deleted":
            self._open.pop(key, None)  # the end of a pair (or a resync saying it is over)
            return False
        if key in self._open:
            return False  # still the same event (e.g. re-announced to a new subscription)
        self._open[key] = n.at
        return True

    def begin_resync(self) -> None:
        """A new subscription: the camera re-announces what is still on (Initialized) in its first answer."""
        self._unconfirmed = set(self._open)

    def end_resync(self) -> None:
        """After that first answer: what was not re-announced ended while we were not subscribed (a reboot
        forgets its alarms), so the next start of it is news again."""
        for key in self._unconfirmed:
            self._open.pop(key, None)
        self._unconfirmed = set()

    def open_count(self) -> int:
        return len(self._open)


def to_report(camera: Camera, n: Notification, category: Category) -> Report:
    rule = dict(n.source).get("Rule") or dict(n.source).get("Source") or ""
    what = n.topic.rsplit("/", 1)[-1]
    data = ",".join(f"{k}={v}" for k, v in n.data)
    return Report(
        source=SOURCE,
        # the data items too: two line crossings in one timestamp differ by their ObjectId
        source_ref=bounded_ref(f"onvif:{camera.id}:{n.topic}:{rule}:{n.at.isoformat()}:{data}"),
        category=category,
        severity=SEVERITY.get(category, Severity.MINOR),
        camera_id=camera.id,
        observed_at=n.at,
        description=f"ONVIF {n.topic} on {camera.name_en}" + (f" ({rule})" if rule else "") + f": {what}",
        raw=n.as_raw(),
    )


ReportHandler = Callable[[Report], Awaitable[None]]
AlertHandler = Callable[[str, str, str], None]  # level, code, message
OwnerCheck = Callable[[str], Awaitable[bool]]  # camera id -> whether this node subscribes to it


def rendezvous_owner(camera_id: str, nodes: Iterable[str]) -> str | None:
    """The node that subscribes to ``camera_id`` among ``nodes`` (highest hash of node and camera): each
    camera has one owner, and a node joining or leaving moves only the cameras it wins or held."""
    return max(nodes, key=lambda n: hashlib.sha256(f"{n}|{camera_id}".encode()).digest(), default=None)


@dataclass
class CameraState:
    """What the service knows of one ONVIF camera's subscription (JSON-ready through :meth:`as_dict`)."""

    camera_id: str
    state: str = "connecting"  # connecting | subscribed | unreachable | unauthorized | error | elsewhere | stopped
    silent: bool = False
    last_error: str | None = None
    last_ok: float = 0.0  # loop time of the last successful exchange
    last_pull_at: datetime | None = None
    last_event_at: datetime | None = None
    subscriptions: int = 0
    renewals: int = 0
    events: int = 0
    reports: int = 0
    pairs: EventPairs = field(default_factory=EventPairs)

    def as_dict(self) -> dict[str, Any]:
        return {
            "camera_id": self.camera_id,
            "state": self.state,
            "silent": self.silent,
            "last_error": self.last_error,
            "last_pull_at": self.last_pull_at.isoformat() if self.last_pull_at else None,
            "last_event_at": self.last_event_at.isoformat() if self.last_event_at else None,
            "subscriptions": self.subscriptions,
            "renewals": self.renewals,
            "events": self.events,
            "reports": self.reports,
            "open_events": self.pairs.open_count(),
        }


class _Unauthorized(Exception):
    pass


class OnvifIngest:
    """PullPoint subscriptions to every camera with an ``onvif`` block, until :meth:`stop`."""

    def __init__(
        self,
        cameras: Iterable[Camera],
        on_report: ReportHandler,
        *,
        on_alert: AlertHandler | None = None,
        stats: IngestStats | None = None,
        subscription_s: float = 60.0,
        pull_timeout_s: float = 10.0,
        silent_after_s: float = 60.0,
        backoff_initial: float = 1.0,
        backoff_max: float = 30.0,
        owns: OwnerCheck | None = None,
        owner_check_s: float = 10.0,
    ) -> None:
        self.cameras = [c for c in cameras if c.onvif is not None]
        # several nodes: each camera is subscribed by one of them (one subscription, one report per event)
        self.owns = owns
        self.owner_check_s = owner_check_s
        self.tables = {c.id: topic_table(c.onvif) for c in self.cameras if c.onvif is not None}
        self.on_report = on_report
        self.on_alert = on_alert or (lambda level, code, message: None)
        self.stats = stats or IngestStats()
        self.subscription_s = subscription_s
        self.pull_timeout_s = pull_timeout_s
        self.silent_after_s = silent_after_s
        self.backoff_initial = backoff_initial
        self.backoff_max = backoff_max
        self.states = {c.id: CameraState(c.id) for c in self.cameras}
        self._tasks: list[asyncio.Task[None]] = []
        self._warm: asyncio.Task[None] | None = None

    # -- lifecycle ----------------------------------------------------------------------------
    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._warm = loop.create_task(self._warm_up(), name="onvif-wsdl")
        self._tasks.append(self._warm)
        for camera in self.cameras:
            self.states[camera.id].last_ok = loop.time()
            self._tasks.append(loop.create_task(self._supervise(camera), name=f"onvif-{camera.id}"))
        if self.cameras:
            self._tasks.append(loop.create_task(self._watch_silence(), name="onvif-silence"))

    async def stop(self) -> None:
        for task in self._tasks:  # each loop unsubscribes and closes its connections as it ends
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
        for state in self.states.values():
            state.state = "stopped"

    def snapshot(self) -> dict[str, dict[str, Any]]:
        return {cid: s.as_dict() for cid, s in self.states.items()}

    # -- one camera -----------------------------------------------------------------------------
    async def _warm_up(self) -> None:
        """Parse the WSDLs once, before the loops need them: each loop would otherwise parse its own copy,
        all at the same moment (the library caches a document only once it is loaded). No request is sent."""
        if not self.cameras:
            return
        cam = ONVIFCamera("127.0.0.1", 80, None, None, no_cache=True)
        try:
            await cam.create_devicemgmt_service()
            cam.xaddrs[EVENTS_NS] = "http://127.0.0.1/onvif/events_service"
            await cam.create_events_service()
        finally:
            await cam.close()

    async def _supervise(self, camera: Camera) -> None:
        if self._warm is not None:
            with contextlib.suppress(Exception):  # without it each loop loads what it needs itself
                await asyncio.shield(self._warm)
        state = self.states[camera.id]
        backoff = self.backoff_initial
        reported: tuple[str, str | None, int] | None = None
        loop = asyncio.get_running_loop()
        while True:
            if not await self._owned(camera):
                if state.state != "elsewhere":
                    log.info("ONVIF camera %s: subscribed by another node", camera.id)
                state.state, state.last_error, state.silent = "elsewhere", None, False
                state.last_ok = loop.time()
                await asyncio.sleep(self.owner_check_s)
                continue
            try:
                if await self._session(camera, state):
                    backoff = self.backoff_initial  # a subscription that worked, then was lost: re-create at once
                    continue
                # lost before its first pull (say, a Timeout the camera refuses): not in a tight loop
            except _Unauthorized as exc:
                state.state, state.last_error = "unauthorized", str(exc)
            except (aiohttp.ClientConnectionError, ConnectionError, OSError) as exc:
                state.state, state.last_error = "unreachable", f"cannot reach the device: {_describe(exc)}"
            except (zeep.exceptions.Error, ONVIFError, aiohttp.ClientError, TimeoutError) as exc:
                state.state, state.last_error = "error", _describe(exc)
            except Exception as exc:  # a bug or an odd device must not end the supervision
                log.exception("ONVIF camera %s: unexpected failure", camera.id)
                state.state, state.last_error = "error", f"internal error: {exc!r}"
            # the first failure of a streak is a warning; its repeats (every backoff) only debug lines
            streak = (state.state, state.last_error, state.subscriptions)  # a subscription in between: a new streak
            level = logging.WARNING if streak != reported else logging.DEBUG
            reported = streak
            log.log(level, "ONVIF camera %s: %s; retrying in %.1f s", camera.id, state.last_error, backoff)
            await asyncio.sleep(backoff * random.uniform(0.8, 1.2))
            backoff = min(backoff * 2, self.backoff_max)

    async def _session(self, camera: Camera, state: CameraState) -> bool:
        """One subscription from creation until it is lost (returns whether any pull succeeded) or a failure
        (raises)."""
        assert camera.onvif is not None
        config = camera.onvif
        parts = urlsplit(config.url)
        scheme = parts.scheme or "http"
        device = ONVIFCamera(
            f"{scheme}://{parts.hostname or '127.0.0.1'}", parts.port or (443 if scheme == "https" else 80),
            config.username, config.password, no_cache=True,
            adjust_time=True,  # sign with the camera's clock: many refuse a UsernameToken from a skewed one
        )  # fmt: skip
        loop = asyncio.get_running_loop()
        subscription: Any = None
        pulled_once = False
        try:
            try:
                await device.update_xaddrs()
                events = await device.create_events_service()
                result = await events.CreatePullPointSubscription(
                    {"InitialTerminationTime": f"PT{int(self.subscription_s)}S"}
                )
            except zeep.exceptions.Fault as fault:
                if is_auth_error(fault):
                    raise _Unauthorized(
                        f"the device refused the username/password: {stringify_onvif_error(fault)}"
                    ) from None
                raise
            device.xaddrs[PULLPOINT_NS] = result.SubscriptionReference.Address._value_1
            subscription = await device.create_subscription_service("PullPointSubscription")
            pullpoint = await device.create_pullpoint_service()
            renew_at = self._renew_at(result)
            state.pairs.begin_resync()
            state.subscriptions += 1
            self._answered(camera, state, "subscribed")
            log.info("ONVIF camera %s: subscribed to events", camera.id)
            while True:
                if loop.time() >= renew_at:
                    if not await self._owned(camera):
                        return True  # another node takes it over; ours is unsubscribed on the way out
                    try:
                        renewed = await subscription.Renew(f"PT{int(self.subscription_s)}S")
                    except zeep.exceptions.Fault as fault:
                        subscription = None  # gone on the device: nothing to unsubscribe
                        self._lost(camera, state, f"renew refused: {stringify_onvif_error(fault)}")
                        return pulled_once
                    renew_at = self._renew_at(renewed)
                    state.renewals += 1
                wait = max(1, min(int(self.pull_timeout_s), int(renew_at - loop.time())))
                try:
                    pulled = await pullpoint.PullMessages({"Timeout": timedelta(seconds=wait), "MessageLimit": 100})
                except zeep.exceptions.Fault as fault:
                    subscription = None
                    self._lost(camera, state, f"pull refused: {stringify_onvif_error(fault)}")
                    return pulled_once
                self._answered(camera, state, "subscribed")
                for msg in getattr(pulled, "NotificationMessage", None) or []:
                    await self._handle(camera, state, msg)
                if not pulled_once:
                    state.pairs.end_resync()
                pulled_once = True
        finally:
            # Stopping, or leaving a subscription the device may still hold (a timeout, an odd answer):
            # release it, as cameras have few pull points and a leaked one lasts until its termination time.
            if subscription is not None:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(subscription.Unsubscribe(), 1.0)
            await device.close()

    async def _owned(self, camera: Camera) -> bool:
        if self.owns is None:
            return True
        try:
            return await self.owns(camera.id)
        except Exception:  # cannot tell (the bus is down): better two subscriptions than none
            log.debug("ONVIF camera %s: owner check failed", camera.id, exc_info=True)
            return True

    def _renew_at(self, result: Any) -> float:
        granted = self.subscription_s
        current, termination = getattr(result, "CurrentTime", None), getattr(result, "TerminationTime", None)
        if isinstance(current, datetime) and isinstance(termination, datetime):
            granted = (termination - current).total_seconds()
        return asyncio.get_running_loop().time() + max(0.5, granted * 0.5)

    def _lost(self, camera: Camera, state: CameraState, reason: str) -> None:
        state.state, state.last_error = "connecting", f"subscription lost ({reason})"
        log.info("ONVIF camera %s: %s; subscribing again", camera.id, state.last_error)

    def _answered(self, camera: Camera, state: CameraState, new_state: str) -> None:
        state.state = new_state
        state.last_ok = asyncio.get_running_loop().time()
        state.last_pull_at = datetime.now(UTC)
        if state.silent:
            state.silent = False
            self.on_alert("info", "camera_recovered", f"camera {camera.id} answers ONVIF event pulls again")

    async def _handle(self, camera: Camera, state: CameraState, msg: Any) -> None:
        stats = self.stats
        stats.count(SOURCE, Outcome.RECEIVED)
        state.events += 1
        state.last_event_at = datetime.now(UTC)
        try:
            notification = parse_notification(msg, datetime.now(UTC))
            category = self.tables[camera.id].get(notification.topic)
            report = (
                to_report(camera, notification, category) if category and state.pairs.is_news(notification) else None
            )
        except IngestError as exc:
            stats.error(SOURCE, Outcome.REJECTED, str(exc))
            return
        except Exception as exc:
            log.exception("ONVIF camera %s: could not read an event", camera.id)
            stats.error(SOURCE, Outcome.FAILED, f"internal error reading an event: {exc!r}")
            return
        if report is None:
            stats.count(SOURCE, Outcome.IGNORED)
            return
        try:
            await self.on_report(report)
        except IngestError as exc:
            stats.error(SOURCE, Outcome.REJECTED, str(exc))
            log.warning("ONVIF camera %s: report refused: %s", camera.id, exc)
            return
        except Exception as exc:
            log.exception("ONVIF camera %s: report handler failed", camera.id)
            stats.error(SOURCE, Outcome.FAILED, f"report handler failed: {exc!r}")
            return
        stats.count(SOURCE, Outcome.ACCEPTED)
        stats.reports[SOURCE] += 1
        state.reports += 1

    # -- silence --------------------------------------------------------------------------------
    async def _watch_silence(self) -> None:
        loop = asyncio.get_running_loop()
        period = max(0.2, min(5.0, self.silent_after_s / 4))
        while True:
            await asyncio.sleep(period)
            for camera in self.cameras:
                state = self.states[camera.id]
                if state.state in ("elsewhere", "stopped"):
                    continue
                quiet = loop.time() - state.last_ok
                if not state.silent and quiet > self.silent_after_s:
                    state.silent = True
                    why = f" ({state.last_error})" if state.last_error else ""
                    self.on_alert(
                        "warning", "camera_silent", f"camera {camera.id}: no ONVIF event pull for {quiet:.0f} s{why}"
                    )

    # -- metrics ----------------------------------------------------------------------------------
    def collect(self) -> Iterator[Any]:
        up = GaugeMetricFamily(
            "dronedispatch_onvif_camera_up", "1 when the camera's ONVIF event subscription answers", labels=["camera"]
        )
        subscriptions = CounterMetricFamily(
            "dronedispatch_onvif_subscriptions", "PullPoint subscriptions created", labels=["camera"]
        )
        renewals = CounterMetricFamily("dronedispatch_onvif_renewals", "Subscriptions renewed", labels=["camera"])
        events = CounterMetricFamily("dronedispatch_onvif_events", "Event messages pulled", labels=["camera"])
        for cid, s in sorted(self.states.items()):
            if s.state == "elsewhere":
                continue  # another node's to report
            up.add_metric([cid], int(s.state == "subscribed" and not s.silent))
            subscriptions.add_metric([cid], s.subscriptions)
            renewals.add_metric([cid], s.renewals)
            events.add_metric([cid], s.events)
        yield from (up, subscriptions, renewals, events)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, zeep.exceptions.Fault):
        return stringify_onvif_error(exc)
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
