"""VictorOps / Splunk On-Call REST endpoint: ``entity_id`` = the incident's identity
(:mod:`connectors.incidents`); every trigger goes as CRITICAL, RECOVERY resolves.

VictorOps opens an incident for CRITICAL only (WARNING does unless the account is set
up to), so what opens an incident at PagerDuty or Opsgenie — a trigger of
:func:`~continuum_events.connectors.incidents.incidents_of` — is CRITICAL here too; the
event's own severity and details travel as fields of the alert.

Both secrets live in the URL path, so the URL is never logged nor put in an error.
The answer's ``result`` says success or failure (a failure refuses the event).
"""

from __future__ import annotations

from dataclasses import dataclass

import orjson
from pydantic import SecretStr

from continuum_events.connectors.base import ConfigError, Retry, describe_event
from continuum_events.connectors.http import HttpClient, raise_for_common, redact
from continuum_events.connectors.incidents import Incident, LifecycleSink, Pending, Rejected, bounded, incidents_of
from continuum_events.events import Event


@dataclass(frozen=True)
class VictorOpsConfig:
    api_key: SecretStr
    routing_key: SecretStr
    url: str = "https://alert.victorops.com"
    #: A dead-man's-switch check URL (healthchecks.io, Dead Man's Snitch, …) wired to this
    #: service, POSTed every ``heartbeat_s`` while the integration is healthy: the vendor's
    #: own API cannot alert on silence. A secret: such URLs carry their check's token.
    heartbeat_url: SecretStr | None = None
    heartbeat_s: float = 60.0


class VictorOpsSink(LifecycleSink):
    def __init__(self, config: VictorOpsConfig, client: HttpClient | None = None) -> None:
        super().__init__(config, client)
        self.client.conceal(config.api_key, config.routing_key)  # both travel in the URL path

    @property
    def endpoint(self) -> str:
        c = self.config
        return (
            f"{c.url}/integrations/generic/20131114/alert/"
            f"{c.api_key.get_secret_value()}/{c.routing_key.get_secret_value()}"
        )

    def body(self, incident: Incident) -> dict[str, object]:
        event = incident.event
        kind = "RECOVERY" if incident.action == "resolve" else "CRITICAL"
        described = describe_event(event)
        details = described.pop("details", {})
        body = {
            **described,
            **{f"details.{k}": v for k, v in details.items()},
            "message_type": kind,
            "entity_id": incident.key,
            "entity_display_name": bounded(incident.summary, 500),
            "state_message": incident.summary,
            "timestamp": event.timestamp_us // 1_000_000,
            "state_start_time": event.timestamp_us // 1_000_000,
            "monitoring_tool": "continuum-events",
        }
        return body

    def post(self, body: dict[str, object]) -> dict[str, object]:
        response = self.client.post(
            self.endpoint, orjson.dumps(body), {"Content-Type": "application/json"}, what="VictorOps alert"
        )
        self.sent()
        raise_for_common(response, what="VictorOps alert", retry={408, 429}, config={401, 403, 404}, too_large=False)
        try:
            answer = response.json()
        except ValueError:
            raise Retry(f"VictorOps alert: HTTP {response.status_code} without a JSON answer") from None
        if response.status_code == 200 and answer.get("result") == "success":
            return dict(answer)
        if response.status_code in (200, 400):
            raise Rejected(f"VictorOps refused the alert: {redact(str(answer.get('message')))[:200]}")
        raise Retry(f"VictorOps alert: unexpected HTTP {response.status_code}")

    def deliver(self, event: Event, pending: Pending) -> None:
        for incident in incidents_of(event):
            entry = pending.entry_after(incident)
            if entry is not None:
                self.post(self.body(incident))
                pending.keep(incident.key, entry)

    def check(self) -> str:
        """An INFO message only adds to the timeline: it tests both keys without paging anyone."""
        try:
            self.post(
                {
                    "message_type": "INFO",
                    "entity_id": "continuum-events/connection-test",
                    "state_message": "continuum-events connection test",
                    "monitoring_tool": "continuum-events",
                }
            )
        except Rejected as exc:
            raise ConfigError(str(exc)) from None
        return "VictorOps accepts the API and routing keys (an INFO entry was added to the timeline)"
