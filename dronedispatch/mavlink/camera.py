"""The MAVLink camera protocol, client side: ask a vehicle's camera what it streams, and start it.

Theory of operation
-------------------
A camera is a component of the vehicle (MAV_COMP_ID_CAMERA 100 and up). Its information is not
streamed: we ask with MAV_CMD_REQUEST_MESSAGE(message id) and the camera answers with a
COMMAND_ACK *and* the message itself, in either order. :class:`RequestMessageTransaction`
finishes only when it has both; the ACK alone, with the message lost on the way, is re-asked
after the command timeout (the command's own re-send handles a lost ACK). A refusal (any
result but ACCEPTED) fails at once with :class:`~dronedispatch.mavlink.errors.CommandDenied`.

Sans-I/O like the other protocols: messages in, messages and deadlines out; the vehicle facade
drives it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from dronedispatch.domain.mission_items import Cmd
from dronedispatch.mavlink.command_protocol import COMMAND_TIMEOUT_S, MAX_RETRIES, CommandTransaction
from dronedispatch.mavlink.errors import LinkError
from dronedispatch.mavlink.transaction import Transaction

if TYPE_CHECKING:
    from dronedispatch.mavlink.vehicle import Vehicle

MAV_COMP_ID_CAMERA = 100
MSG_CAMERA_INFORMATION = 259
MSG_VIDEO_STREAM_INFORMATION = 269
_NAMES = {MSG_CAMERA_INFORMATION: "CAMERA_INFORMATION", MSG_VIDEO_STREAM_INFORMATION: "VIDEO_STREAM_INFORMATION"}


class RequestMessageTransaction(Transaction):
    """REQUEST_MESSAGE(msg_id) to one component; done when both its ACK and the message arrived."""

    def __init__(
        self,
        target_system: int,
        target_component: int,
        msg_id: int,
        *,
        param2: float = 0.0,
        rtt_s: float | None = None,
        max_asks: int = MAX_RETRIES,
        our_system: int = 255,
    ) -> None:
        super().__init__()
        self.our_system = our_system
        self.target_component = target_component
        self.msg_id = msg_id
        self.msg_name = _NAMES.get(msg_id)
        self._args = (target_system, target_component, Cmd.REQUEST_MESSAGE, (float(msg_id), param2, 0, 0, 0, 0, 0))
        self._rtt_s = rtt_s
        self._cmd = self._new_command()
        self.answer: Any = None
        self.asks = 1
        self.max_asks = max_asks

    def _new_command(self) -> CommandTransaction:
        ts, tc, cmd, params = self._args
        tx = CommandTransaction(ts, tc, cmd, params, rtt_s=self._rtt_s)  # type: ignore[arg-type]
        tx.our_system = self.our_system
        return tx

    def _sync(self, out: list[Any]) -> list[Any]:
        if self._cmd.error is not None:
            return self._fail(self._cmd.error)
        if self._cmd.done and self.answer is not None:
            return [*out, *self._finish(self.answer)]
        # waiting for the ACK: its deadline; ACKed but no message yet: one command timeout to ask again
        self.deadline = self._cmd.deadline if not self._cmd.done else self._asked_at + COMMAND_TIMEOUT_S
        return out

    def start(self, now: float) -> list[Any]:
        self._asked_at = now
        return self._sync(self._cmd.start(now))

    def receive(self, msg: Any, now: float) -> list[Any]:
        if self.done:
            return []
        if self.msg_name is not None and msg.get_type() == self.msg_name:
            self.answer = msg
            return self._sync([])
        return self._sync(self._cmd.receive(msg, now))

    def on_timeout(self, now: float) -> list[Any]:
        if self.done:
            return []
        if not self._cmd.done:
            return self._sync(self._cmd.on_timeout(now))
        if self.asks >= self.max_asks:  # ACKed every time, the message never came
            what = self.msg_name or f"message {self.msg_id}"
            who = f"component {self.target_component}"
            return self._fail(LinkError(f"{who} accepted {self.asks} requests for {what} but never sent it"))
        self.asks += 1
        self._cmd = self._new_command()
        self._asked_at = now
        return self._sync(self._cmd.start(now))


@dataclass(frozen=True)
class StreamInfo:
    uri: str
    name: str
    width: int
    height: int
    framerate: float
    encoding: int  # VIDEO_STREAM_ENCODING: 1 H.264, 2 H.265
    stream_id: int


class CameraCapability:
    """A vehicle's camera: its information, its video stream, start and stop streaming."""

    def __init__(self, vehicle: Vehicle, component: int = MAV_COMP_ID_CAMERA) -> None:
        self._v = vehicle
        self.component = component

    async def _request(self, msg_id: int, param2: float = 0.0) -> Any:
        v = self._v
        tx = RequestMessageTransaction(
            v.sysid,
            self.component,
            msg_id,
            param2=param2,
            rtt_s=v.health.rtt_s,
            our_system=v._link.source_system,  # type: ignore[attr-defined]
        )
        async with v._command_lock(self.component, Cmd.REQUEST_MESSAGE):
            return await v.run(tx)

    async def information(self) -> Any:
        """CAMERA_INFORMATION (vendor, model, capability flags)."""
        return await self._request(MSG_CAMERA_INFORMATION)

    async def stream_information(self, stream_id: int = 1) -> StreamInfo:
        m = await self._request(MSG_VIDEO_STREAM_INFORMATION, float(stream_id))
        return StreamInfo(
            uri=_text(m.uri),
            name=_text(m.name),
            width=m.resolution_h,
            height=m.resolution_v,
            framerate=m.framerate,
            encoding=getattr(m, "encoding", 0),
            stream_id=m.stream_id,
        )

    async def start_streaming(self, stream_id: int = 0) -> int:
        return await self._v.command.long(Cmd.VIDEO_START_STREAMING, stream_id, target_component=self.component)

    async def stop_streaming(self, stream_id: int = 0) -> int:
        return await self._v.command.long(Cmd.VIDEO_STOP_STREAMING, stream_id, target_component=self.component)


def _text(value: bytes | str) -> str:
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    return value.rstrip("\x00")
