"""Sample payloads generated from the schema, so a new field is exercised without editing tests."""

from __future__ import annotations

from typing import Any

from continuum_events.events import PAYLOAD_RECORDS, EventType

_FAMILY_OF = {t: t.family for t in EventType if t is not EventType.UNKNOWN}
ALL_TYPES = [t for t in EventType if t is not EventType.UNKNOWN]


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
