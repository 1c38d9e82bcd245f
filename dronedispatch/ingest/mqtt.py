"""MQTT subscriber: topics → adapters → reports, surviving garbage and broker outages.

One asyncio task owns the connection. It subscribes to every configured topic filter, hands
each message to the adapter of the first filter that matches, and awaits ``on_report`` for each
resulting Report. A message an adapter rejects is counted, logged and passed to ``on_error``;
an adapter that raises anything else is treated the same way (counted as failed), so one bad
publisher can never stop the subscription. ``on_report`` may itself raise IngestError to refuse
a report it cannot use (say, an unknown camera id): that counts as rejected too. Each message
is counted once: received, then exactly one of accepted, ignored, rejected or failed.

When the broker goes away the task reconnects with exponential backoff (with jitter, capped)
and resubscribes.

Publishers have no reply channel in MQTT, so with ``error_topic`` set each rejection is also
published there as ``{"topic", "reason", "at"}``: a misconfigured sender can watch that topic to
learn why its messages are refused.

The connection speaks MQTT 5. With a fixed ``client_id`` the session is persistent (clean start
off, a session expiry interval of ``session_expiry_s``, QoS 1): the broker keeps queueing messages
for us while we reconnect, so a short outage of our side loses nothing. A message is acknowledged
only once it has been handled (paho's manual acknowledgement), so one that was received but not yet
stored when the process stopped is delivered again to the same session; a report delivered twice is
recognised by the dispatcher through its source and ``source_ref``.

Several service nodes on one broker each run one MqttIngest with their own ``client_id`` and the
same ``shared_group``: every filter is subscribed as ``$share/<group>/<filter>``, so the broker hands
each message to one member of the group only. What mosquitto 2.0 (Debian's 2.0.11, checked by
tests/ingest/test_mqtt.py) does with a member that is offline but whose session lives on:

- it keeps the member in the group and goes on dealing messages round robin over all members, so
  the offline member's share is queued in its session (not redistributed to the members online);
- when the member reconnects within the session expiry interval it receives that share, once;
- if it never comes back, its share waits until the session expires and is then discarded. A node
  taken out of service for good (or renamed: the client id follows DD_NODE_ID) should therefore be
  started once more with its old id and stopped cleanly, or the broker's session expiry kept short;
- the broker holds at most ``max_queued_messages`` (mosquitto's default: 1000) per session; beyond
  that QoS 1 messages for the offline member are dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import uuid
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from urllib.parse import urlsplit

import aiomqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from dronedispatch.domain.incidents import Report

from .base import Adapter, IngestError, IngestStats, Outcome, as_reports
from .cap import parse_cap
from .frigate import FrigateAdapter, FrigateRules
from .webhook import parse_json_report

log = logging.getLogger(__name__)

ReportHandler = Callable[[Report], Awaitable[None]]
ErrorHandler = Callable[[str, str], None]


def default_topics(
    frigate_prefix: str = "frigate",
    reports_topic: str = "dronedispatch/reports/#",
    cap_topic: str = "dronedispatch/cap/#",
    rules: FrigateRules | None = None,
) -> dict[str, Adapter]:
    """The usual subscription: Frigate's two topics, the generic JSON report topic and a CAP topic."""
    return {
        **FrigateAdapter(rules).topics(frigate_prefix),
        reports_topic: parse_json_report,
        cap_topic: parse_cap,
    }


def _refused(code: object) -> bool:
    """A SUBACK entry that is a failure (paho gives ReasonCode objects; plain ints are QoS or 0x80)."""
    failure = getattr(code, "is_failure", None)
    if failure is not None:
        return bool(failure)
    return isinstance(code, int) and code >= 0x80


def shared_filter(group: str, topic_filter: str) -> str:
    """The MQTT 5 shared subscription of ``topic_filter`` for the members of ``group``."""
    return f"$share/{group}/{topic_filter}"


def parse_mqtt_url(url: str) -> tuple[str, int, str | None, str | None]:
    """``mqtt://[user[:password]@]host[:port]`` → (host, port, user, password)."""
    parts = urlsplit(url)
    if parts.scheme not in ("mqtt", "tcp") or not parts.hostname:
        raise ValueError(f"expected mqtt://host[:port], got {url!r}")
    return parts.hostname, parts.port or 1883, parts.username, parts.password


