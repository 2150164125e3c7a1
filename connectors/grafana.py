"""Grafana annotations: one annotation per event, tagged with its type, severity,
printer and location; an outage becomes a region.

The annotation made for a problem (printer offline, error, failed redirect, system
error) is remembered in the incident ledger (:mod:`connectors.incidents`) with its id;
the event that clears it patches that annotation into a region (``time`` to
``timeEnd``) instead of adding a point. Replays do not redraw regions the ledger knows.
Grafana has no batch endpoint and no deduplication: other events are annotated each time
they are delivered (a replay repeats those points).
"""

from __future__ import annotations

from dataclasses import dataclass

import orjson
from pydantic import SecretStr

from continuum_events.connectors.base import ConfigError, Retry
from continuum_events.connectors.http import raise_for_common
from continuum_events.connectors.incidents import LifecycleSink, Pending, Rejected, incidents_of
from continuum_events.events import Event


@dataclass(frozen=True)
class GrafanaConfig:
    url: str
    token: SecretStr
    dashboard_uid: str | None = None
    panel_id: int | None = None


#: The characters of a tag value Grafana's SQL stores keep.
TAG_VALUE_CHARS = 100


def tags_of(event: Event) -> list[str]:
    p = event.payload
    tags = ["continuum", event.event_type.value, f"severity:{event.severity.value}"]
    for label, name in (
        ("printer", "printer_name"),
        ("location", "printer_location"),
        ("department", "printer_department"),
    ):
        if p.get(name):
            # Grafana keeps a tag's key and value in varchar(100) columns (MySQL, Postgres): a
            # longer one fails the whole annotation with a 500, retried for ever.
            tags.append(f"{label}:{str(p[name])[:TAG_VALUE_CHARS]}")
    return tags


def text_of(event: Event) -> str:
    incidents = incidents_of(event)
    summary = incidents[0].summary if incidents else f"{event.event_type.value} ({event.source})"
    return f"{summary} [event {event.event_id}]"


class GrafanaSink(LifecycleSink):
    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.config.token.get_secret_value()}", "Content-Type": "application/json"}

    def call(self, method: str, path: str, body: dict[str, object]) -> dict[str, object]:
        response = self.client.request(
            method, f"{self.config.url}{path}", orjson.dumps(body), self.headers, what="Grafana annotation"
        )
        raise_for_common(response, what="Grafana annotation", retry={408, 429}, config={401, 403}, too_large=False)
        if response.status_code in (400, 413, 422):
            raise Rejected(f"Grafana refused the annotation: {response.text[:200]}")
        if response.status_code == 404 and method == "PATCH":
            return {}  # the region's start was deleted in Grafana: annotate a point instead
        if response.status_code != 200:
            raise Retry(f"Grafana annotation: unexpected HTTP {response.status_code}")
        return dict(response.json())

    def deliver(self, event: Event, pending: Pending) -> None:
        millis, text = event.timestamp_us // 1000, text_of(event)
        incidents = incidents_of(event)
        closed = False
        for incident in (i for i in incidents if i.action == "resolve"):
            entry = pending.entry_after(incident)
            if entry is not None and entry.get("ref"):
                answer = self.call(
                    "PATCH",
                    f"/api/annotations/{entry['ref']}",
                    {
                        "timeEnd": millis,
                        "text": f"{entry.get('text', '')} — {text}",
                        "tags": [*entry.get("tags", tags_of(event)), "resolved"],
                    },
                )
                closed = closed or bool(answer)
                pending.keep(incident.key, entry)
            elif (pending.entry(incident.key) or {}).get("resolved_by") == event.event_id:
                return  # this very event closed the region before (a replay)
        if closed:
            return
        trigger = next((i for i in incidents if i.action == "trigger" and i.resolvable), None)
        entry = pending.entry_after(trigger) if trigger else None
        if trigger and entry is None:
            return  # the region exists already (a replay or a duplicate)
        body: dict[str, object] = {"text": text, "tags": tags_of(event), "time": millis}
        if self.config.dashboard_uid:
            body["dashboardUID"] = self.config.dashboard_uid
        if self.config.panel_id is not None:
            body["panelId"] = self.config.panel_id
        answer = self.call("POST", "/api/annotations", body)
        if trigger and entry is not None:
            pending.keep(trigger.key, {**entry, "ref": answer.get("id"), "text": text, "tags": body["tags"]})

    def check(self) -> str:
        response = self.client.request(
            "GET", f"{self.config.url}/api/annotations?limit=1", headers=self.headers, what="Grafana"
        )  # unreachable -> Retry
        if response.status_code in (401, 403):
            raise ConfigError(f"Grafana refuses the token (HTTP {response.status_code})")
        if response.status_code != 200:
            raise Retry(f"Grafana answered HTTP {response.status_code}")
        return f"Grafana ({self.config.url}) accepts the token"
