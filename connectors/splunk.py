"""Splunk HTTP Event Collector: batched event objects, indexed fields, optional
indexer acknowledgement before the runtime commits."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

import orjson
from pydantic import SecretStr

from continuum_events.connectors.base import BatchResult, ConfigError, Limits, Retry, Split, describe_event
from continuum_events.connectors.http import HttpClient, raise_for_common
from continuum_events.events import Event

#: 1 MB is the smallest max_content_length in the field (Cloud, older Enterprise).
LIMITS = Limits(max_records=1000, max_bytes=900_000, linger_s=0.2, timeout_s=10.0)
BAD_RECORD_CODES = {5, 6, 12, 13}  # no data, invalid format, event field missing / blank
BAD_CONFIG_CODES = {1, 2, 3, 4, 7, 10, 11}  # token disabled/missing/invalid, bad index, channel problems


@dataclass(frozen=True)
class SplunkConfig:
    url: str  # e.g. https://splunk.example.com:8088
    token: SecretStr
    index: str | None = None
    sourcetype: str = "continuum:event"
    source: str = "continuum-events"
    use_ack: bool = False
    ack_timeout_s: float = 30.0


class SplunkHecSink:
    limits = LIMITS

    def __init__(self, config: SplunkConfig, client: HttpClient | None = None) -> None:
        self.config = config
        self.client = client or HttpClient(LIMITS.timeout_s)
        self.channel = str(uuid.uuid4())

    def _headers(self) -> dict[str, str]:
        headers = {
            "Authorization": f"Splunk {self.config.token.get_secret_value()}",
            "Content-Type": "application/json",
        }
        if self.config.use_ack:
            headers["X-Splunk-Request-Channel"] = self.channel
        return headers

    def encode(self, events: Sequence[Event]) -> bytes:
        return b"".join(orjson.dumps(self._object(e)) for e in events)

    def _object(self, event: Event) -> dict[str, object]:
        p = event.payload
        fields = {"event_type": event.event_type.value, "severity": event.severity.value}
        for name in ("printer_id", "printer_location", "printer_department"):
            if p.get(name):
                fields[name] = str(p[name])
        obj: dict[str, object] = {
            "time": round(event.timestamp_us / 1_000_000, 6),
            "host": p.get("printer_name") or event.source,
            "source": self.config.source,
            "sourcetype": self.config.sourcetype,
            "event": describe_event(event),
            "fields": fields,
        }
        if self.config.index:
            obj["index"] = self.config.index
        return obj

    def write(self, events: Sequence[Event]) -> BatchResult:
        url = f"{self.config.url.rstrip('/')}/services/collector/event"
        response = self.client.post(url, self.encode(events), self._headers(), what="Splunk HEC")
        raise_for_common(response, what="Splunk HEC", retry={408, 429}, config={401, 403})
        answer = _json(response)
        code = answer.get("code")
        if response.status_code == 400:
            if code in BAD_CONFIG_CODES:
                raise ConfigError(f"Splunk HEC: {answer.get('text')} (code {code})")
            if code in BAD_RECORD_CODES:
                bad = answer.get("invalid-event-number")
                if isinstance(bad, int) and 0 <= bad < len(events):
                    # HEC indexed the events before the bad one and none after it.
                    return BatchResult(
                        rejected={bad: f"Splunk HEC: {answer.get('text')} (code {code})"},
                        unsent=range(bad + 1, len(events)),
                    )
                raise Split(f"Splunk HEC: {answer.get('text')} (code {code})")
        if response.status_code != 200 or code not in (0, None):
            raise Retry(f"Splunk HEC: unexpected HTTP {response.status_code} code {code}")
        if self.config.use_ack:
            self._await_ack(answer.get("ackId"))
        return BatchResult()

    def _await_ack(self, ack_id: object) -> None:
        """Indexer acknowledgement: the batch counts as delivered once Splunk indexed it."""
        if not isinstance(ack_id, int):
            raise ConfigError("Splunk HEC: indexer acknowledgement is off on this token (no ackId); disable use_ack")
        url = f"{self.config.url.rstrip('/')}/services/collector/ack"
        deadline, pause = time.monotonic() + self.config.ack_timeout_s, 0.1
        while time.monotonic() < deadline:
            response = self.client.post(url, json.dumps({"acks": [ack_id]}).encode(), self._headers(), what="HEC ack")
            raise_for_common(response, what="Splunk HEC ack", retry={429}, config={401, 403})
            if _json(response).get("acks", {}).get(str(ack_id)):
                return
            time.sleep(pause)
            pause = min(pause * 2, 2.0)
        raise Retry(f"Splunk HEC: batch not acknowledged by the indexers within {self.config.ack_timeout_s:.0f} s")

    def check(self) -> str:
        """An empty post: a valid token gets 400 'No data' (code 5); a bad one 401/403."""
        url = f"{self.config.url.rstrip('/')}/services/collector/event"
        response = self.client.post(url, b"", self._headers(), what="Splunk HEC")
        answer = _json(response)
        if response.status_code in (401, 403) or answer.get("code") in BAD_CONFIG_CODES:
            raise ConfigError(f"Splunk HEC refused the token: {answer.get('text') or response.status_code}")
        if response.status_code == 400 and answer.get("code") == 5:
            return f"Splunk HEC at {self.config.url} accepts the token"
        raise Retry(f"Splunk HEC answered HTTP {response.status_code}: {answer.get('text')}")

    def close(self) -> None:
        self.client.close()


def _json(response) -> dict:  # type: ignore[no-untyped-def]
    try:
        value = response.json()
        return value if isinstance(value, dict) else {}
    except ValueError:
        return {}
