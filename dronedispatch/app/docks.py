"""The docks of the fleet as live devices: their latest states, and opening and closing their doors.

States come from a :class:`~dronedispatch.app.ports.DockAdapter` (MQTT by default); each change is
published as a :class:`~dronedispatch.events.DockChanged` so the operations view follows it.

Without an adapter (no MQTT configured) every dock behaves as before docks were devices: open,
healthy, weather unknown. The same holds for a dock that has never published a state: a fleet may
have docks without a bridge. Once a dock has been heard, its state counts: a fault, a door fault or
a state older than 15 s makes it unhealthy, and its door must be opened before a launch.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta

from dronedispatch.app.errors import DockDoorFault, UnknownObject
from dronedispatch.app.ports import DockAdapter
from dronedispatch.bus import Publisher
from dronedispatch.domain.docks import DockCommand, DockState, DoorState
from dronedispatch.domain.fleet import Dock
from dronedispatch.events import DockChanged

log = logging.getLogger(__name__)

DEFAULT_DOOR_TIMEOUT_S = 30.0


def _content(s: DockState) -> dict[str, object]:
    """A state without its timestamps: what a change is judged by."""
    body = s.model_dump(exclude={"updated_at"})
    if body.get("weather"):
        body["weather"].pop("at", None)
    return body


class DockService:
    def __init__(
        self,
        publisher: Publisher,
        docks: Iterable[Dock],
        adapter: DockAdapter | None = None,
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._publisher = publisher
        self.docks = {d.id: d for d in docks}
        self.adapter = adapter
        self._clock = clock
        self._monotonic = monotonic
        self._states: dict[str, DockState] = {}
        #: per dock: the monotonic time its latest state was heard, and that state's age then (s)
        self._heard: dict[str, tuple[float, float]] = {}
        self._changed = asyncio.Event()  # replaced on every state: waiters see each one
        #: states of docks that are not in the fleet file (ignored), per dock id
        self.unknown: dict[str, int] = {}

    @property
    def managed(self) -> bool:
        """True when docks are devices (an adapter is configured)."""
        return self.adapter is not None

    async def start(self, adapter: DockAdapter | None = None) -> None:
        """Begin receiving states from ``adapter`` (or the one given at construction)."""
        if adapter is not None:
            self.adapter = adapter
        if self.adapter is not None:
            await self.adapter.start(self._on_state)

    async def stop(self) -> None:
        if self.adapter is not None:
            await self.adapter.stop()

    # -- states ---------------------------------------------------------------------------------
    def state(self, dock_id: str) -> DockState | None:
        """The latest state the dock published (stamped as :meth:`_aged` says); None when none was heard
        (or no adapter)."""
        s = self._states.get(dock_id)
        return None if s is None else self._aged(dock_id, s)

    def states(self) -> dict[str, DockState]:
        return {dock_id: self._aged(dock_id, s) for dock_id, s in self._states.items()}

    def _aged(self, dock_id: str, s: DockState) -> DockState:
        """``s`` with its stamp put on this host's wall clock as it reads now: its age when it was heard plus
        the time since on the monotonic clock. Whoever judges its freshness against the wall clock (readiness,
        the weather checks) then sees its true age even after this host's clock stepped (a step would otherwise
        make every dock look stale, or a stale one fresh)."""
        heard_at, age_then = self._heard[dock_id]
        age_s = age_then + max(0.0, self._monotonic() - heard_at)
        return s.model_copy(update={"updated_at": self._clock() - timedelta(seconds=age_s)})

    def healthy(self, dock_id: str) -> bool:
        """Healthy, or not managed (no adapter, or never heard): launches from it go on as before."""
        s = self.state(dock_id)
        return s is None or s.healthy(self._clock())

    def problem(self, dock_id: str) -> str | None:
        """Why the dock is not healthy, or None."""
        s = self.state(dock_id)
        return None if s is None else s.problem(self._clock())

    def snapshot(self) -> dict[str, dict[str, object]]:
        """Each fleet dock's health for /healthz: heard or not, healthy, why not, age of its state."""
        now = self._clock()
        out: dict[str, dict[str, object]] = {}
        for dock_id in self.docks:
            s = self.state(dock_id)
            if s is None:
                out[dock_id] = {"heard": False, "healthy": True}
            else:
                out[dock_id] = {
                    "heard": True, "healthy": s.healthy(now), "problem": s.problem(now), "door": s.door.value,
                    "age_s": round(s.age_s(now), 1),
                }  # fmt: skip
        return out

    def _on_state(self, state: DockState) -> None:
        if state.dock_id not in self.docks:
            self.unknown[state.dock_id] = self.unknown.get(state.dock_id, 0) + 1
            if self.unknown[state.dock_id] == 1:
                log.warning("docks: state of dock %r, which is not in the fleet file, ignored", state.dock_id)
            return
        before = self._states.get(state.dock_id)
        if before is not None and state.updated_at < before.updated_at:
            return  # an older state delivered late (e.g. a retained one after a newer live one)
        self._states[state.dock_id] = state
        # its age as heard, on this host's clock (a retained state may be old); it ages on the monotonic clock
        self._heard[state.dock_id] = (self._monotonic(), max(0.0, (self._clock() - state.updated_at).total_seconds()))
        if before is None or _content(before) != _content(state):
            self._publisher.publish(DockChanged(data=state))
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    # -- doors ----------------------------------------------------------------------------------
    async def open_door(self, dock_id: str, timeout_s: float = DEFAULT_DOOR_TIMEOUT_S) -> None:
        """Open the door and wait until it is open; DockDoorFault on a fault or after ``timeout_s``."""
        await self._door(dock_id, DockCommand.OPEN, DoorState.OPEN, timeout_s)

    async def close_door(self, dock_id: str, timeout_s: float = DEFAULT_DOOR_TIMEOUT_S) -> None:
        """Close the door and wait until it is closed; DockDoorFault on a fault or after ``timeout_s``."""
        await self._door(dock_id, DockCommand.CLOSE, DoorState.CLOSED, timeout_s)

    async def _door(self, dock_id: str, command: DockCommand, wanted: DoorState, timeout_s: float) -> None:
        if dock_id not in self.docks:
            raise UnknownObject(f"no dock {dock_id!r} in the fleet file")
        current = self._states.get(dock_id)
        if self.adapter is None or current is None:
            return  # not a managed dock: its door counts as open, as it always did
        if (why := self._aged(dock_id, current).problem(self._clock())) is not None:
            raise DockDoorFault(dock_id, why)
        if current.door is wanted:
            return
        request_id = uuid.uuid4().hex
        try:
            await self.adapter.send(dock_id, command.value, request_id)
        except ConnectionError as exc:
            raise DockDoorFault(dock_id, f"cannot reach the dock: {exc}") from exc
        try:
            async with asyncio.timeout(timeout_s):
                while True:
                    changed = self._changed
                    s = self._states[dock_id]
                    done = s.last_command is not None and s.last_command.request_id == request_id
                    if done and s.last_command is not None and s.last_command.result == "fault":
                        raise DockDoorFault(dock_id, s.last_command.reason or s.fault or "door fault")
                    if s.door is DoorState.FAULT or s.fault is not None:
                        raise DockDoorFault(dock_id, s.fault or "door fault")
                    if s.door is wanted and (done or s.updated_at > current.updated_at):
                        return
                    await changed.wait()
        except TimeoutError:
            raise DockDoorFault(dock_id, f"door not {wanted.value} within {timeout_s:g} s") from None
