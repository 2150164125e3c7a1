"""Continuum's calls as written, made into events without losing a fact (producers.coerce)."""

from __future__ import annotations

import enum
from decimal import Decimal

import pytest

from continuum_events.events import EventType
from continuum_events.producers.coerce import coerce


def test_model_values_become_the_fields_types_where_exact() -> None:
    c = coerce(
        EventType.PRINTER_OFFLINE,
        {
            "printer_id": 42,
            "consecutive_failures": 3.0,
            "toner_level_percent": "15",
            "response_time_ms": 250,
            "protocols": "raw, ipp,,lpd",
            "error_code": 500,
        },
        "WARNING",
    )
    assert c.problems == []
    assert c.data == {
        "printer_id": "42",
        "consecutive_failures": 3,
        "toner_level_percent": 15,
        "response_time_ms": 250.0,
        "protocols": ["raw", "ipp", "lpd"],
        "error_code": "500",
    }
    assert c.severity == "warning" and c.details == {}
    assert len(c.notes) == 6  # every change is said, one per field


@pytest.mark.parametrize("value", [12.7, True, 2**40, "3 pages", Decimal("1.5")])
def test_what_has_no_exact_form_is_kept_in_details(value) -> None:
    c = coerce("printer.offline", {"printer_id": "p", "consecutive_failures": value})
    assert "consecutive_failures" not in c.data
    assert c.details["consecutive_failures"] == {True: "true"}.get(value, str(value))
    assert c.notes == [
        f"payload.consecutive_failures: {c.details['consecutive_failures']!r} is not exactly an int; kept in details"
    ]


def test_unknown_fields_and_non_text_details_are_kept_as_text() -> None:
    c = coerce(
        "printer.error",
        {"printer_id": "p", "tray": 2, "ctx": {"b": [1, 2], "a": None}, "details": {"attempt": 3, "why": "jam"}},
    )
    assert c.details == {"tray": "2", "ctx": '{"a": null, "b": [1, 2]}', "attempt": "3", "why": "jam"}
    assert c.data == {"printer_id": "p"}
    assert {n.split(":")[0] for n in c.notes} == {"payload.tray", "payload.ctx", "details[attempt]"}


class Level(enum.Enum):
    HIGH = "Critical"


@pytest.mark.parametrize(
    ("given", "severity"),
    [
        ("WARNING", "warning"),
        (" Error ", "error"),
        ("warn", "warning"),
        ("FATAL", "critical"),
        (Level.HIGH, "critical"),
        (None, "warning"),
    ],
)
def test_severity_is_case_insensitive_with_the_usual_aliases(given, severity) -> None:
    c = coerce("printer.jam", {"printer_id": "p"}, given)
    assert c.severity == severity and c.notes == [] and c.problems == []


def test_an_unknown_severity_falls_back_to_the_types_default_and_is_kept() -> None:
    c = coerce("redirect.failed", {"redirect_id": "r", "source_printer_id": "p"}, "urgent")
    assert c.severity == "error" and c.details["severity_given"] == "urgent" and not c.problems


@pytest.mark.parametrize("given", ["PRINTER_OFFLINE", "printer_offline", "Printer.Offline", EventType.PRINTER_OFFLINE])
def test_event_types_by_name_value_or_symbol_in_any_case(given) -> None:
    assert coerce(given, {"printer_id": "p"}).event_type is EventType.PRINTER_OFFLINE


def test_a_missing_id_is_taken_from_what_still_keys_the_event() -> None:
    c = coerce("printer.offline", {"printer_name": "Lobby", "printer_ip": "10.0.0.9"})
    assert c.data["printer_id"] == "10.0.0.9" and c.details["printer_id_from"] == "printer_ip"
    c = coerce("printer.offline", {"printer_name": "Lobby"})
    assert c.data["printer_id"] == "Lobby" and not c.problems
    c = coerce("job.failed", {"printer_id": 42, "pages": 3})
    assert c.data["job_id"] == "" and c.data["printer_id"] == "42" and not c.problems
    c = coerce("group.created", {"group_name": "Floor 2", "printer_ids": [42, 43]})
    assert c.data["group_id"] == "Floor 2" and c.data["printer_ids"] == ["42", "43"]


def test_what_cannot_be_an_event_names_every_bad_field_at_once() -> None:
    c = coerce("printer.melted", ["printer_id"], "urgent")
    assert c.problems == [
        "event type: 'printer.melted' is not a Continuum event type",
        "payload: must be a mapping of fields, got list",
    ]
    c = coerce("job.failed", {"pages": 2, "tray": 1})
    assert c.problems == ["payload.job_id: missing, and no printer_id or job_id to key the event by"]
    assert "payload.tray: unknown field, kept in details" in c.notes
