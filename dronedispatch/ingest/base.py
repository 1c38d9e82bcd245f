"""What every incident source shares: the typed rejection, the adapter signature, the counters.

An adapter is a pure function ``(payload, now) -> Report | list[Report] | None``:
- a Report (or several) when the input describes something worth an incident,
- ``None`` (or an empty list) when the input is valid but says nothing new (a Frigate
  "update" that changes nothing, a CAP test message),
- :class:`IngestError` when the input is malformed; the error lists every problem as a field
  path and a reason, so the sender can be told exactly what to fix.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from pydantic import ValidationError

from dronedispatch.domain.incidents import Report

MAX_PAYLOAD_BYTES = 256 * 1024  # far above any real report; bounds memory per message
MAX_JSON_DEPTH = 32
MAX_SOURCE_REF = 128  # the store's column width for a report's source_ref

AdapterResult = Report | Sequence[Report] | None
Adapter = Callable[[bytes, datetime], AdapterResult]


@dataclass(frozen=True)
class Problem:
    """One reason an input was rejected.

    ``path`` is dotted (``location.lat``, ``info[0].area``); ``$`` means the input as a whole.
    """

    path: str
    reason: str

    def __str__(self) -> str:
        return f"{self.path}: {self.reason}"


class IngestError(ValueError):
    """Input rejected; ``problems`` says where and why (maps to HTTP 422 or an MQTT error count)."""

    def __init__(self, source: str, problems: Sequence[Problem] | Problem) -> None:
        self.source = source
        self.problems: tuple[Problem, ...] = (problems,) if isinstance(problems, Problem) else tuple(problems)
        super().__init__(f"{source}: " + "; ".join(str(p) for p in self.problems))

    @classmethod
    def at(cls, source: str, path: str, reason: str) -> IngestError:
        return cls(source, Problem(path, reason))

    def as_detail(self) -> list[dict[str, str]]:
        """JSON-ready list for an HTTP error body: ``[{"loc": "location.lat", "msg": "..."}]``."""
        return [{"loc": p.path, "msg": p.reason} for p in self.problems]


def path_of(loc: Sequence[str | int]) -> str:
    """Pydantic's ``("location", "lat")`` / ``("items", 0)`` → ``location.lat`` / ``items[0]``."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out or "$"


def from_validation_error(source: str, exc: ValidationError, prefix: str = "") -> IngestError:
    problems = []
    for err in exc.errors(include_url=False):
        loc = [p for p in err["loc"] if not (isinstance(p, str) and p.startswith("function-"))]
        path = path_of(loc)
        if prefix:
            path = prefix if path == "$" else f"{prefix}.{path}"
        msg = err["msg"].removeprefix("Value error, ").removeprefix("Assertion failed, ")
        problems.append(Problem(path, msg))
    return IngestError(source, problems)


def check_size(source: str, payload: bytes | str, limit: int = MAX_PAYLOAD_BYTES) -> None:
    if len(payload) > limit:
        raise IngestError.at(source, "$", f"payload is {len(payload)} bytes; the limit is {limit}")


def _inspect(source: str, value: Any, limit: int) -> None:
    """Reject nesting deeper than ``limit`` and NUL characters, naming the path.

    Iterative, so a hostile payload cannot overflow the stack. NUL is refused because
    PostgreSQL text cannot hold it: such a report would fail later, at the store, far from its sender.
    """
    stack: list[tuple[Any, int, tuple[str | int, ...]]] = [(value, 1, ())]
    while stack:
        node, depth, loc = stack.pop()
        if depth > limit:
            raise IngestError.at(source, "$", f"JSON nested deeper than {limit} levels")
        if isinstance(node, dict):
            for key, child in node.items():
                if "\x00" in key:
                    raise IngestError.at(source, path_of(loc), "a key contains a NUL character (\\u0000)")
                stack.append((child, depth + 1, (*loc, key)))
        elif isinstance(node, list):
            stack.extend((child, depth + 1, (*loc, i)) for i, child in enumerate(node))
        elif isinstance(node, str) and "\x00" in node:
            raise IngestError.at(source, path_of(loc), "text contains a NUL character (\\u0000)")


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def decode_json_object(source: str, payload: bytes | str | dict) -> dict[str, Any]:
    """Bytes → a JSON object; a clear error for oversize, non-UTF-8, bad JSON, NaN, non-objects, deep nesting, NUL."""
    if isinstance(payload, dict):
        data: Any = payload
    else:
        check_size(source, payload)
        if isinstance(payload, bytes):
            try:
                text = payload.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise IngestError.at(source, "$", f"payload is not UTF-8 (byte {exc.start})") from None
        else:
            text = payload
        if not text.strip():
            raise IngestError.at(source, "$", "payload is empty")
        try:
            data = json.loads(text, parse_constant=_reject_constant)
        except RecursionError:
            raise IngestError.at(source, "$", f"JSON nested deeper than {MAX_JSON_DEPTH} levels") from None
        except ValueError as exc:
            where = f" at line {exc.lineno} column {exc.colno}" if isinstance(exc, json.JSONDecodeError) else ""
            msg = exc.msg if isinstance(exc, json.JSONDecodeError) else str(exc)
            raise IngestError.at(source, "$", f"invalid JSON{where}: {msg}") from None
    if not isinstance(data, dict):
        raise IngestError.at(source, "$", f"expected a JSON object, got {type(data).__name__}")
    _inspect(source, data, MAX_JSON_DEPTH)
    return data


