"""The incident lifecycle as pure functions: identities and the ledger's decisions."""

from __future__ import annotations

import pytest

from continuum_events.connectors.incidents import decide, incidents_of
from continuum_events.events import Event, EventType, Severity, new_event_id

MINUTE = 60_000_000


def event(kind: str, t: int = 0, severity: str | None = None, **payload) -> Event:
    family = kind.split(".")[0]
    base = {
        "printer": {"printer_id": "p-7", "printer_name": "Finance-3F-01"},
        "redirect": {"redirect_id": "r-2", "source_printer_id": "p-7", "target_printer_id": "p-8"},
        "system": {"component": "db"},
    }[family]
    from continuum_events.events import DEFAULT_SEVERITY

    return Event(
        new_event_id(),
        EventType(kind),
        Severity(severity or DEFAULT_SEVERITY.get(kind, "info")),
        1_800_000_000_000_000 + t,
        {**base, **payload},
    )


@pytest.mark.parametrize(
    ("kind", "action", "key"),
    [
        ("printer.offline", "trigger", "printer/p-7/offline"),
        ("printer.error", "trigger", "printer/p-7/error"),
        ("redirect.failed", "trigger", "redirect/r-2/failed"),
        ("redirect.removed", "resolve", "redirect/r-2/failed"),
        ("system.error", "trigger", "system/db/error"),
        ("system.critical", "trigger", "system/db/error"),
        ("system.info", "resolve", "system/db/error"),
    ],
)
def test_identity_comes_from_what_failed_never_from_the_event(kind: str, action: str, key: str) -> None:
    first, second = incidents_of(event(kind)), incidents_of(event(kind))
    assert [(i.action, i.key) for i in first] == [(action, key)] == [(i.action, i.key) for i in second]


def test_online_resolves_offline_and_error_unless_a_condition_remains() -> None:
    assert [i.key for i in incidents_of(event("printer.online"))] == ["printer/p-7/offline", "printer/p-7/error"]
    still_jammed = incidents_of(event("printer.online", conditions=["jammed"]))
    assert [i.key for i in still_jammed] == ["printer/p-7/offline"]


def test_other_events_page_only_from_warning_up_and_have_no_automatic_resolve() -> None:
    assert incidents_of(event("printer.added")) == []
    (jam,) = incidents_of(event("printer.jam"))
    assert jam.key == "printer/p-7/printer.jam" and not jam.resolvable


def test_summaries_name_the_printer_and_the_cause() -> None:
    (offline,) = incidents_of(event("printer.offline", printer_ip="10.0.0.7", consecutive_failures=3))
    assert offline.summary == "Printer Finance-3F-01 (10.0.0.7) is offline after 3 failed checks"
    (failed,) = incidents_of(event("redirect.failed", error_message="target unreachable"))
    assert failed.summary.endswith("failed: target unreachable")


def run(events: list[Event]) -> list[tuple[str, str]]:
    """Feed events through decide() as a sink would; return what was sent."""
    ledger: dict[str, dict] = {}
    sent = []
    for e in events:
        for incident in incidents_of(e):
            entry = decide(ledger.get(incident.key), incident)
            if entry is not None:
                ledger[incident.key] = entry
                sent.append((incident.action, incident.key))
    return sent


def test_a_duplicate_trigger_is_not_sent_and_a_later_outage_opens_anew() -> None:
    offline, online, again = (
        event("printer.offline", 0),
        event("printer.online", MINUTE),
        event("printer.offline", 5 * MINUTE),
    )
    sent = run([offline, offline, online, again])
    assert sent == [
        ("trigger", "printer/p-7/offline"),
        ("resolve", "printer/p-7/offline"),
        ("trigger", "printer/p-7/offline"),
    ]


def test_replaying_history_twice_sends_nothing_more() -> None:
    day = [
        event("printer.offline", 0),
        event("printer.online", MINUTE),
        event("printer.offline", 2 * MINUTE),
        event("printer.online", 3 * MINUTE),
    ]
    ledger: dict[str, dict] = {}
    sends = []
    for _ in range(3):
        for e in day:
            for incident in incidents_of(e):
                entry = decide(ledger.get(incident.key), incident)
                if entry is not None:
                    ledger[incident.key] = entry
                    sends.append(incident.action)
    assert sends.count("trigger") == 2 and sends.count("resolve") == 2


def test_an_old_recovery_never_closes_a_newer_outage() -> None:
    outage = event("printer.offline", 10 * MINUTE)
    old_recovery = event("printer.online", MINUTE)
    assert run([outage, old_recovery]) == [("trigger", "printer/p-7/offline")]


def test_a_resolve_for_nothing_open_is_not_sent() -> None:
    assert run([event("printer.online"), event("system.info")]) == []


def test_escalation_updates_the_open_incident_without_reopening() -> None:
    error, critical, info = event("system.error", 0), event("system.critical", MINUTE), event("system.info", 2 * MINUTE)
    assert run([error, critical, critical, info]) == [
        ("trigger", "system/db/error"),
        ("trigger", "system/db/error"),
        ("resolve", "system/db/error"),
    ]


def test_ledger_merge_keeps_the_later_transition_whatever_the_read_order() -> None:
    from continuum_events.connectors.incidents import IncidentLedger

    opened = {"state": "open", "since": 1, "severity": "warning"}
    resolved = {"state": "resolved", "since": 2, "severity": "warning"}
    merge = IncidentLedger.merge
    assert merge(None, "k", opened, resolved) == resolved
    assert merge(None, "k", resolved, opened) == resolved
