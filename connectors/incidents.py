"""One incident lifecycle for every alerting vendor (and Grafana's regions).

A problem event opens an incident whose identity comes from *what failed*, never from
the event id, so a duplicate, a redelivery after a crash or a replay lands on the same
incident; the event that clears the problem resolves it::

    printer.offline  p-7  ->  trigger  printer/p-7/offline
    printer.online   p-7  ->  resolve  printer/p-7/offline (and printer/p-7/error when
                              the printer reports no condition any more)
    printer.error    p-7  ->  trigger  printer/p-7/error
    redirect.failed  r-2  ->  trigger  redirect/r-2/failed;   redirect.removed resolves it
    system.error|critical db -> trigger system/db/error;      system.info for db resolves it
    printer.flapping p-7  ->  trigger / resolve (details.state stable) printer/p-7/flapping
    group.outage location:HQ-3F -> trigger / resolve (details.state resolved) group/location:HQ-3F/outage

Any other event routed to alerting with severity warning or above opens an incident of
its own kind (``printer/p-7/printer.jam``) that a person resolves.

Vendors deduplicate only while an incident is open: after a resolve, the same key opens
a new incident. So each integration keeps an **incident ledger** — the last transition
per key, with the event time — in its own topic (:func:`incident_ledger_topic`), read
back by every instance on start. A trigger is sent unless the ledger already holds that
incident open or resolved it later; a resolve only for an incident the ledger holds
open since before it. Replaying a day of history therefore opens nothing again, and an
old recovery never closes a newer outage. Ledger records are written, acknowledged,
after the vendor accepted the request and before the runtime commits the offsets; a
crash in between re-sends a request the vendor deduplicates.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient

from continuum_events.connectors.base import BatchResult, ConfigError, Limits, Retry, SinkContext
from continuum_events.connectors.http import HttpClient, raise_for_common
from continuum_events.events import SEVERITY_RANK, Event, EventType
from continuum_events.follower import TopicFollower, write_keys
from continuum_events.settings import KafkaSettings
from continuum_events.topology import Topology, ensure_topics, incident_ledger_topic

log = logging.getLogger(__name__)

Action = Literal["trigger", "resolve"]
#: Event types that clear a condition, as resolve signals the alerting category carries.
RESOLVE_SIGNALS = ("printer.online", "redirect.removed", "system.info")


@dataclass(frozen=True)
class Incident:
    key: str  # stable identity, e.g. printer/p-7/offline
    action: Action
    event: Event
    summary: str
    subject: str  # what failed, for people: a printer's name, a redirect, a component
    #: A resolve signal exists for it (offline, error, failed redirect, system error).
    resolvable: bool = True


def _printer(p: Mapping[str, Any]) -> str:
    name = p.get("printer_name") or p.get("printer_id") or "unknown printer"
    where = ", ".join(str(v) for v in (p.get("printer_ip"), p.get("printer_location")) if v)
    return f"{name} ({where})" if where else str(name)


def incidents_of(event: Event) -> list[Incident]:
    """The incident transitions an event stands for (usually one, none for routine events)."""
    p, kind = event.payload, event.event_type
    why = p.get("error_message") or ", ".join(p.get("conditions") or ()) or p.get("error_code") or ""
    if kind in (EventType.PRINTER_OFFLINE, EventType.PRINTER_ERROR, EventType.PRINTER_ONLINE):
        base, subject = f"printer/{p['printer_id']}", _printer(p)
        if kind is EventType.PRINTER_OFFLINE:
            failures = p.get("consecutive_failures")
            detail = f" after {failures} failed checks" if failures else ""
            return [Incident(f"{base}/offline", "trigger", event, f"Printer {subject} is offline{detail}", subject)]
        if kind is EventType.PRINTER_ERROR:
            return [
                Incident(
                    f"{base}/error",
                    "trigger",
                    event,
                    f"Printer {subject} reports an error: {why}".rstrip(": "),
                    subject,
                )
            ]
        back = [Incident(f"{base}/offline", "resolve", event, f"Printer {subject} is back online", subject)]
        if not p.get("conditions"):
            back.append(Incident(f"{base}/error", "resolve", event, f"Printer {subject} reports no error", subject))
        return back
    if kind in (EventType.REDIRECT_FAILED, EventType.REDIRECT_REMOVED):
        key = f"redirect/{p['redirect_id']}/failed"
        subject = (
            f"redirect {p['redirect_id']} ({p.get('source_printer_name') or p['source_printer_id']} -> "
            f"{p.get('target_printer_name') or p.get('target_printer_id')})"
        )
        if kind is EventType.REDIRECT_FAILED:
            return [Incident(key, "trigger", event, f"Print redirect {subject} failed: {why}".rstrip(": "), subject)]
        return [Incident(key, "resolve", event, f"Print redirect {subject} was removed", subject)]
    if kind in (EventType.SYSTEM_ERROR, EventType.SYSTEM_CRITICAL, EventType.SYSTEM_INFO):
        component = p.get("component") or event.source
        key, subject = f"system/{component}/error", f"Continuum {component}"
        message = p.get("message") or why
        if kind is EventType.SYSTEM_INFO:
            return [Incident(key, "resolve", event, f"{subject}: {message}".rstrip(": "), subject)]
        return [Incident(key, "trigger", event, f"{subject}: {message}".rstrip(": "), subject)]
    if kind is EventType.PRINTER_FLAPPING:  # the router's flap suppression (continuum_events.hygiene)
        subject = _printer(p)
        key = f"printer/{p['printer_id']}/flapping"
        if event.details.get("state") == "stable":
            return [Incident(key, "resolve", event, f"Printer {subject} is stable again", subject)]
        return [
            Incident(
                key,
                "trigger",
                event,
                f"Printer {subject} is flapping: {event.details.get('changes', '?')} "
                f"offline/online changes in {event.details.get('window_s', '?')} s",
                subject,
            )
        ]
    if kind is EventType.GROUP_OUTAGE:  # the router's outage grouping
        subject = f"{event.details.get('dimension', 'group')} {p.get('group_name') or p['group_id']}"
        key = f"group/{p['group_id']}/outage"
        if event.details.get("state") == "resolved":
            return [
                Incident(
                    key,
                    "resolve",
                    event,
                    f"Outage of {subject} is over ({event.details.get('still_offline', 0)}"
                    " printers still offline are paged on their own)",
                    subject,
                )
            ]
        return [
            Incident(key, "trigger", event, f"{subject}: {event.details.get('count', '?')} printers offline", subject)
        ]
    if SEVERITY_RANK[event.severity.value] >= SEVERITY_RANK["warning"]:
        subject = p.get("printer_name") or p.get("printer_id") or p.get("group_name") or p.get("job_id") or event.source
        entity = p.get("printer_id") or p.get("group_id") or p.get("job_id") or event.source
        return [
            Incident(
                f"{event.event_type.value.split('.')[0]}/{entity}/{event.event_type.value}",
                "trigger",
                event,
                f"{event.event_type.value} on {subject}: {why}".rstrip(": "),
                str(subject),
                resolvable=False,
            )
        ]
    return []


def bounded(text: str, limit: int) -> str:
    """Text cut to a vendor's field limit."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def stable_key(key: str, limit: int) -> str:
    """The incident key, or a digest-suffixed cut of it when the vendor's field is shorter."""
    if len(key) <= limit:
        return key
    return f"{key[: limit - 17]}#{hashlib.sha256(key.encode()).hexdigest()[:16]}"


