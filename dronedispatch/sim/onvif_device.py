"""Simulated ONVIF devices: each simulated CCTV answers as an ONVIF Profile S/T camera.

Camera number k of a cameras file (k counts every entry of its ``cameras:`` list) is served at
``http://127.0.0.1:{18080+k}/onvif/device_service``, SOAP 1.2 over HTTP, with exactly what a PullPoint
client such as onvif-zeep-async needs:

- device service: GetDeviceInformation, GetSystemDateAndTime (answered without credentials, as the
  ONVIF core spec asks, so a client can measure clock skew first), GetCapabilities, GetServices, GetScopes;
- media: GetProfiles, GetStreamUri (``rtsp://127.0.0.1:8554/<id>``), GetSnapshotUri;
- events: GetServiceCapabilities, GetEventProperties, CreatePullPointSubscription, and on each
  subscription PullMessages (long poll up to its Timeout), Renew, Unsubscribe, SetSynchronizationPoint.

Every request but GetSystemDateAndTime must carry a WS-Security UsernameToken whose password digest
(Base64(SHA1(nonce + created + password))) matches the configured account; otherwise the answer is
the SOAP fault ``ter:NotAuthorized``.

Events (``raise_event``): motion (``tns1:RuleEngine/CellMotionDetector/Motion``, IsMotion), line
crossing (``tns1:RuleEngine/LineDetector/Crossed``, a pulse with ObjectId), intrusion
(``tns1:RuleEngine/FieldDetector/ObjectsInside``, IsInside) and tamper
(``tns1:VideoSource/GlobalSceneChange/ImagingService``, State). Stateful topics are sent as
PropertyOperation "Changed" when their value changes; a new subscription (and SetSynchronizationPoint)
first gets every known property as "Initialized", as real cameras do.

Failures a client must survive: a subscription past its termination time is gone (PullMessages and
Renew get a fault), ``forget_subscriptions()`` drops every subscription (as some firmware does under
load), and ``reboot(seconds)`` makes the device refuse connections for that long and forget its
subscriptions and event states.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import itertools
import logging
import re
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from xml.sax.saxutils import escape

from aiohttp import web
from lxml import etree

log = logging.getLogger(__name__)

BASE_PORT = 18080
DEVICE_PATH = "/onvif/device_service"
MEDIA_PATH = "/onvif/media_service"
EVENTS_PATH = "/onvif/events_service"
SUBSCRIPTION_PATH = "/onvif/subscription"
SNAPSHOT_PATH = "/onvif/snapshot.jpg"

SOAP12 = "http://www.w3.org/2003/05/soap-envelope"
WSSE = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd"
WSU = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd"
PASSWORD_TEXT = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-username-token-profile-1.0#PasswordText"
NS_DEVICE = "http://www.onvif.org/ver10/device/wsdl"
NS_MEDIA = "http://www.onvif.org/ver10/media/wsdl"
NS_EVENTS = "http://www.onvif.org/ver10/events/wsdl"
NS_WSNT = "http://docs.oasis-open.org/wsn/b-2"

NAMESPACES = {
    "s": SOAP12,
    "tds": NS_DEVICE,
    "trt": NS_MEDIA,
    "tev": NS_EVENTS,
    "tt": "http://www.onvif.org/ver10/schema",
    "wsnt": NS_WSNT,
    "wsa": "http://www.w3.org/2005/08/addressing",
    "wstop": "http://docs.oasis-open.org/wsn/t-1",
    "tns1": "http://www.onvif.org/ver10/topics",
    "ter": "http://www.onvif.org/ver10/error",
}
_XMLNS = " ".join(f'xmlns:{p}="{u}"' for p, u in NAMESPACES.items())

VIDEO_SOURCE = "VideoSource_1"
VIDEO_SOURCE_CONFIG = "VideoSourceConfig_1"
ANALYTICS_CONFIG = "VideoAnalyticsConfig_1"
PROFILE = "Profile_1"
MAX_TERMINATION_S = 3600.0  # the longest subscription the device grants
MAX_PULL_TIMEOUT_S = 60.0
MAX_PULL_POINTS = 10
MAX_CLOCK_SKEW_S = 300.0  # a UsernameToken created further from the device's clock is refused


@dataclass(frozen=True)
class TopicSpec:
    """One event topic the device can raise: its Source items and the name of its Data item."""

    topic: str
    source: tuple[tuple[str, str], ...]
    data: str
    stateful: bool  # False: a pulse (line crossing), sent once per event, no Initialized state


TOPICS: dict[str, TopicSpec] = {
    "motion": TopicSpec(
        "tns1:RuleEngine/CellMotionDetector/Motion",
        (("VideoSourceConfigurationToken", VIDEO_SOURCE_CONFIG), ("VideoAnalyticsConfigurationToken", ANALYTICS_CONFIG),
         ("Rule", "MyMotionDetectorRule")),
        "IsMotion", True,
    ),
    "line_crossing": TopicSpec(
        "tns1:RuleEngine/LineDetector/Crossed",
        (("VideoSourceConfigurationToken", VIDEO_SOURCE_CONFIG), ("VideoAnalyticsConfigurationToken", ANALYTICS_CONFIG),
         ("Rule", "MyLineDetectorRule")),
        "ObjectId", False,
    ),
    "intrusion": TopicSpec(
        "tns1:RuleEngine/FieldDetector/ObjectsInside",
        (("VideoSourceConfigurationToken", VIDEO_SOURCE_CONFIG), ("VideoAnalyticsConfigurationToken", ANALYTICS_CONFIG),
         ("Rule", "MyFieldDetectorRule")),
        "IsInside", True,
    ),
    "tamper": TopicSpec(
        "tns1:VideoSource/GlobalSceneChange/ImagingService", (("Source", VIDEO_SOURCE),), "State", True,
    ),
}  # fmt: skip


def topic_spec(topic: str) -> TopicSpec:
    """A short name (motion, line_crossing, intrusion, tamper) or a full topic, with or without ``tns1:``."""
    if topic in TOPICS:
        return TOPICS[topic]
    bare = topic.removeprefix("tns1:")
    for spec in TOPICS.values():
        if spec.topic.removeprefix("tns1:") == bare:
            return spec
    raise ValueError(f"unknown ONVIF topic {topic!r}; known: {', '.join(TOPICS)}")


class SoapFault(Exception):
    def __init__(self, code: str, subcode: str, reason: str, status: int = 400) -> None:
        super().__init__(reason)
        self.code, self.subcode, self.reason, self.status = code, subcode, reason, status


def _iso(t: datetime) -> str:
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


_DURATION = re.compile(r"^P(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+(?:\.\d+)?)S)?)?$")


def parse_time(value: str, now: datetime) -> datetime:
    """An xs:duration (``PT60S``) counted from ``now``, or an absolute xs:dateTime."""
    value = value.strip()
    if m := _DURATION.match(value):
        days, hours, minutes, seconds = (float(g) if g else 0.0 for g in m.groups())
        return now + timedelta(days=days, hours=hours, minutes=minutes, seconds=seconds)
    try:
        t = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise SoapFault("s:Sender", "wsntw:UnacceptableInitialTerminationTimeFault", f"bad time {value!r}") from None
    return t if t.tzinfo else t.replace(tzinfo=UTC)


def parse_duration_s(value: str | None, default: float) -> float:
    if not value:
        return default
    m = _DURATION.match(value.strip())
    if not m:
        raise SoapFault("s:Sender", "ter:InvalidArgVal", f"bad duration {value!r}")
    days, hours, minutes, seconds = (float(g) if g else 0.0 for g in m.groups())
    return days * 86400 + hours * 3600 + minutes * 60 + seconds


@dataclass
class _Event:
    spec: TopicSpec
    value: str
    operation: str  # Initialized | Changed
    at: datetime


@dataclass
class Subscription:
    id: int
    terminates_at: datetime
    queue: deque[_Event] = field(default_factory=lambda: deque(maxlen=1000))
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    gone: bool = False


class OnvifDevice:
    """One simulated ONVIF camera on 127.0.0.1:``port``."""

    def __init__(
        self, camera_id: str, name: str, port: int, *, username: str = "admin", password: str = "admin",
        rtsp_url: str = "rtsp://127.0.0.1:8554", host: str = "127.0.0.1",
    ) -> None:  # fmt: skip
        self.camera_id = camera_id
        self.name = name
        self.host = host
        self.port = port
        self.username = username
        self._password = password
        self.rtsp_url = rtsp_url.rstrip("/")
        self.subscriptions: dict[int, Subscription] = {}
        self._ids = itertools.count(1)
        self._states: dict[TopicSpec, tuple[str, datetime]] = {}
        self._object_ids = itertools.count(1)
        self._runner: web.AppRunner | None = None
        self._reboot_task: asyncio.Task[None] | None = None
        self.rebooting = False
        #: JPEG of the camera's current picture for GetSnapshotUri's address, set by whoever owns the picture
        self.snapshot: Callable[[], Awaitable[bytes | None]] | None = None
        self.requests = 0  # every SOAP request answered (tests read it)
        self.renewals = 0
        self.created = 0

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}{DEVICE_PATH}"

    def _base(self) -> str:
        return f"http://{self.host}:{self.port}"

    # -- lifecycle ----------------------------------------------------------------------------
    async def start(self) -> None:
        app = web.Application()
        app.router.add_post(DEVICE_PATH, self._handle)
        app.router.add_post(MEDIA_PATH, self._handle)
        app.router.add_post(EVENTS_PATH, self._handle)
        app.router.add_post(SUBSCRIPTION_PATH + "/{sub}", self._handle)
        app.router.add_get(SNAPSHOT_PATH, self._snapshot)
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.2)
        await runner.setup()
        await web.TCPSite(runner, self.host, self.port, reuse_address=True).start()
        self._runner = runner

    async def stop(self) -> None:
        if self._reboot_task is not None:
            self._reboot_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reboot_task
            self._reboot_task = None
        await self._shutdown()

    async def _shutdown(self) -> None:
        self.forget_subscriptions()
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()

    def reboot(self, seconds: float) -> None:
        """Go away for ``seconds`` (connections refused), then come back with no subscriptions and no alarms."""
        if self._reboot_task is not None and not self._reboot_task.done():
            return
        self._reboot_task = asyncio.get_running_loop().create_task(self._reboot(seconds))

    async def _reboot(self, seconds: float) -> None:
        self.rebooting = True
        try:
            log.info("ONVIF device %s rebooting for %.1f s", self.camera_id, seconds)
            await self._shutdown()
            self._states.clear()
            await asyncio.sleep(seconds)
            await self.start()
        finally:
            self.rebooting = False

    def forget_subscriptions(self) -> None:
        """Drop every subscription (a pending PullMessages answers with a fault)."""
        for sub in self.subscriptions.values():
            sub.gone = True
            sub.wake.set()
        self.subscriptions.clear()

    # -- events -------------------------------------------------------------------------------
    def raise_event(self, topic: str, active: bool = True) -> None:
        """Raise (``active``) or end an event on ``topic``; a line crossing is a pulse (an end does nothing)."""
        spec = topic_spec(topic)
        now = datetime.now(UTC)
        if spec.stateful:
            value = "true" if active else "false"
            previous = self._states.get(spec)
            if previous is not None and previous[0] == value:
                return  # a property sends Changed only when it changes
            if previous is None and not active:
                return
            self._states[spec] = (value, now)
        elif not active:
            return
        else:
            value = str(next(self._object_ids))
        self._deliver(_Event(spec, value, "Changed", now))

    def _deliver(self, event: _Event, only: Iterable[Subscription] | None = None) -> None:
        now = datetime.now(UTC)
        for sub in list(only if only is not None else self.subscriptions.values()):
            if sub.terminates_at > now and not sub.gone:
                sub.queue.append(event)
                sub.wake.set()

    def _initialize(self, sub: Subscription) -> None:
        for spec, (value, at) in self._states.items():
            self._deliver(_Event(spec, value, "Initialized", at), only=[sub])

    # -- HTTP / SOAP ----------------------------------------------------------------------------
    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        try:
            root = etree.fromstring(body, parser=etree.XMLParser(resolve_entities=False, no_network=True))
            payload = root.find(f"{{{SOAP12}}}Body")
            if payload is None or len(payload) == 0:
                raise SoapFault("s:Sender", "ter:InvalidArgs", "no SOAP 1.2 Body")
            op = payload[0]
            name = etree.QName(op).localname
            if name != "GetSystemDateAndTime":
                self._authenticate(root)
            self.requests += 1
            answer = await self._operation(name, op, request.match_info.get("sub"))
        except SoapFault as fault:
            return _respond(_fault(fault), fault.status)
        except etree.XMLSyntaxError as exc:
            return _respond(_fault(SoapFault("s:Sender", "ter:WellFormed", f"not XML: {exc}")), 400)
        return _respond(_envelope(answer), 200)

    async def _snapshot(self, request: web.Request) -> web.Response:
        picture = await self.snapshot() if self.snapshot is not None else None
        if picture is None:
            return web.Response(status=503, text="no picture available")
        return web.Response(body=picture, content_type="image/jpeg")

    def _authenticate(self, root: Any) -> None:
        token = root.find(f"{{{SOAP12}}}Header/{{{WSSE}}}Security/{{{WSSE}}}UsernameToken")
        if token is None:
            raise SoapFault("s:Sender", "ter:NotAuthorized", "Sender not Authorized: no UsernameToken")
        user = token.findtext(f"{{{WSSE}}}Username") or ""
        pw = token.find(f"{{{WSSE}}}Password")
        given = (pw.text or "") if pw is not None else ""
        if pw is not None and pw.get("Type") == PASSWORD_TEXT:
            expected = self._password
        else:
            nonce = base64.b64decode(token.findtext(f"{{{WSSE}}}Nonce") or "")
            created = token.findtext(f"{{{WSU}}}Created") or ""
            digest = hashlib.sha1(nonce + created.encode() + self._password.encode()).digest()
            expected = base64.b64encode(digest).decode()
            try:
                skew = abs((datetime.fromisoformat(created.replace("Z", "+00:00")) - datetime.now(UTC)).total_seconds())
            except (ValueError, TypeError):  # no Created, or naive
                skew = float("inf")
            if skew > MAX_CLOCK_SKEW_S:
                raise SoapFault("s:Sender", "ter:NotAuthorized", "Sender not Authorized: token time out of range")
        if user != self.username or given != expected:
            raise SoapFault("s:Sender", "ter:NotAuthorized", "Sender not Authorized")

    async def _operation(self, name: str, op: Any, sub_id: str | None) -> str:
        if sub_id is not None:
            return await self._subscription_operation(name, op, sub_id)
        handler = getattr(self, f"_op_{name}", None)
        if handler is None:
            raise SoapFault("s:Receiver", "ter:ActionNotSupported", f"{name} is not supported", status=500)
        result: str = handler(op)
        return result

    # device service (handlers are named after the ONVIF operations they answer)
    def _op_GetSystemDateAndTime(self, op: Any) -> str:
        n = datetime.now(UTC)
        return (
            "<tds:GetSystemDateAndTimeResponse><tds:SystemDateAndTime><tt:DateTimeType>NTP</tt:DateTimeType>"
            "<tt:DaylightSavings>false</tt:DaylightSavings><tt:TimeZone><tt:TZ>UTC0</tt:TZ></tt:TimeZone>"
            f"<tt:UTCDateTime><tt:Time><tt:Hour>{n.hour}</tt:Hour><tt:Minute>{n.minute}</tt:Minute>"
            f"<tt:Second>{n.second}</tt:Second></tt:Time><tt:Date><tt:Year>{n.year}</tt:Year>"
            f"<tt:Month>{n.month}</tt:Month><tt:Day>{n.day}</tt:Day></tt:Date></tt:UTCDateTime>"
            "</tds:SystemDateAndTime></tds:GetSystemDateAndTimeResponse>"
        )

    def _op_GetDeviceInformation(self, op: Any) -> str:
        return (
            "<tds:GetDeviceInformationResponse><tds:Manufacturer>dronedispatch</tds:Manufacturer>"
            f"<tds:Model>Simulated CCTV</tds:Model><tds:FirmwareVersion>1.0</tds:FirmwareVersion>"
            f"<tds:SerialNumber>{escape(self.camera_id)}</tds:SerialNumber>"
            f"<tds:HardwareId>sim-{self.port}</tds:HardwareId></tds:GetDeviceInformationResponse>"
        )

    def _op_GetCapabilities(self, op: Any) -> str:
        b = self._base()
        return (
            "<tds:GetCapabilitiesResponse><tds:Capabilities>"
            f"<tt:Device><tt:XAddr>{b}{DEVICE_PATH}</tt:XAddr></tt:Device>"
            f"<tt:Events><tt:XAddr>{b}{EVENTS_PATH}</tt:XAddr><tt:WSSubscriptionPolicySupport>false"
            "</tt:WSSubscriptionPolicySupport><tt:WSPullPointSupport>true</tt:WSPullPointSupport>"
            "<tt:WSPausableSubscriptionManagerInterfaceSupport>false</tt:WSPausableSubscriptionManagerInterfaceSupport>"
            f"</tt:Events><tt:Media><tt:XAddr>{b}{MEDIA_PATH}</tt:XAddr><tt:StreamingCapabilities>"
            "<tt:RTPMulticast>false</tt:RTPMulticast><tt:RTP_TCP>true</tt:RTP_TCP><tt:RTP_RTSP_TCP>true</tt:RTP_RTSP_TCP>"
            "</tt:StreamingCapabilities></tt:Media></tds:Capabilities></tds:GetCapabilitiesResponse>"
        )

    def _op_GetServices(self, op: Any) -> str:
        b = self._base()
        services = ((NS_DEVICE, DEVICE_PATH), (NS_MEDIA, MEDIA_PATH), (NS_EVENTS, EVENTS_PATH))
        return (
            "<tds:GetServicesResponse>"
            + "".join(
                f"<tds:Service><tds:Namespace>{ns}</tds:Namespace><tds:XAddr>{b}{path}</tds:XAddr>"
                "<tds:Version><tt:Major>2</tt:Major><tt:Minor>60</tt:Minor></tds:Version></tds:Service>"
                for ns, path in services
            )
            + "</tds:GetServicesResponse>"
        )

    def _op_GetScopes(self, op: Any) -> str:
        scopes = (
            "onvif://www.onvif.org/Profile/Streaming",
            "onvif://www.onvif.org/Profile/T",
            "onvif://www.onvif.org/type/video_encoder",
            f"onvif://www.onvif.org/name/{self.camera_id}",
            "onvif://www.onvif.org/hardware/sim",
        )
        return (
            "<tds:GetScopesResponse>"
            + "".join(
                f"<tds:Scopes><tt:ScopeDef>Fixed</tt:ScopeDef><tt:ScopeItem>{escape(s)}</tt:ScopeItem></tds:Scopes>"
                for s in scopes
            )
            + "</tds:GetScopesResponse>"
        )

    # media
    def _op_GetProfiles(self, op: Any) -> str:
        return (
            f'<trt:GetProfilesResponse><trt:Profiles token="{PROFILE}" fixed="true"><tt:Name>main</tt:Name>'
            f'<tt:VideoSourceConfiguration token="{VIDEO_SOURCE_CONFIG}"><tt:Name>video source</tt:Name>'
            f"<tt:UseCount>1</tt:UseCount><tt:SourceToken>{VIDEO_SOURCE}</tt:SourceToken>"
            '<tt:Bounds x="0" y="0" width="1280" height="720"/></tt:VideoSourceConfiguration>'
            '<tt:VideoEncoderConfiguration token="VideoEncoderConfig_1"><tt:Name>h264</tt:Name>'
            "<tt:UseCount>1</tt:UseCount><tt:Encoding>H264</tt:Encoding>"
            "<tt:Resolution><tt:Width>1280</tt:Width><tt:Height>720</tt:Height></tt:Resolution>"
            "<tt:Quality>5</tt:Quality><tt:RateControl><tt:FrameRateLimit>25</tt:FrameRateLimit>"
            "<tt:EncodingInterval>1</tt:EncodingInterval><tt:BitrateLimit>2048</tt:BitrateLimit></tt:RateControl>"
            "<tt:H264><tt:GovLength>25</tt:GovLength><tt:H264Profile>Baseline</tt:H264Profile></tt:H264>"
            "<tt:SessionTimeout>PT60S</tt:SessionTimeout></tt:VideoEncoderConfiguration>"
            "</trt:Profiles></trt:GetProfilesResponse>"
        )

    def _media_uri(self, element: str, uri: str) -> str:
        return (
            f"<trt:{element}><trt:MediaUri><tt:Uri>{escape(uri)}</tt:Uri>"
            "<tt:InvalidAfterConnect>false</tt:InvalidAfterConnect><tt:InvalidAfterReboot>false</tt:InvalidAfterReboot>"
            f"<tt:Timeout>PT0S</tt:Timeout></trt:MediaUri></trt:{element}>"
        )

    def _check_profile(self, op: Any) -> None:
        token = op.findtext(f"{{{NS_MEDIA}}}ProfileToken")
        if token != PROFILE:
            raise SoapFault("s:Sender", "ter:NoProfile", f"no profile {token!r}")

    def _op_GetStreamUri(self, op: Any) -> str:
        self._check_profile(op)
        return self._media_uri("GetStreamUriResponse", f"{self.rtsp_url}/{self.camera_id}")

    def _op_GetSnapshotUri(self, op: Any) -> str:
        self._check_profile(op)
        return self._media_uri("GetSnapshotUriResponse", f"{self._base()}{SNAPSHOT_PATH}")

    # events
    def _op_GetServiceCapabilities(self, op: Any) -> str:
        return (
            '<tev:GetServiceCapabilitiesResponse><tev:Capabilities WSSubscriptionPolicySupport="false" '
            'WSPullPointSupport="true" WSPausableSubscriptionManagerInterfaceSupport="false" '
            f'MaxNotificationProducers="0" MaxPullPoints="{MAX_PULL_POINTS}" PersistentNotificationStorage="false"/>'
            "</tev:GetServiceCapabilitiesResponse>"
        )

    def _op_GetEventProperties(self, op: Any) -> str:
        topics = ""
        for spec in TOPICS.values():
            parts = spec.topic.removeprefix("tns1:").split("/")
            source = "".join(f'<tt:SimpleItemDescription Name="{n}" Type="tt:ReferenceToken"/>' for n, _ in spec.source)
            kind = "xs:boolean" if spec.stateful else "xs:string"
            leaf = (
                f'<{parts[-1]} wstop:topic="true"><tt:MessageDescription IsProperty="{str(spec.stateful).lower()}">'
                f'<tt:Source>{source}</tt:Source><tt:Data><tt:SimpleItemDescription Name="{spec.data}" '
                f'Type="{kind}"/></tt:Data></tt:MessageDescription></{parts[-1]}>'
            )
            inner = leaf
            for part in reversed(parts[1:-1]):
                inner = f"<{part}>{inner}</{part}>"
            topics += f"<tns1:{parts[0]}>{inner}</tns1:{parts[0]}>"
        return (
            "<tev:GetEventPropertiesResponse>"
            "<tev:TopicNamespaceLocation>http://www.onvif.org/onvif/ver10/topics/topicns.xml</tev:TopicNamespaceLocation>"
            f"<wsnt:FixedTopicSet>true</wsnt:FixedTopicSet><wstop:TopicSet>{topics}</wstop:TopicSet>"
            "<wsnt:TopicExpressionDialect>http://www.onvif.org/ver10/tev/topicExpression/ConcreteSet"
            "</wsnt:TopicExpressionDialect>"
            "<wsnt:TopicExpressionDialect>http://docs.oasis-open.org/wsn/t-1/TopicExpression/Concrete"
            "</wsnt:TopicExpressionDialect>"
            "<tev:MessageContentFilterDialect>http://www.onvif.org/ver10/tev/messageContentFilter/ItemFilter"
            "</tev:MessageContentFilterDialect>"
            "<tev:MessageContentSchemaLocation>http://www.onvif.org/onvif/ver10/schema/onvif.xsd"
            "</tev:MessageContentSchemaLocation></tev:GetEventPropertiesResponse>"
        )

    def _termination(self, requested: str | None, now: datetime) -> datetime:
        at = parse_time(requested, now) if requested else now + timedelta(seconds=60)
        if at <= now:
            raise SoapFault("s:Sender", "wsntw:UnacceptableInitialTerminationTimeFault", "termination time is past")
        return min(at, now + timedelta(seconds=MAX_TERMINATION_S))

    def _op_CreatePullPointSubscription(self, op: Any) -> str:
        now = datetime.now(UTC)
        for stale in [s for s in self.subscriptions.values() if s.terminates_at <= now]:
            del self.subscriptions[stale.id]
        if len(self.subscriptions) >= MAX_PULL_POINTS:  # as real cameras: a client that leaks them runs out
            raise SoapFault("s:Receiver", "ter:MaxPullPointsReached", f"all {MAX_PULL_POINTS} pull points in use", 500)
        sub = Subscription(
            next(self._ids), self._termination(op.findtext(f"{{{NS_EVENTS}}}InitialTerminationTime"), now)
        )
        self.subscriptions[sub.id] = sub
        self.created += 1
        self._initialize(sub)
        return (
            "<tev:CreatePullPointSubscriptionResponse><tev:SubscriptionReference>"
            f"<wsa:Address>{self._base()}{SUBSCRIPTION_PATH}/{sub.id}</wsa:Address></tev:SubscriptionReference>"
            f"<wsnt:CurrentTime>{_iso(now)}</wsnt:CurrentTime><wsnt:TerminationTime>{_iso(sub.terminates_at)}"
            "</wsnt:TerminationTime></tev:CreatePullPointSubscriptionResponse>"
        )

    def _live(self, sub_id: str) -> Subscription:
        sub = self.subscriptions.get(int(sub_id)) if sub_id.isdigit() else None
        if sub is not None and sub.terminates_at <= datetime.now(UTC):
            del self.subscriptions[sub.id]  # expired: gone for good
            sub = None
        if sub is None or sub.gone:
            raise SoapFault("s:Sender", "wsrf-rw:ResourceUnknownFault", f"no subscription {sub_id}")
        return sub

    async def _subscription_operation(self, name: str, op: Any, sub_id: str) -> str:
        sub = self._live(sub_id)
        now = datetime.now(UTC)
        if name == "PullMessages":
            return await self._pull(sub, op)
        if name == "Renew":
            sub.terminates_at = self._termination(op.findtext(f"{{{NS_WSNT}}}TerminationTime"), now)
            self.renewals += 1
            return (
                f"<wsnt:RenewResponse><wsnt:TerminationTime>{_iso(sub.terminates_at)}</wsnt:TerminationTime>"
                f"<wsnt:CurrentTime>{_iso(now)}</wsnt:CurrentTime></wsnt:RenewResponse>"
            )
        if name == "Unsubscribe":
            self.subscriptions.pop(sub.id, None)
            sub.gone = True
            sub.wake.set()
            return "<wsnt:UnsubscribeResponse/>"
        if name == "SetSynchronizationPoint":
            self._initialize(sub)
            return "<tev:SetSynchronizationPointResponse/>"
        raise SoapFault("s:Receiver", "ter:ActionNotSupported", f"{name} is not supported", status=500)

    async def _pull(self, sub: Subscription, op: Any) -> str:
        timeout = min(parse_duration_s(op.findtext(f"{{{NS_EVENTS}}}Timeout"), 10.0), MAX_PULL_TIMEOUT_S)
        limit = int(op.findtext(f"{{{NS_EVENTS}}}MessageLimit") or "100")
        if limit < 1:
            raise SoapFault("s:Sender", "ter:InvalidArgVal", "MessageLimit must be at least 1")
        deadline = asyncio.get_running_loop().time() + timeout
        while not sub.queue and not sub.gone:
            sub.wake.clear()
            remaining = deadline - asyncio.get_running_loop().time()
            if remaining <= 0:
                break
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(sub.wake.wait(), remaining)
        if sub.gone:
            raise SoapFault("s:Sender", "wsrf-rw:ResourceUnknownFault", f"subscription {sub.id} is gone")
        events = [sub.queue.popleft() for _ in range(min(limit, len(sub.queue)))]
        now = datetime.now(UTC)
        return (
            f"<tev:PullMessagesResponse><tev:CurrentTime>{_iso(now)}</tev:CurrentTime>"
            f"<tev:TerminationTime>{_iso(sub.terminates_at)}</tev:TerminationTime>"
            + "".join(self._notification(e) for e in events)
            + "</tev:PullMessagesResponse>"
        )

    def _notification(self, e: _Event) -> str:
        source = "".join(f'<tt:SimpleItem Name="{n}" Value="{escape(v)}"/>' for n, v in e.spec.source)
        return (
            "<wsnt:NotificationMessage>"
            f'<wsnt:Topic Dialect="http://www.onvif.org/ver10/tev/topicExpression/ConcreteSet">{e.spec.topic}</wsnt:Topic>'
            f'<wsnt:Message><tt:Message UtcTime="{_iso(e.at)}" PropertyOperation="{e.operation}">'
            f"<tt:Source>{source}</tt:Source>"
            f'<tt:Data><tt:SimpleItem Name="{e.spec.data}" Value="{e.value}"/></tt:Data>'
            "</tt:Message></wsnt:Message></wsnt:NotificationMessage>"
        )


def _envelope(body: str) -> str:
    return f'<?xml version="1.0" encoding="UTF-8"?>\n<s:Envelope {_XMLNS}><s:Body>{body}</s:Body></s:Envelope>'


def _fault(f: SoapFault) -> str:
    extra = ' xmlns:wsntw="http://docs.oasis-open.org/wsn/bw-2" xmlns:wsrf-rw="http://docs.oasis-open.org/wsrf/rw-2"'
    return (
        f'<?xml version="1.0" encoding="UTF-8"?>\n<s:Envelope {_XMLNS}{extra}><s:Body><s:Fault>'
        f"<s:Code><s:Value>{f.code}</s:Value><s:Subcode><s:Value>{f.subcode}</s:Value></s:Subcode></s:Code>"
        f'<s:Reason><s:Text xml:lang="en">{escape(f.reason)}</s:Text></s:Reason></s:Fault></s:Body></s:Envelope>'
    )


def _respond(text: str, status: int) -> web.Response:
    return web.Response(text=text, status=status, content_type="application/soap+xml", charset="utf-8")


async def start_onvif_devices(
    cameras: Sequence[Any],
    *,
    host: str = "127.0.0.1",
    base_port: int = BASE_PORT,
    username: str = "admin",
    password: str = "admin",
    rtsp_url: str = "rtsp://127.0.0.1:8554",
) -> dict[str, OnvifDevice]:
    """Serve entry k of ``cameras`` (a cameras file's list: objects with ``id``, ``name_en`` and ``is_camera``)
    as an ONVIF device on ``base_port + k``; sensors keep their number but get no device.

    An entry's own ``onvif`` block, when present, gives its account (so the demo file and the service agree).
    Returns the running devices by camera id; stop them with :func:`stop_onvif_devices`.
    """  # fmt: skip
    devices: dict[str, OnvifDevice] = {}
    try:
        for k, cam in enumerate(cameras):
            if not getattr(cam, "is_camera", True):
                continue
            account = getattr(cam, "onvif", None)
            device = OnvifDevice(
                cam.id, getattr(cam, "name_en", cam.id), base_port + k, host=host, rtsp_url=rtsp_url,
                username=account.username if account is not None else username,
                password=account.password if account is not None else password,
            )  # fmt: skip
            await device.start()
            devices[cam.id] = device
    except BaseException:
        await stop_onvif_devices(devices)
        raise
    return devices


async def stop_onvif_devices(devices: dict[str, OnvifDevice]) -> None:
    for device in devices.values():
        await device.stop()
