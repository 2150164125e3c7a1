"""Datadog Logs (v2): gzip'd JSON arrays of at most 1,000 logs and 5 MB, to the site's
intake, with ``ddsource``, ``service`` and ``ddtags`` carrying the event's facts.

Datadog answers 202 for a log older than 18 hours but never indexes it at its time. Such
an event (a replay, a backlog) goes without ``timestamp``, so Datadog stamps it on
arrival, and keeps its own time in ``event_timestamp`` (and the tag ``late:true``) — as
the New Relic connector does for its 24-hour window."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import orjson
from pydantic import SecretStr

from continuum_events.connectors.base import BatchResult, Limits, Retry, Split, describe_event
from continuum_events.connectors.http import HttpClient, raise_for_common
from continuum_events.events import Event

SITES = (
    "datadoghq.com",
    "us3.datadoghq.com",
    "us5.datadoghq.com",
    "datadoghq.eu",
    "ap1.datadoghq.com",
    "ap2.datadoghq.com",
    "ddog-gov.com",
)
LIMITS = Limits(max_records=1000, max_bytes=4_500_000, linger_s=0.2, timeout_s=10.0)
MAX_LOG_BYTES = 1_000_000
TIMESTAMP_WINDOW_S = 18 * 3600 - 300  # a margin against clock skew


@dataclass(frozen=True)
class DatadogConfig:
    api_key: SecretStr
    site: str = "datadoghq.com"
    service: str = "continuum"
    ddsource: str = "continuum"
    #: Overrides the site's intake (tests, proxies).
    url: str | None = None

    def __post_init__(self) -> None:
        if self.url is None and self.site not in SITES:
            raise ValueError(f"unknown Datadog site {self.site!r}; one of {', '.join(SITES)}")

    @property
    def intake(self) -> str:
        return self.url or f"https://http-intake.logs.{self.site}"


def _tag(value: object) -> str:
    return str(value).lower().replace(",", "_").replace(" ", "_")


class DatadogSink:
    limits = LIMITS

    def __init__(self, config: DatadogConfig, client: HttpClient | None = None) -> None:
        self.config = config
        self.client = client or HttpClient(LIMITS.timeout_s)

    def log_of(self, event: Event, now: float | None = None) -> dict[str, object]:
        p = event.payload
        tags = {"event_type": event.event_type.value, "severity": event.severity.value}
        for name, key in (("printer_location", "location"), ("printer_department", "department")):
            if p.get(name):
                tags[key] = p[name]
        body = describe_event(event)
        if (now or time.time()) - event.timestamp_us / 1e6 >= TIMESTAMP_WINDOW_S:
            body["event_timestamp"] = body.pop("timestamp")
            tags["late"] = "true"
        return {
            "ddsource": self.config.ddsource,
            "service": self.config.service,
            "hostname": p.get("printer_name") or event.source,
            "ddtags": ",".join(f"{k}:{_tag(v)}" for k, v in tags.items()),
            "message": f"{event.event_type.value} {p.get('printer_name') or p.get('printer_id') or ''}".strip(),
            "status": {"critical": "critical", "error": "error", "warning": "warn"}.get(event.severity.value, "info"),
            **{k: v for k, v in body.items() if k not in ("source",)},
        }

    def encode(self, events: Sequence[Event]) -> bytes:
        """The JSON body of ``events`` before gzip (Datadog's 5 MB limit is on this)."""
        return orjson.dumps([self.log_of(e) for e in events])

    def write(self, events: Sequence[Event]) -> BatchResult:
        logs, rejected = [], {}
        for i, e in enumerate(events):
            log = self.log_of(e)
            if len(orjson.dumps(log)) > MAX_LOG_BYTES:
                rejected[i] = "larger than Datadog's 1 MB per log"
            else:
                logs.append(log)
        if logs:
            response = self.client.post(
                f"{self.config.intake}/api/v2/logs",
                orjson.dumps(logs),
                {"DD-API-KEY": self.config.api_key.get_secret_value(), "Content-Type": "application/json"},
                gzip_body=True,
                what="Datadog logs",
            )
            raise_for_common(response, what="Datadog logs", retry={408, 429}, config={401, 403})
            if response.status_code == 400:
                raise Split(f"Datadog logs: HTTP 400 {response.text[:200]}")
            if response.status_code != 202:
                raise Retry(f"Datadog logs: unexpected HTTP {response.status_code}")
        return BatchResult(rejected=rejected)

    def check(self) -> str:
        """Datadog's key validation endpoint: {"valid": true} for a good key, 403 otherwise."""
        api = self.config.url or f"https://api.{self.config.site}"
        response = self.client.request(
            "GET",
            f"{api}/api/v1/validate",
            what="Datadog key validation",
            headers={"DD-API-KEY": self.config.api_key.get_secret_value()},
        )
        raise_for_common(response, what="Datadog key validation", retry={408, 429}, config={401, 403})
        if response.status_code == 200 and response.json().get("valid"):
            return f"Datadog ({self.config.site}) accepts the API key"
        raise Retry(f"Datadog key validation answered HTTP {response.status_code}")

    def close(self) -> None:
        self.client.close()