def group_of(event: Event) -> str | None:
    """Where a printer problem belongs, for the vendors' grouping fields."""
    return event.payload.get("printer_location") or event.payload.get("printer_department")


# -- the ledger ---------------------------------------------------------------------------
def _order(entry: Mapping[str, Any]) -> tuple[int, int, int]:
    return entry["since"], entry["state"] == "resolved", SEVERITY_RANK.get(entry.get("severity", "info"), 0)


def decide(entry: Mapping[str, Any] | None, incident: Incident) -> Mapping[str, Any] | None:
    """The ledger entry after sending ``incident``, or None when it must not be sent."""
    t, severity = incident.event.timestamp_us, incident.event.severity.value
    count = _count(incident)
    if incident.action == "trigger":
        if entry is None or (entry["state"] == "resolved" and t > entry["since"]):
            opened = {"state": "open", "since": t, "severity": severity, "event_id": incident.event.event_id}
            return opened if count is None else {**opened, "count": count}
        if (
            entry["state"] == "open"
            and t >= entry["since"]
            and SEVERITY_RANK[severity] > SEVERITY_RANK[entry["severity"]]
        ):
            return {**entry, "severity": severity}  # escalation: same incident, higher severity
        if entry["state"] == "open" and t >= entry["since"] and count is not None and count > entry.get("count", 0):
            return {**entry, "count": count}  # an outage that grew: same incident, its new count (once)
        return None
    if entry is not None and entry["state"] == "open" and t >= entry["since"]:
        return {**entry, "state": "resolved", "since": t, "resolved_by": incident.event.event_id}
    return None


