from __future__ import annotations

import uuid

import pytest

from continuum_events.events import DEFAULT_SEVERITY, EventType, Severity, event_key, new_event_id

ISSUE_TYPES = [
    "printer.added",
    "printer.removed",
    "printer.offline",
    "printer.online",
    "printer.error",
    "printer.low_toner",
    "printer.jam",
    "redirect.created",
    "redirect.removed",
    "redirect.failed",
    "job.started",
    "job.completed",
    "job.failed",
    "group.created",
    "group.updated",
    "group.deleted",
    "system.error",
    "system.warning",
    "system.info",
    "system.critical",
]


#: What the router itself emits (alert hygiene): a flapping printer, a site's outage.
ROUTER_TYPES = ["printer.flapping", "group.outage"]


def test_every_event_type_continuum_sends_is_in_the_schema() -> None:
    assert sorted(t.value for t in EventType if t is not EventType.UNKNOWN) == sorted(ISSUE_TYPES + ROUTER_TYPES)


def test_event_type_members_read_like_continuums_calls() -> None:
    assert EventType.PRINTER_LOW_TONER == "printer.low_toner"
    assert EventType("redirect.failed") is EventType.REDIRECT_FAILED
    assert EventType.PRINTER_LOW_TONER.symbol == "printer_low_toner"
    assert {t.family for t in EventType if t is not EventType.UNKNOWN} == {
        "printer",
        "redirect",
        "job",
        "group",
        "system",
    }


def test_severities_are_ordered_and_defaults_are_valid() -> None:
    assert [s.value for s in Severity] == ["info", "warning", "error", "critical"]
    assert set(DEFAULT_SEVERITY) <= set(ISSUE_TYPES)
    assert set(DEFAULT_SEVERITY.values()) <= {s.value for s in Severity}


@pytest.mark.parametrize(
    ("family", "payload", "key"),
    [
        ("printer", {"printer_id": "p-1"}, "printer:p-1"),
        ("redirect", {"redirect_id": "r-1", "source_printer_id": "p-1"}, "printer:p-1"),
        ("job", {"job_id": "j-1", "printer_id": "p-1"}, "printer:p-1"),
        ("job", {"job_id": "j-1"}, "job:j-1"),
        ("group", {"group_id": "g-1"}, "group:g-1"),
        ("system", {"component": "scheduler"}, "system:scheduler"),
        ("system", {}, "system:continuum"),
    ],
)
def test_keys_keep_one_printers_events_together(family: str, payload: dict, key: str) -> None:
    assert event_key(family, payload) == key


def test_event_ids_are_unique_version_4_uuids() -> None:
    ids = [new_event_id() for _ in range(20_000)]
    assert len(set(ids)) == len(ids)
    parsed = uuid.UUID(ids[0])
    assert parsed.version == 4 and parsed.variant == uuid.RFC_4122 and str(parsed) == ids[0]


def test_the_type_checkers_view_of_the_enums_is_exactly_the_schemas() -> None:
    """events.py spells EventType and Severity out for mypy (under TYPE_CHECKING); the
    enums that run are built from the schema: the two must name the same members."""
    import ast
    import inspect

    from continuum_events import events

    tree = ast.parse(inspect.getsource(events))
    stubs = {
        node.name: {(t.targets[0].id, t.value.value) for t in node.body if isinstance(t, ast.Assign)}
        for node in ast.walk(tree)
        if isinstance(node, ast.ClassDef) and node.name in ("EventType", "Severity")
    }
    assert stubs["EventType"] == {(e.name, e.value) for e in events.EventType}
    assert stubs["Severity"] == {(s.name, s.value) for s in events.Severity}
