"""The event contract in Python, derived from ``schemas/event.avsc``.

Nothing here restates the schema: the event types, severities, payload families
and their fields are read from the ``.avsc`` file, so the schema stays the single
source of truth. What lives here is policy the schema cannot express: the default
severity of each type, and which payload field keys an event (so one printer's
events stay in order on one partition).

    >>> EventType("printer.offline") is EventType.PRINTER_OFFLINE
    True
    >>> EventType.PRINTER_OFFLINE.family
    'printer'
"""

from __future__ import annotations

import os
import random
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any

import fastavro

from continuum_events.schemas import load

EVENT_SCHEMA: dict[str, Any] = load("event")
PARSED_EVENT_SCHEMA = fastavro.parse_schema(EVENT_SCHEMA)

_FIELDS = {f["name"]: f for f in EVENT_SCHEMA["fields"]}
_UNKNOWN_SYMBOL = _FIELDS["event_type"]["type"]["default"]


def _dotted(symbol: str) -> str:
    """``printer_low_toner`` -> ``printer.low_toner``: the family never has an underscore."""
    return symbol.replace("_", ".", 1) if symbol != _UNKNOWN_SYMBOL else symbol


def symbol_of(event_type: str) -> str:
    """The Avro enum symbol of a dotted event type."""
    return event_type.replace(".", "_", 1)


class _EventTypeBase(StrEnum):
    @property
    def family(self) -> str:
        """``printer``, ``redirect``, ``job``, ``group`` or ``system``."""
        return self.value.split(".", 1)[0]

    @property
    def symbol(self) -> str:
        return symbol_of(self.value)


if TYPE_CHECKING:
    # What a type checker sees; at run time both enums are built from the schema below
    # (tests/unit/test_events.py checks these names are exactly the schema's symbols).
    class EventType(_EventTypeBase):
        PRINTER_ADDED = "printer.added"
        PRINTER_REMOVED = "printer.removed"
        PRINTER_OFFLINE = "printer.offline"
        PRINTER_ONLINE = "printer.online"
        PRINTER_ERROR = "printer.error"
        PRINTER_LOW_TONER = "printer.low_toner"
        PRINTER_JAM = "printer.jam"
        REDIRECT_CREATED = "redirect.created"
        REDIRECT_REMOVED = "redirect.removed"
        REDIRECT_FAILED = "redirect.failed"
        JOB_STARTED = "job.started"
        JOB_COMPLETED = "job.completed"
        JOB_FAILED = "job.failed"
        GROUP_CREATED = "group.created"
        GROUP_UPDATED = "group.updated"
        GROUP_DELETED = "group.deleted"
        SYSTEM_ERROR = "system.error"
        SYSTEM_WARNING = "system.warning"
        SYSTEM_INFO = "system.info"
        SYSTEM_CRITICAL = "system.critical"
        UNKNOWN = "unknown"
        PRINTER_FLAPPING = "printer.flapping"
        GROUP_OUTAGE = "group.outage"

    class Severity(StrEnum):
        INFO = "info"
        WARNING = "warning"
        ERROR = "error"
        CRITICAL = "critical"
else:
    EventType = _EventTypeBase(
        "EventType",
        {symbol.upper(): _dotted(symbol) for symbol in _FIELDS["event_type"]["type"]["symbols"]},
    )
    EventType.__doc__ = "Every Continuum event type, e.g. ``EventType.PRINTER_OFFLINE == 'printer.offline'``."

    Severity = StrEnum("Severity", {s.upper(): s for s in _FIELDS["severity"]["type"]["symbols"]})
    Severity.__doc__ = "info < warning < error < critical."
SEVERITY_RANK: dict[str, int] = {s.value: i for i, s in enumerate(Severity)}

#: Payload record (by short name) for each family, read from the payload union.
PAYLOAD_RECORDS: dict[str, dict[str, Any]] = {
    record["name"].rsplit(".", 1)[-1].removesuffix("Payload").lower(): record for record in _FIELDS["payload"]["type"]
}
#: The fully qualified record name of each family's payload branch.
PAYLOAD_BRANCH: dict[str, str] = {
    family: f"{EVENT_SCHEMA['namespace']}.{record['name']}" for family, record in PAYLOAD_RECORDS.items()
}

#: The field names of each family's payload record.
PAYLOAD_FIELDS: dict[str, frozenset[str]] = {
    family: frozenset(f["name"] for f in record["fields"]) for family, record in PAYLOAD_RECORDS.items()
}


def payload_family(payload: Mapping[str, Any]) -> str:
    """The family whose payload record has exactly these fields (how an ``unknown`` event, from a
    newer writer, keeps its payload's branch when it is encoded again); ValueError if none has."""
    names = payload.keys()
    for family, fields in PAYLOAD_FIELDS.items():
        if names == fields:
            return family
    raise ValueError(f"a payload of no known family (fields {sorted(names)[:8]})")