def epoch_to_datetime(source: str, path: str, value: Any) -> datetime:
    """Unix seconds (Frigate's timestamps) → aware UTC datetime, rejecting bools, NaN and absurd values."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise IngestError.at(source, path, f"expected Unix time in seconds, got {value!r}")
    try:
        return datetime.fromtimestamp(value, tz=UTC)
    except (OverflowError, OSError, ValueError):
        raise IngestError.at(source, path, f"Unix time {value!r} is out of range") from None


def bounded_ref(ref: str, limit: int = MAX_SOURCE_REF) -> str:
    """``ref`` itself when it fits, else a prefix plus a hash of the whole (still unique, still readable)."""
    if len(ref) <= limit:
        return ref
    digest = hashlib.sha256(ref.encode()).hexdigest()[:16]
    return f"{ref[: limit - 17]}~{digest}"


def as_reports(result: AdapterResult) -> list[Report]:
    if result is None:
        return []
    if isinstance(result, Report):
        return [result]
    return list(result)


class Outcome(StrEnum):
    RECEIVED = "received"  # every message or request that reached an adapter
    ACCEPTED = "accepted"  # produced at least one report
    IGNORED = "ignored"  # valid, but nothing to report (e.g. a Frigate update that adds nothing)
    REJECTED = "rejected"  # malformed: IngestError
    FAILED = "failed"  # our side failed (adapter bug, report handler raised)


@dataclass(eq=False)  # identity-hashed: prometheus registries keep collectors in a dict
class IngestStats:
    """Per-source counters shared by every adapter shell (MQTT topics, the webhook route).

    ``source`` is a bounded label (an MQTT topic filter or ``webhook``), never a raw topic, so the
    metric cardinality stays fixed. ``collect()`` makes this a prometheus_client collector:
    ``registry.register(stats)``.
    """

    counts: dict[Outcome, Counter[str]] = field(default_factory=lambda: {o: Counter() for o in Outcome})
    reports: Counter[str] = field(default_factory=Counter)
    last_error: dict[str, str] = field(default_factory=dict)
    reconnects: int = 0
    connected: bool = False

    def count(self, source: str, outcome: Outcome, n: int = 1) -> None:
        self.counts[outcome][source] += n

    def error(self, source: str, outcome: Outcome, reason: str) -> None:
        self.count(source, outcome)
        self.last_error[source] = reason

    def apply(
        self, source: str, adapter: Callable[[Any, datetime], AdapterResult], payload: Any, now: datetime
    ) -> list[Report]:
        """Run one input through ``adapter`` and count the outcome under ``source``.

        IngestError (rejected) and any other exception (failed) are counted, then propagate, so
        the shell can answer the sender: ``stats.apply("webhook", parse_webhook, body, now)``.
        """
        self.count(source, Outcome.RECEIVED)
        try:
            reports = as_reports(adapter(payload, now))
        except IngestError as exc:
            self.error(source, Outcome.REJECTED, str(exc))
            raise
        except Exception as exc:
            self.error(source, Outcome.FAILED, f"internal error in adapter: {exc!r}")
            raise
        self.count(source, Outcome.ACCEPTED if reports else Outcome.IGNORED)
        self.reports[source] += len(reports)
        return reports

    @property
    def received(self) -> Counter[str]:
        return self.counts[Outcome.RECEIVED]

    @property
    def accepted(self) -> Counter[str]:
        return self.counts[Outcome.ACCEPTED]

    @property
    def rejected(self) -> Counter[str]:
        return self.counts[Outcome.REJECTED]

    @property
    def ignored(self) -> Counter[str]:
        return self.counts[Outcome.IGNORED]

    @property
    def failed(self) -> Counter[str]:
        return self.counts[Outcome.FAILED]

    def snapshot(self) -> dict[str, Any]:
        """Plain dict for JSON (health pages, tests)."""
        return {
            **{o.value: dict(c) for o, c in self.counts.items()},
            "reports": dict(self.reports),
            "last_error": dict(self.last_error),
            "reconnects": self.reconnects,
            "connected": self.connected,
        }

    def collect(self) -> Iterator[Any]:
        messages = CounterMetricFamily(
            "dronedispatch_ingest_messages", "Incident source inputs by outcome", labels=["source", "outcome"]
        )
        for outcome, counter in self.counts.items():
            for source, n in sorted(counter.items()):
                messages.add_metric([source, outcome.value], n)
        yield messages
        reports = CounterMetricFamily("dronedispatch_ingest_reports", "Reports produced", labels=["source"])
        for source, n in sorted(self.reports.items()):
            reports.add_metric([source], n)
        yield reports
        yield CounterMetricFamily("dronedispatch_ingest_mqtt_reconnects", "MQTT reconnections", value=self.reconnects)
        yield GaugeMetricFamily("dronedispatch_ingest_mqtt_connected", "1 when subscribed", value=int(self.connected))
