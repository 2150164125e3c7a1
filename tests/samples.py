"""Sample payloads generated from the schema, so a new field is exercised without editing tests."""

from __future__ import annotations

from typing import Any

from continuum_events.events import PAYLOAD_RECORDS, EventType

ALL_TYPES = [t for t in EventType if t is not EventType.UNKNOWN]
#: Continuum's routing table, written out independently of the code under test, with
#: the printer facts monitoring needs and alerting's resolve signals.
MONITORING = {
    "printer.offline",
    "printer.online",
    "printer.error",
    "redirect.failed",
    "system.error",
    "system.warning",
    "printer.low_toner",
    "printer.jam",
    "printer.removed",
}
ALERTING = {
    "printer.offline",
    "printer.error",
    "redirect.failed",
    "system.error",
    "system.critical",
    "printer.online",
    "redirect.removed",
    "system.info",
}


def expected_categories(event_type: str) -> set[str]:
    return (
        {"logging"}
        | ({"monitoring"} if event_type in MONITORING else set())
        | ({"alerting"} if event_type in ALERTING else set())
    )


def _value(name: str, kind: Any, i: int) -> Any:
    if isinstance(kind, list):
        return _value(name, next(k for k in kind if k != "null"), i)
    if isinstance(kind, dict):
        if kind["type"] == "array":
            return [f"{name}-a{i}", f"{name}-b{i}"]
        if kind["type"] == "map":
            return {"k": f"v{i}"}
        return _value(name, kind["type"], i)
    return {"string": f"{name}-{i}", "int": 40 + i, "long": 10**12 + i, "double": 1.25 + i, "boolean": True}[kind]


def full_payload(family: str, i: int = 0) -> dict[str, Any]:
    """Every field of the family's payload set to a non-default value."""
    return {f["name"]: _value(f["name"], f["type"], i) for f in PAYLOAD_RECORDS[family]["fields"]}


def minimal_payload(family: str, i: int = 0) -> dict[str, Any]:
    """Only the fields without a default."""
    return {f["name"]: _value(f["name"], f["type"], i) for f in PAYLOAD_RECORDS[family]["fields"] if "default" not in f}