def _count(incident: Incident) -> int | None:
    """How many printers a group outage covers (alert hygiene's ``details.count``), else None."""
    text = incident.event.details.get("count") if incident.event.event_type.value == "group.outage" else None
    return int(text) if text and text.isdigit() else None


class IncidentLedger(TopicFollower):
    """Last transition per incident key; a newer event time wins whatever the read order."""

    def __init__(self, settings: KafkaSettings, integration: str) -> None:
        super().__init__(settings, incident_ledger_topic(integration), name=f"ledger-{integration}")
        self._producer = Producer(settings.client_config(**{"acks": "all", "enable.idempotence": True, "linger.ms": 2}))

    def merge(self, key: str, old: Any, new: Any) -> Any:
        if old is None or new is None:
            return new
        return new if _order(new) >= _order(old) else old

    def record(self, entries: Mapping[str, Mapping[str, Any]]) -> None:
        """Store transitions (acknowledged) and fold them in at once."""
        write_keys(self.settings, self.topic, entries, producer=self._producer)
        self.apply(entries)


class LifecycleSink:
    """Base of the HTTP sinks that send one request per event and keep incidents in the
    ledger (``config`` is the vendor's config, ``client`` the shared HTTP plumbing).

    A subclass implements ``deliver(event, pending)``: for each incident it wants to act
    on, ``pending.entry_after(incident)`` says whether to send (the entry to record) or not;
    after the vendor accepted, ``pending.keep(key, entry)``. Per event it may raise
    :class:`Rejected` (the event goes to the dead-letter topic), Retry or ConfigError.
    ``min_interval`` and ``window`` bound the vendor's rate (events per rolling window):
    when reached, the rest of the batch waits (queued, never dropped).
    """

    limits = Limits(max_records=20, max_bytes=1_000_000, linger_s=0.1, timeout_s=10.0)
    #: (events, seconds): at most that many requests in any rolling window; None = unbounded.
    rate: tuple[int, float] | None = None

    def __init__(self, config: Any, client: HttpClient | None = None) -> None:
        self.config = config
        self.client = client or HttpClient(self.limits.timeout_s)
        self.ledger: IncidentLedger | None = None
        self._sent: list[float] = []

    def open(self, context: SinkContext) -> None:
        ensure_topics(AdminClient(context.settings.client_config()), Topology.ledger_topics(context.integration))
        if self.ledger is not None:  # a previous attempt that could not read it
            self.ledger.stop()
        self.ledger = IncidentLedger(context.settings, context.integration).start()
        if not self.ledger.wait_ready(30):
            raise ConfigError(f"incident ledger {self.ledger.topic} could not be read")

    def deliver(self, event: Event, pending: Pending) -> None:
        raise NotImplementedError

    # -- the dead-man's switch ------------------------------------------------------------
    @property
    def heartbeat_s(self) -> float | None:
        """Seconds between heartbeats, None when this integration sends none. The runtime
        calls :meth:`heartbeat` that often while the integration is healthy, so the vendor
        alerts when the pipeline goes silent (stopped, wedged, or failing to deliver)."""
        url = getattr(self.config, "heartbeat_url", None)
        return getattr(self.config, "heartbeat_s", None) if url is not None else None

    def heartbeat(self) -> None:
        """One heartbeat: a POST to the configured dead-man's-switch URL (a check of a
        service such as healthchecks.io or Dead Man's Snitch, wired to this vendor's
        service: PagerDuty's and Splunk On-Call's own APIs cannot alert on silence).
        Raises Retry or ConfigError as a delivery would."""
        url = self.config.heartbeat_url
        self.client.conceal(url)  # such URLs carry their check's token
        response = self.client.post(url.get_secret_value(), b"", {"User-Agent": "continuum-events"}, what="heartbeat")
        raise_for_common(
            response, what="heartbeat", retry={408, 429}, config={400, 401, 403, 404, 405}, too_large=False
        )
        if response.status_code >= 300:
            raise ConfigError(f"heartbeat: HTTP {response.status_code}")

    def write(self, events: Sequence[Event]) -> BatchResult:
        if self.ledger is None:
            raise ConfigError("the sink was not opened: run it with the connector runtime (it calls open)")
        pending, rejected = Pending(self.ledger), dict[int, str]()
        try:
            for i, event in enumerate(events):
                wait = self._rate_wait()
                if wait:
                    return BatchResult(
                        rejected, dict.fromkeys(range(i, len(events)), "rate limit"), wait, throttled=True
                    )
                try:
                    self.deliver(event, pending)
                except Rejected as exc:
                    rejected[i] = str(exc)
                except Retry as exc:
                    return BatchResult(rejected, {j: str(exc) for j in range(i, len(events))}, exc.retry_after)
            return BatchResult(rejected)
        finally:
            pending.commit()

    def sent(self) -> None:
        """Called by subclasses after each request, for the rate limit."""
        if self.rate:
            self._sent.append(time.monotonic())

    def _rate_wait(self) -> float:
        if not self.rate:
            return 0.0
        count, window = self.rate
        now = time.monotonic()
        self._sent = [t for t in self._sent if now - t < window]
        return 0.0 if len(self._sent) < count else self._sent[0] + window - now

    def close(self) -> None:
        if self.ledger is not None:
            self.ledger.stop()
        self.client.close()


class Rejected(Exception):
    """The vendor refuses this one event (it goes to the dead-letter topic with the reason)."""


class Pending:
    """A batch's ledger changes: read through, stored when the batch ends."""

    def __init__(self, ledger: IncidentLedger) -> None:
        self.ledger = ledger
        self.changes: dict[str, Mapping[str, Any]] = {}

    def entry(self, key: str) -> Mapping[str, Any] | None:
        return self.changes.get(key) or self.ledger.values().get(key)

    def entry_after(self, incident: Incident) -> Mapping[str, Any] | None:
        return decide(self.entry(incident.key), incident)

    def keep(self, key: str, entry: Mapping[str, Any]) -> None:
        self.changes[key] = entry

    def commit(self) -> None:
        if not self.changes:
            return
        try:
            self.ledger.record(self.changes)
        except RuntimeError as exc:
            # The vendor has these; the ledger does not. The batch is retried, and the
            # vendor deduplicates what is sent again.
            raise Retry(f"incident ledger not stored: {exc}") from None
