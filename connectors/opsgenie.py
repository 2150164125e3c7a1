"""Opsgenie Alert API: a problem creates an alert whose ``alias`` is the incident's
identity (:mod:`connectors.incidents`); the clearing event closes it by alias.

Opsgenie deduplicates creates while an alert with the alias is open; the ledger keeps
replays and duplicates from creating it again once closed. Severity maps to P1–P5.
Requests answer 202 and are processed asynchronously. 401/403 are configuration,
400/422 refuse the event (dead letter), 429 and 5xx are retried.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import quote

import orjson
from pydantic import SecretStr

from continuum_events.connectors.base import ConfigError, Retry, describe_event
from continuum_events.connectors.http import raise_for_common
from continuum_events.connectors.incidents import (
    Incident,
    LifecycleSink,
    Pending,
    Rejected,
    bounded,
    group_of,
    incidents_of,
    stable_key,
)
from continuum_events.events import Event

PRIORITY = {"critical": "P1", "error": "P2", "warning": "P3", "info": "P5"}
MAX_MESSAGE, MAX_ALIAS, MAX_DESCRIPTION = 130, 512, 15_000
#: Opsgenie's documented limits: each tag 50 characters; details 8,000 characters in all (keys and values).
MAX_TAG, MAX_DETAILS = 50, 8_000


def fitted(details: dict[str, str], limit: int = MAX_DETAILS) -> dict[str, str]:
    """``details`` within ``limit`` characters in all: the longest values are cut first, to one
    common length; when the keys alone do not fit, the last entries go (the event's own
    ``details.*`` come last, the envelope with ``event_id`` first)."""

    def size(cap: int) -> int:
        return sum(len(k) + min(len(v), cap) for k, v in details.items())

    if size(max(map(len, details.values()), default=0)) <= limit:
        return details
    low, high = 1, max(map(len, details.values()))
    while low < high:  # the largest common cap that fits
        mid = (low + high + 1) // 2
        low, high = (mid, high) if size(mid) <= limit else (low, mid - 1)
    out = {k: bounded(v, low) for k, v in details.items()}
    while out and sum(len(k) + len(v) for k, v in out.items()) > limit:
        out.popitem()
    return out


@dataclass(frozen=True)
class OpsgenieConfig:
    api_key: SecretStr
    #: EU instances: https://api.eu.opsgenie.com
    url: str = "https://api.opsgenie.com"
    source: str = "continuum-events"
    #: The name of an Opsgenie heartbeat (Heartbeat API) pinged every ``heartbeat_s`` while
    #: the integration is healthy: Opsgenie alerts when the pings stop.
    heartbeat: str | None = None
    heartbeat_s: float = 60.0


class OpsgenieSink(LifecycleSink):
    @property
    def heartbeat_s(self) -> float | None:
        return self.config.heartbeat_s if self.config.heartbeat else None

    def heartbeat(self) -> None:
        """``POST /v2/heartbeats/{name}/ping``: 202 "PONG - Heartbeat received". Opsgenie
        processes pings asynchronously and does not say whether the heartbeat exists."""
        response = self.client.post(
            f"{self.config.url}/v2/heartbeats/{quote(self.config.heartbeat, safe='')}/ping",
            b"",
            self.headers,
            what="Opsgenie heartbeat",
        )
        raise_for_common(response, what="Opsgenie heartbeat", retry={429}, config={401, 403, 404, 422}, too_large=False)
        if response.status_code != 202:
            raise ConfigError(f"Opsgenie heartbeat: HTTP {response.status_code}")

    @property
    def headers(self) -> dict[str, str]:
        return {
            "Authorization": f"GenieKey {self.config.api_key.get_secret_value()}",
            "Content-Type": "application/json",
        }

    def request(self, incident: Incident) -> tuple[str, dict[str, object]]:
        alias = stable_key(incident.key, MAX_ALIAS)
        if incident.action == "resolve":
            return (
                f"{self.config.url}/v2/alerts/{quote(alias, safe='')}/close?identifierType=alias",
                {"source": self.config.source, "note": bounded(incident.summary, 1000)},
            )
        event = incident.event
        details = {
            k: ", ".join(map(str, v)) if isinstance(v, list) else str(v)
            for k, v in describe_event(event).items()
            if k != "details"
        }
        details.update({f"details.{k}": v for k, v in event.details.items()})
        tags = [bounded(t, MAX_TAG) for t in (event.event_type.value, event.severity.value, group_of(event)) if t]
        return f"{self.config.url}/v2/alerts", {
            "message": bounded(incident.summary, MAX_MESSAGE),
            "alias": alias,
            "description": bounded(incident.summary, MAX_DESCRIPTION),
            "details": fitted(details),
            "entity": incident.subject,
            "source": self.config.source,
            "tags": tags,
            "priority": PRIORITY[event.severity.value],
        }

    def deliver(self, event: Event, pending: Pending) -> None:
        for incident in incidents_of(event):
            entry = pending.entry_after(incident)
            if entry is None:
                continue
            url, body = self.request(incident)
            response = self.client.post(url, orjson.dumps(body), self.headers, what="Opsgenie alert")
            self.sent()
            raise_for_common(response, what="Opsgenie alert", retry={408, 429}, config={401, 403, 404}, too_large=False)
            if response.status_code in (400, 413, 422):
                raise Rejected(f"Opsgenie refused the alert: {response.text[:200]}")
            if response.status_code != 202:
                raise Retry(f"Opsgenie alert: unexpected HTTP {response.status_code}")
            pending.keep(incident.key, entry)

    def check(self) -> str:
        """Looks up a request id that does not exist: a good key gets 404, a bad one 401/403."""
        response = self.client.request(
            "GET",
            f"{self.config.url}/v2/alerts/requests/00000000-0000-0000-0000-000000000000",
            headers=self.headers,
            what="Opsgenie",
        )  # unreachable -> Retry
        if response.status_code in (401, 403):
            raise ConfigError(f"Opsgenie refuses the API key (HTTP {response.status_code})")
        if response.status_code in (200, 404):
            return f"Opsgenie ({self.config.url}) accepts the API key"
        raise Retry(f"Opsgenie answered HTTP {response.status_code}")