#: Severity used when the caller gives none.
DEFAULT_SEVERITY: dict[str, str] = {
    "printer.offline": "warning",
    "printer.error": "error",
    "printer.low_toner": "warning",
    "printer.jam": "warning",
    "redirect.failed": "error",
    "job.failed": "warning",
    "system.warning": "warning",
    "system.error": "error",
    "system.critical": "critical",
}

#: Payload fields that key an event, tried in order. One printer's events share a key,
#: so they share a partition and stay ordered; redirects follow their source printer.
KEY_FIELDS: dict[str, tuple[str, ...]] = {
    "printer": ("printer_id",),
    "redirect": ("source_printer_id",),
    "job": ("printer_id", "job_id"),
    "group": ("group_id",),
    "system": ("component",),
}


def event_key(family: str, payload: Mapping[str, Any]) -> str:
    """The partitioning key of an event, e.g. ``printer:p-17``.

    The family prefix keeps a group id from colliding with a printer id.
    Job events key by their printer when they name one, so they interleave in
    order with that printer's health events.
    """
    for name in KEY_FIELDS[family]:
        value = payload.get(name)
        if value:
            return f"{'printer' if name.endswith('printer_id') else family}:{value}"
    return f"{family}:continuum" if family == "system" else f"{family}:"


def now_micros() -> int:
    return time.time_ns() // 1000


# Event ids need uniqueness, not secrecy: a Mersenne Twister seeded from the OS gives
# 122 random bits per id at a tenth of the cost of uuid4()'s urandom call, and is
# reseeded in every forked child (web-server workers) so no two processes share a stream.
_random = random.Random()
os.register_at_fork(after_in_child=_random.seed)
_UUID4_CLEAR = ~((0xF000 << 64) | (0xC000 << 48))
_UUID4_SET = (0x4000 << 64) | (0x8000 << 48)


def new_event_id() -> str:
    """A random (version 4, RFC 9562) UUID as text."""
    h = "%032x" % ((_random.getrandbits(128) & _UUID4_CLEAR) | _UUID4_SET)
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


@dataclass(frozen=True, slots=True)
class Event:
    """A decoded event. Build one with :func:`producers.dispatch_event`, not by hand."""

    event_id: str
    event_type: EventType
    severity: Severity
    timestamp_us: int
    payload: Mapping[str, Any]
    source: str = "continuum"
    details: Mapping[str, str] = field(default_factory=dict)

    @property
    def family(self) -> str:
        return self.event_type.family

    @property
    def payload_family(self) -> str:
        """The payload's family: the type's own, or for an ``unknown`` type the one its fields name."""
        return self.family if self.family in PAYLOAD_RECORDS else payload_family(self.payload)

    @property
    def timestamp(self) -> datetime:
        return datetime.fromtimestamp(self.timestamp_us / 1_000_000, tz=UTC)

    @property
    def key(self) -> str:
        return event_key(self.payload_family, self.payload)

    def to_record(self) -> dict[str, Any]:
        """The Avro record (enum symbols, union branch tagged) ready to encode."""
        return {
            "event_id": self.event_id,
            "event_type": self.event_type.symbol,
            "severity": self.severity.value,
            "timestamp": self.timestamp_us,
            "source": self.source,
            "payload": (PAYLOAD_BRANCH[self.payload_family], dict(self.payload)),
            "details": dict(self.details),
        }

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> Event:
        """From the dict the codec reads (logical types off: the id is text, the time int micros)."""
        return cls(
            event_id=record["event_id"],
            event_type=_TYPE_BY_SYMBOL[record["event_type"]],
            severity=_SEVERITY_BY_NAME[record["severity"]],
            timestamp_us=record["timestamp"],
            payload=record["payload"],
            source=record["source"],
            details=record["details"],
        )

    def to_json_dict(self) -> dict[str, Any]:
        """A JSON-ready dict for vendors and humans (ISO-8601 UTC timestamp)."""
        return {
            "event_id": self.event_id,
            "event_type": self.event_type.value,
            "severity": self.severity.value,
            "timestamp": self.timestamp.isoformat().replace("+00:00", "Z"),
            "source": self.source,
            "payload": dict(self.payload),
            "details": dict(self.details),
        }


# Decoding looks members up by their Avro symbol: a dict is ~5x cheaper than Enum(value).
_TYPE_BY_SYMBOL = {t.symbol if t is not EventType.UNKNOWN else t.value: t for t in EventType}
_SEVERITY_BY_NAME = {s.value: s for s in Severity}
