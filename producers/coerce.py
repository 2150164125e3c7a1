"""Continuum's calls as they are written: values straight from its models, made into events.

The app calls ``dispatch_event(EventType.X, {...}, severity=...)`` with whatever its models
hold: integer ids, a response time where a count is expected, ``None``, a comma string of
protocols, ``severity='WARNING'``, context keys the schema does not name. None of that may
lose the event. :func:`coerce` turns such a call into a valid event without losing a fact:

* a value becomes the field's type only where the conversion is exact (``42`` -> ``"42"``
  for a string field, ``3.0`` -> ``3`` or ``"3"`` -> ``3`` for an int field, ``7`` -> ``7.0``
  for a double); ``"raw, ipp"`` becomes ``["raw", "ipp"]`` for a list field;
* a value that cannot be converted exactly (``12.7`` for a count, a number out of range)
  is kept, as text, in ``details`` under the field's name, and the field left empty;
* a key the schema does not name is kept in ``details`` (JSON-encoded unless a string);
* severity is case-insensitive, with the common aliases (``warn``, ``err``, ``crit``,
  ``fatal``, ...); an unknown one falls back to the type's default and is kept in details;
* a missing id is derived where the event can still be keyed: a printer by its IP address
  or name, a redirect by its source printer, a group by its name (say so in details);
  other missing required text fields are left empty.

Every such change is a *note*. What cannot be an event at all — an unknown event type, a
payload that is not a mapping, a record with nothing to key it by — is a *problem*. Each
list names every field at once, never only the first::

    c = coerce("printer.offline", {"printer_id": 42, "tray": 2}, "WARNING")
    c.data == {"printer_id": "42"}; c.details == {"tray": "2"}; c.severity == "warning"
    c.notes == ["payload.tray: unknown field, kept in details"]
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from enum import Enum
from typing import Any
from uuid import UUID

from continuum_events.events import DEFAULT_SEVERITY, KEY_FIELDS, PAYLOAD_RECORDS, EventType, Severity

_INT32 = (-(2**31), 2**31 - 1)
_INTEGER = re.compile(r"\s*[+-]?\d+\s*")

SEVERITY_ALIASES: dict[str, str] = {
    "warn": "warning",
    "err": "error",
    "crit": "critical",
    "fatal": "critical",
    "emergency": "critical",
    "emerg": "critical",
    "alert": "critical",
    "severe": "critical",
    "debug": "info",
    "notice": "info",
    "informational": "info",
    "information": "info",
    "ok": "info",
}

#: Where a missing key field can be taken from, in order; the source is named in details.
KEY_FALLBACKS: dict[str, tuple[str, ...]] = {
    "printer_id": ("printer_ip", "printer_name"),
    "source_printer_id": ("source_printer_ip", "source_printer_name"),
    "group_id": ("group_name",),
}


@dataclass(frozen=True)
class _Field:
    name: str
    kind: str  # string | int | double | array
    nullable: bool
    required: bool


def _fields(record: Mapping[str, Any]) -> dict[str, _Field]:
    out = {}
    for f in record["fields"]:
        t = f["type"]
        nullable = isinstance(t, list) and "null" in t
        if isinstance(t, list):
            t = next(b for b in t if b != "null")
        kind = t["type"] if isinstance(t, dict) else t
        out[f["name"]] = _Field(
            f["name"], {"long": "int", "float": "double"}.get(kind, kind), nullable, "default" not in f
        )
    return out


FIELDS: dict[str, dict[str, _Field]] = {family: _fields(r) for family, r in PAYLOAD_RECORDS.items()}
_SEVERITIES = frozenset(s.value for s in Severity)
_BY_NAME = {t.value: t for t in EventType} | {t.name.lower(): t for t in EventType} | {t.symbol: t for t in EventType}


@dataclass
class Coerced:
    event_type: EventType | None = None
    data: dict[str, Any] = field(default_factory=dict)
    details: dict[str, str] = field(default_factory=dict)
    severity: str = "info"
    notes: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def summary(self) -> str:
        return "; ".join(self.problems + self.notes)


class _Inexact(Exception):
    """The value has no exact form of the field's type."""


def as_text(value: Any) -> str:
    """Any value as the text a person would expect: enums by value, booleans as JSON, containers as JSON."""
    if isinstance(value, str):
        return value
    if isinstance(value, Enum):
        return as_text(value.value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float | Decimal | UUID):
        return str(value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    try:
        return json.dumps(value, default=str, ensure_ascii=False, sort_keys=isinstance(value, Mapping))
    except (TypeError, ValueError):
        return repr(value)


def _to_int(value: Any) -> int:
    if isinstance(value, Enum):
        value = value.value
    if isinstance(value, bool):
        raise _Inexact
    if isinstance(value, int):
        n = value
    elif (isinstance(value, float | Decimal) and math.isfinite(value) and value == int(value)) or (
        isinstance(value, str) and _INTEGER.fullmatch(value)
    ):
        n = int(value)
    else:
        raise _Inexact
    if not _INT32[0] <= n <= _INT32[1]:
        raise _Inexact
    return n


def _to_double(value: Any) -> float:
    if isinstance(value, bool):
        raise _Inexact
    if isinstance(value, int | float | Decimal):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value.strip())
        except ValueError:
            raise _Inexact from None
    raise _Inexact


