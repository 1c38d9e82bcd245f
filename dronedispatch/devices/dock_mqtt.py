"""The shipped dock adapter: dock states and commands as JSON over MQTT (docs/docks-mqtt.md).

One asyncio task owns the connection: it subscribes to ``<prefix>/+/state`` (retained, so the
latest state of every dock arrives at once on connect), validates each message and hands valid
states to ``on_state``. An invalid payload is logged and counted per dock (:attr:`invalid`,
:attr:`last_error`), never fatal. When the broker goes away the task reconnects with exponential
backoff and resubscribes. Commands go to ``<prefix>/<dock_id>/command`` at QoS 1, never retained:
a retained command would be carried out again whenever the dock reconnects.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import uuid
from collections import Counter
from collections.abc import Callable

import aiomqtt

from dronedispatch.domain.docks import (
    TOPIC_PREFIX,
    CommandRequest,
    DockCommand,
    DockPayloadError,
    DockState,
    command_topic,
    dock_of_topic,
    parse_state,
)
from dronedispatch.ingest.mqtt import parse_mqtt_url

log = logging.getLogger(__name__)


class MqttDockAdapter:
    """Implements :class:`dronedispatch.app.ports.DockAdapter` over an MQTT broker at ``url``."""

    def __init__(
        self,
        url: str,
        *,
        prefix: str = TOPIC_PREFIX,
        client_id: str | None = None,
        backoff_initial: float = 0.5,
        backoff_max: float = 30.0,
        keepalive: int = 30,
    ) -> None:
        self.host, self.port, self._username, self._password = parse_mqtt_url(url)
        self.prefix = prefix
        self.client_id = client_id or f"dronedispatch-docks-{uuid.uuid4().hex[:12]}"
        self._backoff_initial = backoff_initial
        self._backoff_max = backoff_max
        self._keepalive = keepalive
        self._on_state: Callable[[DockState], None] | None = None
        self._client: aiomqtt.Client | None = None
        self._task: asyncio.Task[None] | None = None
        #: valid states received, per dock
        self.received: Counter[str] = Counter()
        #: invalid payloads received, per dock id of their topic
        self.invalid: Counter[str] = Counter()
        #: why the latest invalid payload of each dock was refused
        self.last_error: dict[str, str] = {}
        self.reconnects = 0
        self.connected = asyncio.Event()

    async def start(self, on_state: Callable[[DockState], None]) -> None:
        self._on_state = on_state
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name=f"dock-mqtt-{self.host}:{self.port}")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            # bounded: a client cancelled in the middle of (re)connecting may not unwind at once
            done, _ = await asyncio.wait({self._task}, timeout=5)
            if not done:
                log.warning("dock MQTT client did not stop within 5 s; left behind")
            self._task = None
        self._client = None
        self.connected.clear()

    async def send(self, dock_id: str, command: str, request_id: str) -> None:
        body = CommandRequest(command=DockCommand(command), request_id=request_id)
        client = self._client
        if client is None:
            raise ConnectionError(f"not connected to the dock broker {self.host}:{self.port}")
        try:
            await client.publish(command_topic(dock_id, self.prefix), body.model_dump_json(), qos=1)
        except aiomqtt.MqttError as exc:
            raise ConnectionError(f"could not send {command} to dock {dock_id}: {exc}") from exc

    async def _run(self) -> None:
        delay = self._backoff_initial
        first = True
        while True:
            try:
                async with aiomqtt.Client(
                    self.host, self.port, username=self._username, password=self._password,
                    identifier=self.client_id, keepalive=self._keepalive, timeout=10,
                ) as client:  # fmt: skip
                    await client.subscribe(f"{self.prefix}/+/state", qos=1)
                    if not first:
                        self.reconnects += 1
                    first = False
                    log.info("docks: subscribed to %s/+/state on %s:%d", self.prefix, self.host, self.port)
                    self._client = client
                    self.connected.set()
                    delay = self._backoff_initial
                    async for message in client.messages:
                        self.handle(str(message.topic), message.payload)
            except aiomqtt.MqttError as exc:
                log.warning(
                    "docks: broker %s:%d unavailable (%s); retrying in %.1f s", self.host, self.port, exc, delay
                )
            except Exception:  # anything else: log and reconnect rather than lose the docks
                log.exception("docks: connection loop failed; reconnecting in %.1f s", delay)
            self._client = None
            self.connected.clear()
            await asyncio.sleep(delay * random.uniform(0.8, 1.2))
            delay = min(delay * 2, self._backoff_max)

    def handle(self, topic: str, payload: object) -> DockState | None:
        """One message of a state topic: the valid state it carries (also given to ``on_state``), or None."""
        dock_id = dock_of_topic(topic, "state", self.prefix)
        if dock_id is None:
            return None
        if not payload:  # an empty retained message clears a dock's state at the broker: nothing to read
            return None
        data = payload if isinstance(payload, bytes | bytearray | str) else json.dumps(payload)
        try:
            state = parse_state(bytes(data) if isinstance(data, bytearray) else data, dock_id=dock_id)
        except DockPayloadError as exc:
            self.invalid[dock_id] += 1
            self.last_error[dock_id] = str(exc)
            log.warning("docks: invalid state on %s ignored: %s", topic, exc)
            return None
        self.received[dock_id] += 1
        if self._on_state is not None:
            try:
                self._on_state(state)
            except Exception:
                log.exception("docks: state handler failed for %s", dock_id)
        return state
