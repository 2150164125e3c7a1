"""What a printer's SNMP answers mean, and when a change is worth an event.

Pure functions and a small state machine, no network: :func:`decode` turns the raw
values of one poll into a :class:`Reading`; :class:`PrinterHealth` folds readings into
the printer's state with hysteresis and returns the events a change calls for::

    health = PrinterHealth()
    for reading in readings:
        for kind, fields in health.observe(reading, policy):
            dispatch(kind, {**printer_fields, **fields})

Rules (``../shared/PRINTERS.md``): offline after ``offline_after`` consecutive failed
polls, online again after ``online_after`` good ones; a printer first seen answering
becomes online silently (a probe start is not news). Jams, low toner (set at ≤ 10 %,
cleared at ≥ 20 %) and error states are reported only when they change; when the last
error condition clears, ``printer.online`` with no conditions says the printer is
healthy again (it resolves the printer's error incident downstream). A poll that SNMP
leaves unanswered while the printer's print port accepts connections is not a failure:
after as many such polls in a row as an outage needs, the probe reports itself
misconfigured for that printer (community, ACL), once per change.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from typing import Any

#: RFC 2790 hrPrinterDetectedErrorState, bit 0 = most significant bit of the first octet.
ERROR_BITS = (
    "lowPaper",
    "noPaper",
    "lowToner",
    "noToner",
    "doorOpen",
    "jammed",
    "offline",
    "serviceRequested",
    "inputTrayMissing",
    "outputTrayMissing",
    "markerSupplyMissing",
    "outputNearFull",
    "outputFull",
    "inputTrayEmpty",
    "overduePreventMaint",
)
#: Conditions that stop a printer from printing (reported as printer.error).
ERROR_CONDITIONS = frozenset(
    {
        "noPaper",
        "noToner",
        "doorOpen",
        "offline",
        "serviceRequested",
        "inputTrayMissing",
        "outputTrayMissing",
        "markerSupplyMissing",
        "outputFull",
        "deviceDown",
    }
)
#: prtAlertCode values worth naming (Printer MIB).
ALERT_CODES = {8: "jammed", 1101: "noToner", 1104: "lowToner", 808: "noPaper", 22: "offline", 3: "doorOpen"}
DEVICE_DOWN = 5
LOW_TONER_SET, LOW_TONER_CLEAR = 10, 20


@dataclass(frozen=True)
class Policy:
    offline_after: int = 3
    online_after: int = 2


@dataclass(frozen=True)
class Reading:
    """One poll of one printer."""

    answered: bool  # SNMP answered
    response_time_ms: float | None = None
    #: Not answered, yet the printer is there: a print port (9100/631) accepted a
    #: connection, or SNMPv3 refused our credentials. A probe problem, not an outage.
    present: bool = False
    device_status: int | None = None
    conditions: frozenset[str] = frozenset()
    toner_percent: int | None = None
    #: Fields whose answer could not be understood (kept for the log, never fatal).
    malformed: tuple[str, ...] = ()


def error_bits(value: bytes) -> frozenset[str]:
    """hrPrinterDetectedErrorState: missing octets are zero, extra octets ignored."""
    octets = (bytes(value) + b"\0\0")[:2]
    bits = int.from_bytes(octets, "big")
    return frozenset(name for i, name in enumerate(ERROR_BITS) if bits & (1 << (15 - i)))


def toner_percent(level: int, capacity: int) -> int | None:
    """Level as a percentage of capacity; None when the printer does not say (-1, -2, -3)."""
    if capacity <= 0 or level < 0:
        return None
    return max(0, min(100, round(100 * level / capacity)))


def decode(values: Mapping[str, Any], response_time_ms: float) -> Reading:
    """A Reading from the raw values of a poll: ``device_status``, ``error_state`` (bytes),
    ``toner_level``/``toner_capacity``, ``alert_codes``. Anything of the wrong type is
    noted in ``malformed`` and ignored."""
    malformed: list[str] = []

    def integer(name: str) -> int | None:
        value = values.get(name)
        if value is None:
            return None
        try:
            return int(value)
        except (TypeError, ValueError):
            malformed.append(name)
            return None

    conditions: set[str] = set()
    device = integer("device_status")
    if device == DEVICE_DOWN:
        conditions.add("deviceDown")
    state = values.get("error_state")
    if isinstance(state, (bytes, bytearray)):
        conditions |= error_bits(state)
    elif state is not None:
        malformed.append("error_state")
    for code in values.get("alert_codes") or ():
        try:
            name = ALERT_CODES.get(int(code))
        except (TypeError, ValueError):
            malformed.append("alert_codes")
            continue
        if name:
            conditions.add(name)
    level, capacity = integer("toner_level"), integer("toner_capacity")
    toner = toner_percent(level, capacity) if level is not None and capacity is not None else None
    return Reading(
        True,
        round(response_time_ms, 2),
        device_status=device,
        conditions=frozenset(conditions),
        toner_percent=toner,
        malformed=tuple(malformed),
    )


@dataclass
class PrinterHealth:
    """The probe's memory of one printer; JSON-serialisable (``to_dict``/``from_dict``)."""

    status: str = "unknown"  # unknown, online, offline
    failures: int = 0
    successes: int = 0
    errors: list[str] = field(default_factory=list)  # error conditions last reported
    jammed: bool = False
    low_toner: bool = False
    unanswered: int = 0  # consecutive polls SNMP left unanswered while a print port was open
    misconfigured: bool = False

    def observe(self, reading: Reading, policy: Policy = Policy()) -> list[tuple[str, dict[str, Any]]]:
        """Fold one reading in; return (event_type, payload fields) for each change."""
        if not reading.answered:
            return self._failed(reading, policy)
        events: list[tuple[str, dict[str, Any]]] = []
        self.failures, self.unanswered, self.misconfigured = 0, 0, False
        seen = {"response_time_ms": reading.response_time_ms, "conditions": sorted(reading.conditions)}
        if reading.toner_percent is not None:
            seen["toner_level_percent"] = reading.toner_percent
        if self.status == "offline":
            self.successes += 1
            if self.successes < policy.online_after:
                return []
            self.status, self.successes = "online", 0
            events.append(("printer.online", {**seen, "consecutive_failures": 0}))
        elif self.status == "unknown":
            self.status = "online"
        events += self._conditions(reading, seen)
        return events

    def _failed(self, reading: Reading, policy: Policy) -> list[tuple[str, dict[str, Any]]]:
        self.successes = 0
        if reading.present:  # the printer is there; SNMP is not answering us
            self.unanswered += 1
            if self.misconfigured or self.unanswered < policy.offline_after:
                return []
            self.misconfigured = True
            return [("probe.misconfigured", {})]
        self.failures += 1
        if self.status != "offline" and self.failures >= policy.offline_after:
            self.status = "offline"
            return [("printer.offline", {"consecutive_failures": self.failures})]
        return []

    def _conditions(self, reading: Reading, seen: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
        events: list[tuple[str, dict[str, Any]]] = []
        jammed = "jammed" in reading.conditions
        if jammed and not self.jammed:
            events.append(("printer.jam", seen))
        self.jammed = jammed
        toner = reading.toner_percent
        if toner is not None:
            if not self.low_toner and toner <= LOW_TONER_SET:
                self.low_toner = True
                events.append(("printer.low_toner", seen))
            elif self.low_toner and toner >= LOW_TONER_CLEAR:
                self.low_toner = False
        errors = sorted(reading.conditions & ERROR_CONDITIONS)
        if errors != self.errors:
            if errors:
                events.append(("printer.error", {**seen, "error_code": errors[0], "error_message": ", ".join(errors)}))
            elif self.status == "online":
                events.append(("printer.online", {**seen, "consecutive_failures": 0}))
            self.errors = errors
        return events

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PrinterHealth:
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        return replace(cls(), **known)
