"""The rule engine: which events reach which category and integration, and in what shape.

Plain functions over immutable data, no Kafka: the router uses them to route each
event into category topics, the connectors use the same functions for their
per-integration filters and transforms. Rules are data (JSON in the config topic)::

    rule = Rule(name="finance-pages", category="alerting", event_types=("printer.*",),
                min_severity="error", where={"printer_department": ("Finance",)}, mask=("printer_ip",))
    rules = RuleSet.of([rule])
    for decision in route(event, rules):
        decision.category, decision.rule.name, decision.event     # the event after transforms

Semantics, in the spirit of Alertmanager's routing tree: within a category the rules
are tried in (priority, name) order and the **first** enabled rule that matches
decides — its name travels with the event and its transforms apply. A category with
no routing rule at all in the configuration falls back to its built-in default, so
a fresh installation routes exactly as Continuum always did.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import functools
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from continuum_events.events import PAYLOAD_RECORDS, SEVERITY_RANK, Event, EventType
from continuum_events.topology import CATEGORIES

Category = Literal["logging", "monitoring", "alerting"]
MASK = "***"
ENVELOPE_FIELDS = ("event_type", "severity", "source")
_KNOWN_TYPES = tuple(t.value for t in EventType if t is not EventType.UNKNOWN)
_PAYLOAD_FIELDS: dict[str, dict[str, Any]] = {}
for _record in PAYLOAD_RECORDS.values():
    for _f in _record["fields"]:
        _PAYLOAD_FIELDS.setdefault(_f["name"], _f)
#: Payload fields that some family requires: they can be masked, never dropped.
_REQUIRED = {f["name"] for r in PAYLOAD_RECORDS.values() for f in r["fields"] if "default" not in f}


class RuleError(ValueError):
    """A rule that cannot be applied to an event (the event goes to the dead-letter topic)."""


def _check_field(name: str) -> str:
    if name in ENVELOPE_FIELDS or name in _PAYLOAD_FIELDS or (name.startswith("details.") and len(name) > 8):
        return name
    raise ValueError(
        f"unknown field {name!r}: use an envelope field ({', '.join(ENVELOPE_FIELDS)}), a payload field "
        f"(e.g. printer_department) or details.<key>"
    )


def listify_where(where: Any) -> Any:
    """``{"printer_department": "Finance"}`` -> ``{"printer_department": ("Finance",)}``."""
    if isinstance(where, Mapping):
        return {k: (v,) if isinstance(v, str) else v for k, v in where.items()}
    return where


class Rule(BaseModel):
    """One routing rule (``integration`` unset) or one integration's filter (set)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,99}$", description="Unique; shown in output headers.")
    category: Category = Field(description="logging, monitoring or alerting.")
    integration: str | None = Field(None, description="Set: a filter for that integration only.")
    event_types: tuple[str, ...] = Field(("*",), description="Exact types or patterns such as printer.*")
    min_severity: Literal["info", "warning", "error", "critical"] = Field("info", description="Severity floor.")
    where: dict[str, tuple[str, ...]] = Field(
        default_factory=dict, description="field -> allowed values; all must hold."
    )
    drop: tuple[str, ...] = Field((), description="Fields removed from the event.")
    mask: tuple[str, ...] = Field((), description=f"Fields replaced by {MASK!r}.")
    priority: int = Field(100, description="Lower is tried first.")
    enabled: bool = True

    @field_validator("event_types")
    @classmethod
    def _types_exist(cls, patterns: tuple[str, ...]) -> tuple[str, ...]:
        if not patterns:
            raise ValueError("event_types is empty: the rule could never match (use enabled=false to turn it off)")
        for p in patterns:
            if not fnmatch.filter(_KNOWN_TYPES, p):
                raise ValueError(f"event type pattern {p!r} matches no event type")
        return patterns

    @field_validator("where", mode="before")
    @classmethod
    def _listify(cls, where: Any) -> Any:
        return listify_where(where)

    @model_validator(mode="after")
    def _fields_exist(self) -> Rule:
        for name in (*self.where, *self.drop, *self.mask):
            _check_field(name)
        for name in self.drop:
            if name in ENVELOPE_FIELDS or name in _REQUIRED:
                raise ValueError(f"cannot drop {name!r}: the schema requires it (mask it instead)")
        for name in self.mask:
            if name in ENVELOPE_FIELDS:
                raise ValueError(f"cannot mask the envelope field {name!r}")
        return self

    @property
    def key(self) -> str:
        return f"rule/{self.name}"

    def _pattern(self) -> re.Pattern[str]:
        return re.compile("|".join(fnmatch.translate(p) for p in self.event_types))