def _to_array(value: Any) -> list[str]:
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    if isinstance(value, list | tuple | set | frozenset):
        return [as_text(v) for v in value]
    return [as_text(value)]


_CONVERT = {"string": as_text, "int": _to_int, "double": _to_double, "array": _to_array}


def event_type_of(given: Any) -> EventType | None:
    """An :class:`EventType` from itself, its value, its name or symbol, any case; None if unknown."""
    if isinstance(given, EventType):
        return given
    if isinstance(given, Enum):
        given = given.value if isinstance(given.value, str) else given.name
    if not isinstance(given, str):
        return None
    text = given.strip()
    return _BY_NAME.get(text) or _BY_NAME.get(text.lower())


def severity_of(given: Any) -> str | None:
    if given is None:
        return None
    if isinstance(given, Enum):
        given = given.value if isinstance(given.value, str) else given.name
    text = str(given).strip().lower()
    text = SEVERITY_ALIASES.get(text, text)
    return text if text in _SEVERITIES else None


def coerce(
    event_type: Any,
    data: Any,
    severity: Any = None,
    details: Mapping[str, Any] | None = None,
) -> Coerced:
    """Make a call into an event (see the module docstring); never raises."""
    out = Coerced()
    out.event_type = event_type_of(event_type)
    if out.event_type is None or out.event_type is EventType.UNKNOWN:
        out.problems.append(f"event type: {event_type!r} is not a Continuum event type")
    if not isinstance(data, Mapping):
        out.problems.append(f"payload: must be a mapping of fields, got {type(data).__name__}")
        data = {}
    family = out.event_type.family if out.event_type is not None and out.event_type.family in FIELDS else None

    # Severity: case and aliases; an unknown one is kept, the type's default used.
    default = DEFAULT_SEVERITY.get(out.event_type.value, "info") if out.event_type else "info"
    out.severity = severity_of(severity) or default
    if severity is not None and severity_of(severity) is None:
        out.details["severity_given"] = as_text(severity)
        out.notes.append(
            f"severity: {as_text(severity)!r} is not one of info, warning, error, critical; "
            f"sent as {default}, the given one kept in details"
        )

    extra = dict(data.get("details") or {}) if isinstance(data.get("details"), Mapping) else {}
    if "details" in data and not isinstance(data["details"], Mapping | type(None)):
        extra = {"details": data["details"]}
    for name, value in {**extra, **(details or {})}.items():
        out.details[str(name)] = as_text(value)
        if not isinstance(value, str) or not isinstance(name, str):
            out.notes.append(f"details[{name}]: not text, kept as {out.details[str(name)]!r}")
    if family is None:
        return out

    fields = FIELDS[family]
    for name, value in data.items():
        if name == "details":
            continue
        spec = fields.get(name)
        if spec is None:
            out.details.setdefault(str(name), as_text(value))
            out.notes.append(f"payload.{name}: unknown field, kept in details")
            continue
        if value is None:
            if spec.nullable:
                out.data[name] = None
            elif spec.kind == "array":
                out.data[name] = []
            continue  # a required field left None is handled as missing below
        try:
            converted = _CONVERT[spec.kind](value)
        except _Inexact:
            out.details.setdefault(name, as_text(value))
            out.notes.append(
                f"payload.{name}: {as_text(value)!r} is not exactly a{'n' if spec.kind == 'int' else ''} "
                f"{spec.kind}; kept in details"
            )
            continue
        out.data[name] = converted
        if type(converted) is not type(value) and not (spec.kind == "array" and isinstance(value, list)):
            out.notes.append(f"payload.{name}: {type(value).__name__} given, sent as {spec.kind}")

    for name, spec in fields.items():
        if not spec.required or out.data.get(name) not in (None, ""):
            continue
        for fallback in KEY_FALLBACKS.get(name, ()):
            if out.data.get(fallback):
                out.data[name] = out.data[fallback]
                out.details[f"{name}_from"] = fallback
                out.notes.append(f"payload.{name}: missing, taken from {fallback}")
                break
        else:
            if name in KEY_FIELDS[family] and not any(out.data.get(k) for k in KEY_FIELDS[family]):
                wanted = " or ".join(
                    dict.fromkeys(
                        k
                        for key in KEY_FIELDS[family]
                        for k in ((key, *KEY_FALLBACKS.get(key, ())) if fields[key].required else (key,))
                    )
                )
                out.problems.append(f"payload.{name}: missing, and no {wanted} to key the event by")
            else:
                out.data[name] = ""
                out.notes.append(f"payload.{name}: missing, sent empty")
    return out
