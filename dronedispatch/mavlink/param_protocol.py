"""Parameter protocol (read one, set one, fetch all), sans-I/O.

Theory of operation
-------------------
PARAM_REQUEST_READ(name) → PARAM_VALUE(name); PARAM_SET(name, value) → PARAM_VALUE echoing
the value now in force; PARAM_REQUEST_LIST → PARAM_VALUE × param_count, after which any index we
did not hear is requested one by one. Every step re-sends on timeout, up to ``max_retries``
times without a reply.

Values travel as a float32. PX4 puts integer parameters into those 4 bytes bit for bit
("bytewise"); ArduPilot converts them ("C cast"). ``bytewise`` chooses the reading.
"""

from __future__ import annotations

import struct
from typing import Any

from pymavlink.dialects.v20 import common as mav

from dronedispatch.mavlink.errors import ParamError
from dronedispatch.mavlink.transaction import Transaction

MAV_PARAM_TYPE_REAL32 = 9
INT_TYPES = {1: "<B", 2: "<b", 3: "<H", 4: "<h", 5: "<I", 6: "<i"}
TIMEOUT_S = 0.5
MAX_RETRIES = 5


def decode_value(raw: float, ptype: int, bytewise: bool) -> float | int:
    if ptype not in INT_TYPES:
        return raw
    if not bytewise:
        return int(raw)
    fmt = INT_TYPES[ptype]
    data = struct.pack("<f", raw)[: struct.calcsize(fmt)]
    return int(struct.unpack(fmt, data)[0])


def encode_value(value: float | int, ptype: int, bytewise: bool) -> float:
    if ptype not in INT_TYPES:
        return float(value)
    if not bytewise:
        return float(int(value))
    fmt = INT_TYPES[ptype]
    data = struct.pack(fmt, int(value))
    return float(struct.unpack("<f", data.ljust(4, b"\0"))[0])


def _name(msg: Any) -> str:
    pid = msg.param_id
    return pid.decode("ascii", "replace") if isinstance(pid, bytes) else str(pid)


class _ParamTx(Transaction):
    def __init__(self, ts: int, tc: int, *, bytewise: bool, timeout_s: float, max_retries: int) -> None:
        super().__init__()
        self.ts = ts
        self.target_component = tc
        self.bytewise = bytewise
        self.timeout_s = timeout_s
        self.max_retries = max_retries
        self.retries = 0

    def _request(self) -> list[Any]:
        raise NotImplementedError

    def start(self, now: float) -> list[Any]:
        self.deadline = now + self.timeout_s
        return self._request()

    def on_timeout(self, now: float) -> list[Any]:
        if self.done:
            return []
        self.retries += 1
        if self.retries > self.max_retries:
            return self._fail(ParamError(f"{type(self).__name__}: no PARAM_VALUE after {self.retries} attempts"))
        self.deadline = now + self.timeout_s
        return self._request()


class ParamRead(_ParamTx):
    """``result`` is (value, param_type)."""

    def __init__(
        self,
        ts: int,
        tc: int,
        name: str,
        *,
        bytewise: bool = True,
        timeout_s: float = TIMEOUT_S,
        max_retries: int = MAX_RETRIES,
    ) -> None:
        super().__init__(ts, tc, bytewise=bytewise, timeout_s=timeout_s, max_retries=max_retries)
        self.name = name

    def _request(self) -> list[Any]:
        return [mav.MAVLink_param_request_read_message(self.ts, self.target_component, self.name.encode(), -1)]

    def receive(self, msg: Any, now: float) -> list[Any]:
        if self.done or msg.get_type() != "PARAM_VALUE" or _name(msg) != self.name:
            return []
        return self._finish((decode_value(msg.param_value, msg.param_type, self.bytewise), msg.param_type))


class ParamSet(_ParamTx):
    """``result`` is the value the vehicle reports after the set."""

    def __init__(
        self,
        ts: int,
        tc: int,
        name: str,
        value: float | int,
        ptype: int,
        *,
        bytewise: bool = True,
        timeout_s: float = TIMEOUT_S,
        max_retries: int = MAX_RETRIES,
    ) -> None:
        super().__init__(ts, tc, bytewise=bytewise, timeout_s=timeout_s, max_retries=max_retries)
        self.name = name
        self.value = value
        self.ptype = ptype

    def _request(self) -> list[Any]:
        wire = encode_value(self.value, self.ptype, self.bytewise)
        return [mav.MAVLink_param_set_message(self.ts, self.target_component, self.name.encode(), wire, self.ptype)]

    def receive(self, msg: Any, now: float) -> list[Any]:
        if self.done or msg.get_type() != "PARAM_VALUE" or _name(msg) != self.name:
            return []
        value = decode_value(msg.param_value, msg.param_type, self.bytewise)
        if isinstance(self.value, float) and isinstance(value, float):
            same = struct.pack("<f", value) == struct.pack("<f", self.value)
        else:
            same = value == self.value
        if not same:
            return self._fail(ParamError(f"vehicle kept {self.name}={value} instead of {self.value}"))
        return self._finish(value)


class ParamFetchAll(_ParamTx):
    """``result`` is {name: value}."""

    def __init__(
        self, ts: int, tc: int, *, bytewise: bool = True, timeout_s: float = 1.0, max_retries: int = MAX_RETRIES
    ) -> None:
        super().__init__(ts, tc, bytewise=bytewise, timeout_s=timeout_s, max_retries=max_retries)
        self.count: int | None = None
        self.values: dict[int, tuple[str, float | int]] = {}

    def _request(self) -> list[Any]:
        if self.count is None:
            return [mav.MAVLink_param_request_list_message(self.ts, self.target_component)]
        missing = [i for i in range(self.count) if i not in self.values][:10]
        return [mav.MAVLink_param_request_read_message(self.ts, self.target_component, b"", i) for i in missing]

    def receive(self, msg: Any, now: float) -> list[Any]:
        if self.done or msg.get_type() != "PARAM_VALUE":
            return []
        if self.count is None:
            self.count = msg.param_count
        if 0 <= msg.param_index < msg.param_count:
            self.values[msg.param_index] = (_name(msg), decode_value(msg.param_value, msg.param_type, self.bytewise))
        self.retries = 0
        # Values stream in; wait a little past the last one before asking for gaps.
        self.deadline = now + min(self.timeout_s, 0.3)
        if self.count is not None and len(self.values) >= self.count:
            return self._finish({name: value for name, value in self.values.values()})
        return []
