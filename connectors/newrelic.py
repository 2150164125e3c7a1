"""New Relic Event API: each event becomes one flat custom event (``eventType``
ContinuumEvent by default) in a gzip'd JSON array of at most 1 MB.

Flat means string or number values only: lists are joined, ``details`` become
``details.<key>``, booleans become strings; at most 255 attributes, values cut at 4,096
bytes of UTF-8 (New Relic counts bytes), never inside a character. New Relic takes timestamps within the last 24 hours only: an older event
(a replay) is sent without ``timestamp`` (so New Relic stamps it on arrival) and keeps
its own time in ``eventTimestamp``. 200 accepted; 413 splits; 400 splits until the bad
event is found (dead letter); 403 and 415 are configuration; 408, 429, 5xx retried.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import orjson
from pydantic import SecretStr

from continuum_events.connectors.base import BatchResult, ConfigError, Limits, Retry, Split, TooLarge, describe_event
from continuum_events.connectors.http import HttpClient, raise_for_common
from continuum_events.events import Event

HOSTS = {"us": "https://insights-collector.newrelic.com", "eu": "https://insights-collector.eu01.nr-data.net"}
LIMITS = Limits(max_records=1000, max_bytes=400_000, linger_s=0.5, timeout_s=10.0)
MAX_POST_BYTES, MAX_ATTRIBUTES = 1_000_000, 255
MAX_VALUE = 4096  # bytes of UTF-8
TIMESTAMP_WINDOW_S = 24 * 3600 - 300  # a margin against clock skew


@dataclass(frozen=True)
class NewRelicConfig:
    account_id: str
    license_key: SecretStr
    region: Literal["us", "eu"] = "us"
    event_type: str = "ContinuumEvent"
    #: Overrides the region's collector (tests, proxies).
    url: str | None = None

    def __post_init__(self) -> None:
        if not re.fullmatch(r"[A-Za-z0-9_:]{1,255}", self.event_type):
            raise ValueError("event_type: letters, digits, '_' and ':' only")
        if not self.account_id.isdigit():
            raise ValueError("account_id: the numeric New Relic account id")

    @property
    def endpoint(self) -> str:
        return f"{self.url or HOSTS[self.region]}/v1/accounts/{self.account_id}/events"


def _flat(value: object) -> str | int | float:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)  # JSON has no NaN or infinity: the encoder would send null, which is no value to New Relic
    if isinstance(value, (int, float)):
        return value
    if isinstance(value, (list, tuple)):
        value = ", ".join(map(str, value))
    return within_bytes(str(value), MAX_VALUE)


def within_bytes(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` bytes of UTF-8, at a character boundary."""
    data = text.encode("utf-8", "surrogatepass")
    if len(data) <= limit:
        return text
    return data[:limit].decode("utf-8", "ignore")  # "ignore" drops only the cut character's leading bytes


def flatten(event: Event, event_type: str, now: float | None = None) -> dict[str, str | int | float]:
    out: dict[str, str | int | float] = {"eventType": event_type}
    seconds = event.timestamp_us / 1e6
    if (now or time.time()) - seconds < TIMESTAMP_WINDOW_S:
        out["timestamp"] = event.timestamp_us // 1000
    else:
        out["eventTimestamp"] = event.timestamp_us // 1000
    body = describe_event(event)
    details = body.pop("details", {})
    body.pop("timestamp")
    out.update({k: _flat(v) for k, v in body.items()})
    for key, value in sorted(details.items()):  # details last: the first cut when over the limit
        if len(out) >= MAX_ATTRIBUTES:
            break
        out[f"details.{key}"[:255]] = _flat(value)
    return out


class NewRelicSink:
    limits = LIMITS

    def __init__(self, config: NewRelicConfig, client: HttpClient | None = None) -> None:
        self.config = config
        self.client = client or HttpClient(LIMITS.timeout_s)

    def post(self, events: list[dict[str, str | int | float]]) -> None:
        body = orjson.dumps(events)
        if len(body) > MAX_POST_BYTES:
            raise TooLarge(f"{len(body)} bytes of JSON, New Relic takes 1 MB per request")
        response = self.client.post(
            self.config.endpoint,
            body,
            {"Api-Key": self.config.license_key.get_secret_value(), "Content-Type": "application/json"},
            gzip_body=True,
            what="New Relic events",
        )
        raise_for_common(response, what="New Relic events", retry={408, 429}, config={401, 403, 404, 415})
        if response.status_code == 400:
            raise Split(f"New Relic events: HTTP 400 {response.text[:200]}")
        if response.status_code not in (200, 202):
            raise Retry(f"New Relic events: unexpected HTTP {response.status_code}")

    def write(self, events: Sequence[Event]) -> BatchResult:
        self.post([flatten(e, self.config.event_type) for e in events])
        return BatchResult()

    def check(self) -> str:
        """An empty array: authenticated and parsed, nothing recorded."""
        try:
            self.post([])
        except ConfigError:
            raise ConfigError("New Relic refuses the license key (HTTP 403) or the account id") from None
        return f"New Relic ({self.config.region}, account {self.config.account_id}) accepts the license key"

    def close(self) -> None:
        self.client.close()