class MqttIngest:
    """Subscribe to ``topics`` (filter → adapter) on the broker at ``url`` until :meth:`stop`."""

    def __init__(
        self,
        url: str,
        topics: Mapping[str, Adapter],
        on_report: ReportHandler,
        on_error: ErrorHandler,
        *,
        client_id: str | None = None,
        stats: IngestStats | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        backoff_initial: float = 0.5,
        backoff_max: float = 30.0,
        keepalive: int = 30,
        error_topic: str | None = None,
        shared_group: str | None = None,
        session_expiry_s: int = 3600,
    ) -> None:
        if not topics:
            raise ValueError("MqttIngest needs at least one topic")
        if shared_group is not None and (not shared_group or any(c in shared_group for c in "/+#")):
            raise ValueError(f"shared_group {shared_group!r} must be non-empty and free of '/', '+' and '#'")
        self.host, self.port, self._username, self._password = parse_mqtt_url(url)
        self.topics = dict(topics)
        self._filters = [(aiomqtt.Wildcard(f), f) for f in self.topics]
        if error_topic is not None and self._filter_for(error_topic) is not None:
            # our own error reports would come back as input and be rejected again, forever
            raise ValueError(f"error_topic {error_topic!r} is inside a subscribed topic filter")
        self.error_topic = error_topic
        self._client: aiomqtt.Client | None = None
        self.on_report = on_report
        self.on_error = on_error
        self.stats = stats or IngestStats()
        self._clock = clock
        self._persistent = client_id is not None
        self.shared_group = shared_group
        self._session_expiry_s = session_expiry_s
        self.client_id = client_id or f"dronedispatch-ingest-{uuid.uuid4().hex[:12]}"
        self._backoff_initial = backoff_initial
        self._backoff_max = backoff_max
        self._keepalive = keepalive
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        # exactly one of these is set: await them to follow the link (health checks, tests)
        self.connected = asyncio.Event()
        self.disconnected = asyncio.Event()
        self.disconnected.set()

    # ---- lifecycle

    async def start(self) -> None:
        """Begin connecting in the background (returns at once; ``await connected.wait()`` to know it is subscribed)."""
        if self._task is None:
            self._stopping = False
            self._task = asyncio.create_task(self._run(), name=f"mqtt-ingest-{self.host}:{self.port}")

    async def stop(self) -> None:
        self._stopping = True
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        self._set_connected(False)

    def _set_connected(self, up: bool) -> None:
        self.stats.connected = up
        if up:
            self.disconnected.clear()
            self.connected.set()
        else:
            self.connected.clear()
            self.disconnected.set()

    # ---- connection loop

    @property
    def subscriptions(self) -> list[str]:
        """What is subscribed at the broker: the filters themselves, or their shared form."""
        if self.shared_group is None:
            return list(self.topics)
        return [shared_filter(self.shared_group, f) for f in self.topics]

    def _client_for_session(self) -> aiomqtt.Client:
        connect = Properties(PacketTypes.CONNECT)
        # 0 ends the session with the connection; a persistent one outlives it by this long
        connect.SessionExpiryInterval = self._session_expiry_s if self._persistent else 0
        client = aiomqtt.Client(
            self.host,
            self.port,
            username=self._username,
            password=self._password,
            identifier=self.client_id,
            protocol=aiomqtt.ProtocolVersion.V5,
            clean_start=not self._persistent,
            properties=connect,
            keepalive=self._keepalive,
            timeout=10,
        )
        # acknowledge after handling, not on receipt: a message cut off by a stop is delivered again.
        # aiomqtt does not expose paho's switch, so it is set on the paho client it wraps.
        client._client.manual_ack_set(True)
        return client

    async def _run(self) -> None:
        delay = self._backoff_initial
        first = True
        while not self._stopping:
            try:
                async with self._client_for_session() as client:
                    for topic_filter in self.subscriptions:
                        granted = await client.subscribe(topic_filter, qos=1)
                        # an ACL may refuse (MQTT 5 brokers say so in the SUBACK; mosquitto 2.0 with
                        # MQTT 3.1.1 grants and silently filters instead)
                        if any(_refused(code) for code in granted):
                            await self._tell(
                                topic_filter, Outcome.FAILED, f"broker refused the subscription: {granted}"
                            )
                    if not first:
                        self.stats.reconnects += 1
                    first = False
                    log.info(
                        "MQTT ingest subscribed to %s on %s:%d as %s",
                        ", ".join(self.subscriptions), self.host, self.port, self.client_id,
                    )  # fmt: skip
                    self._client = client
                    self._set_connected(True)
                    delay = self._backoff_initial
                    async for message in client.messages:
                        await self.handle(str(message.topic), message.payload)
                        if message.qos > 0:
                            client._client.ack(message.mid, message.qos)
            except aiomqtt.MqttError as exc:
                log.warning(
                    "MQTT ingest: broker %s:%d unavailable (%s); retrying in %.1f s", self.host, self.port, exc, delay
                )
            except Exception:  # anything else: log and reconnect rather than end ingestion
                log.exception("MQTT ingest: connection loop failed; reconnecting in %.1f s", delay)
            self._client = None
            self._set_connected(False)
            # jitter spreads reconnects of many nodes after a broker restart
            await asyncio.sleep(delay * random.uniform(0.8, 1.2))
            delay = min(delay * 2, self._backoff_max)

    # ---- one message (public: a test or another transport can feed messages without a broker)

    def _filter_for(self, topic: str) -> str | None:
        t = aiomqtt.Topic(topic)
        for wildcard, name in self._filters:
            if t.matches(wildcard):
                return name
        return None

    async def handle(self, topic: str, payload: object) -> list[Report]:
        """Run one message through its adapter; never raises (except cancellation)."""
        name = self._filter_for(topic)
        if name is None:  # a broker may deliver overlapping subscriptions; nothing to do
            return []
        if isinstance(payload, bytes | bytearray):
            data = bytes(payload)
        else:  # paho hands over bytes; other types only come from direct callers
            data = b"" if payload is None else str(payload).encode()
        stats = self.stats
        stats.count(name, Outcome.RECEIVED)
        try:
            reports = as_reports(self.topics[name](data, self._clock()))
        except IngestError as exc:
            await self._refuse(name, topic, Outcome.REJECTED, str(exc))
            return []
        except Exception as exc:  # an adapter bug must not end the subscription
            log.exception("MQTT ingest: adapter for %s failed", name)
            await self._refuse(name, topic, Outcome.FAILED, f"internal error in adapter: {exc!r}")
            return []
        if not reports:
            stats.count(name, Outcome.IGNORED)
            return []
        delivered: list[Report] = []
        refusals: list[tuple[Outcome, str]] = []
        for report in reports:
            try:
                await self.on_report(report)
            except IngestError as exc:  # the handler refused it (e.g. an unknown camera id)
                refusals.append((Outcome.REJECTED, str(exc)))
            except Exception as exc:
                log.exception("MQTT ingest: report handler failed for %s", topic)
                refusals.append((Outcome.FAILED, f"report handler failed: {exc!r}"))
            else:
                delivered.append(report)
        # one outcome per message: accepted if any report went through
        if delivered:
            stats.count(name, Outcome.ACCEPTED)
            stats.reports[name] += len(delivered)
        for i, (outcome, reason) in enumerate(refusals):
            counted = not delivered and i == 0
            await self._refuse(name, topic, outcome, reason, count=counted)
        return delivered

    async def _refuse(self, name: str, topic: str, outcome: Outcome, reason: str, *, count: bool = True) -> None:
        if count:
            self.stats.error(name, outcome, reason)
        else:
            self.stats.last_error[name] = reason
        await self._tell(topic, outcome, reason)

    async def _tell(self, topic: str, outcome: Outcome, reason: str) -> None:
        log.warning("MQTT ingest %s on %s: %s", outcome.value, topic, reason)
        try:
            self.on_error(topic, reason)
        except Exception:
            log.exception("MQTT ingest: on_error callback failed")
        if self.error_topic and self._client is not None and outcome is Outcome.REJECTED:
            body = {"topic": topic, "reason": reason, "at": self._clock().isoformat()}
            try:
                await self._client.publish(self.error_topic, json.dumps(body, ensure_ascii=False), qos=0)
            except aiomqtt.MqttError as exc:  # the connection loop deals with a lost broker
                log.warning("MQTT ingest: could not publish rejection to %s: %s", self.error_topic, exc)
