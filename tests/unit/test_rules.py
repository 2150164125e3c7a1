"""The rule engine, without Kafka: the default routing table exactly, live-rule shapes, transforms."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from continuum_events.events import Event, EventType, Severity, new_event_id
from continuum_events.rules import (
    MASK,
    Rule,
    RuleError,
    RuleSet,
    explain,
    filter_for_integration,
    route,
    transform,
)
from tests.samples import ALL_TYPES, expected_categories, full_payload


def event(event_type: str, severity: str = "info", **payload) -> Event:
    t = EventType(event_type)
    return Event(
        new_event_id(), t, Severity(severity), 0, {**full_payload(t.family), **payload}, details={"site": "hq"}
    )


@pytest.mark.parametrize("event_type", ALL_TYPES, ids=str)
def test_default_routing_is_exactly_continuums_table(event_type: EventType) -> None:
    categories = {d.category for d in route(event(event_type.value), RuleSet.of([]))}
    assert categories == expected_categories(event_type.value)


def test_a_configured_rule_replaces_the_builtin_default_of_its_category_only() -> None:
    rules = RuleSet.of([Rule(name="alert-jams", category="alerting", event_types=("printer.jam",))])
    assert {d.category for d in route(event("printer.jam"), rules)} == {"logging", "monitoring", "alerting"}
    assert {d.category for d in route(event("printer.offline"), rules)} == {"logging", "monitoring"}
    assert rules.builtin == {"logging", "monitoring"}


def test_first_matching_rule_by_priority_decides_and_names_itself() -> None:
    rules = RuleSet.of(
        [
            Rule(name="b-all", category="alerting", priority=50),
            Rule(
                name="a-finance",
                category="alerting",
                priority=10,
                where={"printer_department": "Finance"},
                mask=("printer_ip",),
            ),
        ]
    )
    finance = route(event("printer.jam", printer_department="Finance"), rules)
    other = route(event("printer.jam", printer_department="Legal"), rules)
    assert [(d.category, d.rule.name) for d in finance if d.category == "alerting"] == [("alerting", "a-finance")]
    assert [(d.category, d.rule.name) for d in other if d.category == "alerting"] == [("alerting", "b-all")]
    alert = next(d for d in finance if d.category == "alerting")
    assert alert.transformed and alert.event.payload["printer_ip"] == MASK


def test_severity_floor_patterns_and_disabled_rules() -> None:
    rules = RuleSet.of(
        [
            Rule(name="off", category="monitoring", enabled=False),
            Rule(name="printers-errors", category="monitoring", event_types=("printer.*",), min_severity="error"),
        ]
    )
    assert "monitoring" not in {d.category for d in route(event("printer.jam", "warning"), rules)}
    assert "monitoring" in {d.category for d in route(event("printer.jam", "critical"), rules)}
    assert "monitoring" not in {d.category for d in route(event("system.error", "critical"), rules)}


def test_drop_and_mask_transforms() -> None:
    rule = Rule(
        name="t",
        category="logging",
        drop=("printer_ip", "protocols", "details.site"),
        mask=("printer_name", "conditions"),
    )
    original = event("printer.error")
    out = transform(rule, original)
    assert out.payload["printer_ip"] is None and out.payload["protocols"] == [] and "site" not in out.details
    assert out.payload["printer_name"] == MASK and set(out.payload["conditions"]) == {MASK}
    assert original.payload["printer_ip"] != MASK  # the input is never modified
    assert transform(Rule(name="n", category="logging"), original) is original


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"event_types": ("printer.melted",)}, "matches no event type"),
        ({"event_types": ()}, "could never match"),
        ({"where": {"colour": "red"}}, "unknown field 'colour'"),
        ({"drop": ("printer_id",)}, "cannot drop 'printer_id'"),
        ({"mask": ("severity",)}, "cannot mask the envelope field"),
        ({"min_severity": "loud"}, "min_severity"),
        ({"category": "paging"}, "category"),
        ({"name": "has spaces"}, "name"),
        ({"surprise": 1}, "surprise"),
    ],
)
def test_bad_rules_are_refused_with_the_reason(fields: dict, message: str) -> None:
    with pytest.raises(ValidationError) as caught:
        Rule.model_validate({"name": "r", "category": "logging", **fields})
    assert message in str(caught.value)


def test_masking_a_required_number_is_a_rule_error() -> None:
    rule = Rule(name="m", category="logging", mask=("consecutive_failures",))
    assert transform(rule, event("printer.offline")).payload["consecutive_failures"] is None
    job = Event(new_event_id(), EventType.JOB_STARTED, Severity.INFO, 0, {"job_id": "j", "pages": 3})
    assert transform(Rule(name="p", category="logging", mask=("pages",)), job).payload["pages"] is None
    with pytest.raises(RuleError):
        transform(
            Rule(name="x", category="logging", mask=("job_id",)),
            Event(new_event_id(), EventType.JOB_STARTED, Severity.INFO, 0, {"job_id": 7}),
        )


def test_integration_filters_share_the_engine() -> None:
    rules = RuleSet.of(
        [
            Rule(
                name="dd-finance",
                category="logging",
                integration="datadog",
                where={"printer_department": "Finance"},
                drop=("printer_ip",),
            )
        ]
    )
    finance, legal = (
        event("printer.jam", printer_department="Finance"),
        event("printer.jam", printer_department="Legal"),
    )
    accepted = filter_for_integration(finance, rules, "datadog", "logging")
    assert accepted is not None and accepted.event.payload["printer_ip"] is None
    assert filter_for_integration(legal, rules, "datadog", "logging") is None
    assert filter_for_integration(legal, rules, "splunk", "logging").event is legal


def test_explain_says_why() -> None:
    rules = RuleSet.of([Rule(name="finance-only", category="alerting", where={"printer_department": "Finance"})])
    verdicts = explain(
        event("printer.offline", printer_department="Legal"), rules, {"pagerduty": "alerting", "splunk": "logging"}
    )
    text = [(v.category, v.rule, v.matched, v.reason, v.integration) for v in verdicts]
    assert ("alerting", "finance-only", False, "printer_department is 'Legal', not one of Finance", None) in text
    assert ("logging", "logging-default (built-in default)", True, "matches", None) in text
    assert ("alerting", "-", False, "category alerting not reached", "pagerduty") in text
    assert ("logging", "-", True, "no filter: receives its whole category", "splunk") in text
