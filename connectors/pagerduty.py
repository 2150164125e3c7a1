"""PagerDuty Events API v2: one request per incident transition, ``dedup_key`` = the
incident's identity (:mod:`connectors.incidents`), never the event id.

A problem event triggers, the clearing event resolves the same ``dedup_key``; the
ledger keeps replays and duplicates from reopening anything. PagerDuty takes about
120 events a minute per routing key: beyond that the batch waits its turn (the runtime
pauses the partitions meanwhile), nothing is dropped. 202 accepted; 400 with a routing
key complaint is configuration, any other 400 refuses the event (dead letter); 429 and
5xx are retried.
"""

from __future__ import annotations

from dataclasses import dataclass

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

#: PagerDuty's documented ceiling per routing key, kept a little under.
RATE = (110, 60.0)
MAX_SUMMARY, MAX_DEDUP_KEY = 1024, 255
#: PagerDuty refuses an event over 512 KB; a page with shortened details beats one refused.
MAX_EVENT_BYTES, MAX_DETAIL = 512_000, 1024


def shortened(details: dict[str, object]) -> dict[str, object]:
    """Custom details with every text (lists and maps as JSON) cut to MAX_DETAIL characters."""
    return {
        k: v
        if isinstance(v, int | float)
        else bounded(v if isinstance(v, str) else orjson.dumps(v).decode(), MAX_DETAIL)
        for k, v in details.items()
    }


@dataclass(frozen=True)
class PagerDutyConfig:
    routing_key: SecretStr
    #: EU accounts: https://events.eu.pagerduty.com
    url: str = "https://events.pagerduty.com"
    #: A dead-man's-switch check URL (healthchecks.io, Dead Man's Snitch, …) wired to this
    #: service, POSTed every ``heartbeat_s`` while the integration is healthy: the vendor's
    #: own API cannot alert on silence. A secret: such URLs carry their check's token.
    heartbeat_url: SecretStr | None = None
    heartbeat_s: float = 60.0


class PagerDutySink(LifecycleSink):
    rate = RATE

    def body(self, incident: Incident) -> dict[str, object]:
        body: dict[str, object] = {
            "routing_key": self.config.routing_key.get_secret_value(),
            "event_action": incident.action,
            "dedup_key": stable_key(incident.key, MAX_DEDUP_KEY),
        }
        if incident.action == "trigger":
            event = incident.event
            # source is required: an event naming nothing at all (no printer, empty source) still pages.
            payload = {
                "summary": bounded(incident.summary, MAX_SUMMARY),
                "source": bounded(incident.subject or "continuum", MAX_SUMMARY),
                "severity": event.severity.value,
                "timestamp": event.timestamp.isoformat().replace("+00:00", "Z"),
                "component": incident.key.split("/")[0],
                "class": event.event_type.value,
                "custom_details": describe_event(event),
            }
            if group_of(event):
                payload["group"] = bounded(group_of(event), MAX_SUMMARY)
            body["payload"] = payload
            if len(orjson.dumps(body)) > MAX_EVENT_BYTES:
                payload["custom_details"] = shortened(payload["custom_details"])
        return body

    def deliver(self, event: Event, pending: Pending) -> None:
        for incident in incidents_of(event):
            entry = pending.entry_after(incident)
            if entry is None:
                continue
            response = self.client.post(
                f"{self.config.url}/v2/enqueue",
                orjson.dumps(self.body(incident)),
                {"Content-Type": "application/json"},
                what="PagerDuty event",
            )
            self.sent()
            raise_for_common(
                response, what="PagerDuty event", retry={408, 429}, config={401, 403, 404}, too_large=False
            )
            if response.status_code == 400:
                if "routing" in response.text.lower():
                    raise ConfigError("PagerDuty refuses the routing key (check the integration's key)")
                raise Rejected(f"PagerDuty refused the event: {response.text[:200]}")
            if response.status_code == 413:
                raise Rejected("PagerDuty refused the event: larger than 512 KB")
            if response.status_code != 202:
                raise Retry(f"PagerDuty event: unexpected HTTP {response.status_code}")
            pending.keep(incident.key, entry)

    def check(self) -> str:
        """The Events API cannot test a key without opening an incident: check its shape
        and that the endpoint answers."""
        if len(self.config.routing_key.get_secret_value()) != 32:
            raise ConfigError("a PagerDuty routing key is 32 characters (Events API v2 integration key)")
        self.client.request("GET", self.config.url, what="PagerDuty")  # unreachable -> Retry
        return f"PagerDuty ({self.config.url}) reachable; routing key well-formed (not verifiable without paging)"