@dataclass(frozen=True)
class _Compiled:
    rule: Rule
    types: re.Pattern[str]
    floor: int


@dataclass(frozen=True)
class RuleSet:
    """An immutable snapshot of every rule, indexed for routing."""

    rules: tuple[Rule, ...] = ()
    _routing: Mapping[str, tuple[_Compiled, ...]] = dataclasses.field(default_factory=dict)
    _filters: Mapping[str, tuple[_Compiled, ...]] = dataclasses.field(default_factory=dict)
    builtin: frozenset[str] = frozenset()

    @classmethod
    def of(cls, rules: Iterable[Rule], defaults: bool = True) -> RuleSet:
        rules = tuple(sorted(rules, key=lambda r: (r.priority, r.name)))
        routing = {c: [r for r in rules if r.category == c and r.integration is None] for c in CATEGORIES}
        builtin = set()
        if defaults:
            for c in CATEGORIES:
                if not routing[c]:
                    routing[c] = [default_rule(c)]
                    builtin.add(c)
        filters: dict[str, list[Rule]] = {}
        for r in rules:
            if r.integration is not None:
                filters.setdefault(r.integration, []).append(r)

        def compile_all(rs: list[Rule]) -> tuple[_Compiled, ...]:
            return tuple(_Compiled(r, r._pattern(), SEVERITY_RANK[r.min_severity]) for r in rs)

        return cls(
            rules,
            {c: compile_all(rs) for c, rs in routing.items()},
            {i: compile_all(rs) for i, rs in filters.items()},
            frozenset(builtin),
        )

    def routing_rules(self, category: str) -> tuple[Rule, ...]:
        return tuple(c.rule for c in self._routing.get(category, ()))


@dataclass(frozen=True)
class Decision:
    """An event routed to ``category`` (or accepted by ``integration``) by ``rule``."""

    category: str
    rule: Rule
    event: Event
    transformed: bool


# -- the built-in defaults: Continuum's historical routing, plus what state needs -------
DEFAULT_EVENT_TYPES: dict[str, tuple[str, ...]] = {
    # Logging tools receive every operational event.
    "logging": ("*",),
    # Continuum's health and error events, plus the printer facts a metrics model needs
    # (toner, jams, a removed printer's series deleted).
    "monitoring": (
        "printer.offline",
        "printer.online",
        "printer.error",
        "redirect.failed",
        "system.error",
        "system.warning",
        "printer.low_toner",
        "printer.jam",
        "printer.removed",
    ),
    # What should wake someone, plus the events that clear it (resolve signals: an
    # incident opens once and closes by itself; see connectors/incidents.py).
    "alerting": (
        "printer.offline",
        "printer.error",
        "redirect.failed",
        "system.error",
        "system.critical",
        "printer.online",
        "redirect.removed",
        "system.info",
    ),
}


@functools.cache
def default_rule(category: str) -> Rule:
    return Rule(name=f"{category}-default", category=category, event_types=DEFAULT_EVENT_TYPES[category], priority=1000)


# -- evaluation ---------------------------------------------------------------------------
def field_value(event: Event, name: str) -> Any:
    if name == "event_type":
        return event.event_type.value
    if name == "severity":
        return event.severity.value
    if name == "source":
        return event.source
    if name.startswith("details."):
        return event.details.get(name[8:])
    return event.payload.get(name)


