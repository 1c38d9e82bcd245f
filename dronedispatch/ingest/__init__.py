"""Incident sources: adapters that turn outside input into :class:`~dronedispatch.domain.incidents.Report`.

Each adapter is a pure function ``(payload, now) -> Report | list[Report] | None`` raising
:class:`IngestError` (field path + reason per problem) on bad input:

- :func:`parse_webhook` / :func:`parse_json_report` — the JSON report format (HTTP webhook, generic MQTT topic)
- :func:`parse_review` / :func:`parse_event` / :class:`FrigateAdapter` — Frigate ``frigate/reviews``, ``frigate/events``
- :func:`parse_cap` — CAP 1.2 XML

:class:`MqttIngest` is the I/O shell that feeds MQTT topics through adapters; :class:`IngestStats`
counts outcomes per source for /metrics.
"""

from .base import Adapter, IngestError, IngestStats, Outcome, Problem
from .cap import parse_cap
from .frigate import FrigateAdapter, FrigateRules, parse_event, parse_review
from .mqtt import MqttIngest, default_topics
from .webhook import WebhookPayload, parse_json_report, parse_webhook

__all__ = [
    "Adapter",
    "FrigateAdapter",
    "FrigateRules",
    "IngestError",
    "IngestStats",
    "MqttIngest",
    "Outcome",
    "Problem",
    "WebhookPayload",
    "default_topics",
    "parse_cap",
    "parse_event",
    "parse_json_report",
    "parse_review",
    "parse_webhook",
]
