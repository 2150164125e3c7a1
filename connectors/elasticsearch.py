"""Elasticsearch ``_bulk``: ``create`` actions with ``_id`` = event_id, so a replay or a
redelivery never makes a second document; each item's outcome is read on its own."""

from __future__ import annotations

import orjson
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone

from pydantic import SecretStr

from continuum_events.connectors.base import BatchResult, ConfigError, Limits, Retry, describe_event
from continuum_events.connectors.http import HttpClient, raise_for_common
from continuum_events.events import Event

LIMITS = Limits(max_records=1000, max_bytes=5_000_000, linger_s=0.2, timeout_s=15.0)


@dataclass(frozen=True)
class ElasticsearchConfig:
    url: str  # e.g. https://es.example.com:9200
    api_key: SecretStr | None = None  # base64(id:key), as Elasticsearch issues it
    username: str | None = None
    password: SecretStr | None = None
    #: strftime pattern applied to the event's time: daily indices by default.
    index_pattern: str = "continuum-events-%Y.%m.%d"


class ElasticsearchSink:
    limits = LIMITS

    def __init__(self, config: ElasticsearchConfig, client: HttpClient | None = None) -> None:
        self.config = config
        self.client = client or HttpClient(LIMITS.timeout_s)
        if config.username and config.password:
            self.client.session.auth = (config.username, config.password.get_secret_value())

    def _headers(self) -> dict[str, str]:
        headers = {"Content-Type": "application/x-ndjson"}
        if self.config.api_key:
            headers["Authorization"] = f"ApiKey {self.config.api_key.get_secret_value()}"
        return headers

    def index_of(self, event: Event) -> str:
        return datetime.fromtimestamp(event.timestamp_us / 1e6, tz=timezone.utc).strftime(self.config.index_pattern)

    def encode(self, events: Sequence[Event]) -> bytes:
        lines = []
        for e in events:
            source = describe_event(e)
            lines.append(orjson.dumps({"create": {"_index": self.index_of(e), "_id": e.event_id}}))
            lines.append(orjson.dumps({"@timestamp": source["timestamp"], **source}))
        return b"\n".join(lines) + b"\n"

    def write(self, events: Sequence[Event]) -> BatchResult:
        response = self.client.post(f"{self.config.url.rstrip('/')}/_bulk", self.encode(events), self._headers(),
                                    what="Elasticsearch bulk")
        raise_for_common(response, what="Elasticsearch bulk", retry={408, 429}, config={401, 403})
        if response.status_code != 200:
            raise Retry(f"Elasticsearch bulk: unexpected HTTP {response.status_code}")
        answer = response.json()
        if not answer.get("errors"):
            return BatchResult()
        rejected, retry = {}, {}
        for i, item in enumerate(answer.get("items", [])):
            result = item.get("create") or item.get("index") or {}
            status, error = result.get("status", 200), result.get("error") or {}
            reason = f"{error.get('type', 'error')}: {error.get('reason', '')}".strip()
            if status < 300 or status == 409:
                continue  # 409 on create with our own _id: already delivered earlier
            if status == 429 or status >= 500:
                retry[i] = f"Elasticsearch item {status} {reason}"
            elif error.get("type") in ("index_not_found_exception", "security_exception"):
                raise ConfigError(f"Elasticsearch: {reason}")
            else:
                rejected[i] = f"Elasticsearch item {status} {reason}"
        return BatchResult(rejected=rejected, retry=retry)

    def check(self) -> str:
        response = self.client.request("GET", self.config.url, headers=self._headers(), what="Elasticsearch")
        if response.status_code in (401, 403):
            raise ConfigError(f"Elasticsearch refused the credentials (HTTP {response.status_code})")
        if response.status_code != 200:
            raise Retry(f"Elasticsearch answered HTTP {response.status_code}")
        version = response.json().get("version", {}).get("number", "?")
        return f"Elasticsearch {version} at {self.config.url} accepts the credentials"

    def close(self) -> None:
        self.client.close()