def why_not(compiled: _Compiled, event: Event) -> str | None:
    """None when the rule matches the event, else the reason it does not."""
    rule = compiled.rule
    if not rule.enabled:
        return "rule disabled"
    if not compiled.types.fullmatch(event.event_type.value):
        return f"event type {event.event_type.value} not in {', '.join(rule.event_types)}"
    if SEVERITY_RANK[event.severity.value] < compiled.floor:
        return f"severity {event.severity.value} below {rule.min_severity}"
    for name, allowed in rule.where.items():
        value = field_value(event, name)
        if value is None or str(value) not in allowed:
            return f"{name} is {value!r}, not one of {', '.join(allowed)}"
    return None


def transform(rule: Rule, event: Event) -> Event:
    """The event after the rule's drop and mask transforms (the same event if none)."""
    if not rule.drop and not rule.mask:
        return event
    payload, details = dict(event.payload), dict(event.details)
    for name in rule.drop:
        if name.startswith("details."):
            details.pop(name[8:], None)
        elif name in payload:
            default = _PAYLOAD_FIELDS[name].get("default")
            payload[name] = list(default) if isinstance(default, list) else default
    for name in rule.mask:
        if name.startswith("details."):
            if name[8:] in details:
                details[name[8:]] = MASK
        elif payload.get(name) is not None:
            value = payload[name]
            if isinstance(value, str):
                payload[name] = MASK
            elif isinstance(value, list):
                payload[name] = [MASK for _ in value]
            elif name in _REQUIRED:
                raise RuleError(f"rule {rule.name}: cannot mask required non-text field {name!r}")
            else:
                payload[name] = None
    return dataclasses.replace(event, payload=payload, details=details)


def _first_match(compiled: tuple[_Compiled, ...], event: Event) -> Rule | None:
    for c in compiled:
        if why_not(c, event) is None:
            return c.rule
    return None


def route(event: Event, rules: RuleSet) -> list[Decision]:
    """Every category the event reaches, with the deciding rule and the transformed event."""
    decisions = []
    for category in CATEGORIES:
        rule = _first_match(rules._routing.get(category, ()), event)
        if rule is not None:
            out = transform(rule, event)
            decisions.append(Decision(category, rule, out, out is not event))
    return decisions


def filter_for_integration(event: Event, rules: RuleSet, integration: str, category: str) -> Decision | None:
    """The integration's own filter: None to skip the event. No filter rules: accept as is."""
    compiled = rules._filters.get(integration, ())
    if not compiled:
        return Decision(category, default_rule(category), event, False)
    rule = _first_match(compiled, event)
    if rule is None:
        return None
    out = transform(rule, event)
    return Decision(category, rule, out, out is not event)


@dataclass(frozen=True)
class Verdict:
    category: str
    rule: str
    matched: bool
    reason: str
    integration: str | None = None


def explain(event: Event, rules: RuleSet, integrations: Mapping[str, str] | None = None) -> list[Verdict]:
    """Every rule tried, in order, with why it matched or not — for ``rules test``.

    ``integrations`` maps each connected integration to its category.
    """
    verdicts: list[Verdict] = []
    reached = set()
    for category in CATEGORIES:
        for c in rules._routing.get(category, ()):
            reason = why_not(c, event)
            builtin = " (built-in default)" if category in rules.builtin else ""
            verdicts.append(Verdict(category, c.rule.name + builtin, reason is None, reason or "matches"))
            if reason is None:
                reached.add(category)
                break
    for integration, category in sorted((integrations or {}).items()):
        if category not in reached:
            verdicts.append(Verdict(category, "-", False, f"category {category} not reached", integration))
            continue
        compiled = rules._filters.get(integration, ())
        if not compiled:
            verdicts.append(Verdict(category, "-", True, "no filter: receives its whole category", integration))
        for c in compiled:
            reason = why_not(c, event)
            verdicts.append(Verdict(category, c.rule.name, reason is None, reason or "matches", integration))
            if reason is None:
                break
    return verdicts


#: No configured rules: every category routes by its built-in default, no filters.
DEFAULTS = RuleSet.of([])
