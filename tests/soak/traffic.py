"""The soak run's traffic: a fleet of printers whose events have the shape of a working day,
dispatched through the app producer at a steady pace.

Most events are jobs (logging only); one percent are printer facts and warnings that
monitoring wants too. On top of that, incidents open and close at a fixed pace, whatever
the event rate: a printer goes offline (or reports an error) and comes back ``hold_s``
later, so every alerting vendor sees a trigger and its resolve. That pace is bounded by
PagerDuty's rate (about 120 events a minute per routing key, 110 in our sink): at
``INCIDENTS_PER_S`` opens a second, triggers plus resolves stay near 84 a minute in any
minute, so the sink's own throttle never has to hold a page back::

    traffic = Traffic(producer, printers=2000, seed=7)
    traffic.play("steady", rate=1000, seconds=1800)
    traffic.play("burst", rate=10_000, seconds=30)

Everything dispatched is recorded (event id -> time, kind, phase), with what each receiver
should show of it: the categories its type is routed to (the default rules), the incident
cycles with their trigger and resolve, the printers' up/down changes a Pushgateway shows,
and the per-type counters it must end with.
"""

from __future__ import annotations

import random
import threading
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Any

from continuum_events.events import Event, EventType, Severity
from continuum_events.producers.app import EventProducer
from continuum_events.rules import DEFAULTS, explain

#: Incident opens per second, whatever the event rate (see the module docstring).
INCIDENTS_PER_S = 0.7
#: The routine traffic: (event type, severity, share per mille). Jobs are nearly all of it;
#: printer facts and warnings (monitoring's share, 1 %) are rare next to them, as in a fleet
#: (at 1,000 events/s over 2,000 printers, each still runs low or jams every four minutes).
#: More would measure the Pushgateway rather than the pipeline: the real gateway takes ~20 ms
#: a push once it holds 2,000 printer groups (measured here), and the sink pushes each printer
#: a batch touches, so ~50 printers a second is its ceiling.
MIX = (
    ("job.started", "info", 440),
    ("job.completed", "info", 440),
    ("job.failed", "warning", 50),
    ("redirect.created", "info", 30),
    ("group.updated", "info", 30),
    ("printer.low_toner", "warning", 4),
    ("printer.jam", "warning", 4),
    ("system.warning", "warning", 2),
)
#: What the incident cycles add: (event type, severity).
CYCLE_KINDS = (
    ("printer.offline", "warning"),
    ("printer.offline", "error"),
    ("printer.offline", "critical"),
    ("printer.error", "error"),
    ("printer.online", "info"),
)
SITES = (
    ("HQ-1F", "Finance"),
    ("HQ-2F", "Engineering"),
    ("HQ-3F", "Legal"),
    ("Warehouse", "Logistics"),
    ("Branch-North", "Sales"),
    ("Branch-South", "Support"),
    ("Branch-East", "Operations"),
)
MODELS = ("HP LaserJet M507", "Brother HL-L6400DW", "Canon imageRUNNER C3226", "Lexmark MS826")
USERS = ("alice", "bob", "chen", "dana", "eve", "farid", "grace", "hiro")
COMPONENTS = ("spooler", "ldap-sync", "scheduler", "license")


def routes(event_type: str, severity: str) -> frozenset[str]:
    """The categories the default rules send this kind of event to."""
    sample = Event(
        "00000000-0000-4000-8000-000000000000",
        EventType(event_type),
        Severity(severity),
        0,
        {
            "printer_id": "p",
            "job_id": "j",
            "redirect_id": "r",
            "source_printer_id": "p",
            "group_id": "g",
            "component": "c",
        },
    )
    return frozenset(v.category for v in explain(sample, DEFAULTS) if v.matched and v.integration is None)


@dataclass(frozen=True)
class Kind:
    event_type: str
    severity: str
    categories: frozenset[str]


KINDS: tuple[Kind, ...] = tuple(Kind(t, s, routes(t, s)) for t, s, *_ in (*MIX, *CYCLE_KINDS))
KIND_INDEX = {(k.event_type, k.severity): i for i, k in enumerate(KINDS)}


@dataclass
class Cycle:
    """One incident: opened by ``trigger``, closed by ``resolve`` (event ids), keyed as the
    connectors key it (connectors/incidents.py)."""

    key: str
    phase: str
    trigger: str
    trigger_us: int
    resolve_at: float  # monotonic time the resolve is due
    resolve: str | None = None
    resolve_us: int | None = None


@dataclass
class _Printer:
    printer_id: str
    name: str
    ip: str
    model: str
    location: str
    department: str
    up: int | None = None  # what a Pushgateway shows (None: never reported up or down)
    busy: bool = False  # in an incident cycle

    def identity(self) -> dict[str, Any]:
        return {
            "printer_id": self.printer_id,
            "printer_name": self.name,
            "printer_ip": self.ip,
            "printer_model": self.model,
            "printer_location": self.location,
            "printer_department": self.department,
        }


@dataclass
class Traffic:
    producer: EventProducer
    printers: int = 2000
    seed: int = 7
    #: event_id -> (timestamp µs, index in KINDS, phase)
    sent: dict[str, tuple[int, int, str]] = field(default_factory=dict)
    cycles: list[Cycle] = field(default_factory=list)
    #: (printer id, event time in s as the Pushgateway sink writes it) -> event id: the
    #: events that change a printer's up gauge, which a gateway shows by their time.
    up_changes: dict[tuple[str, float], str] = field(default_factory=dict)
    #: (event type, severity) -> events routed to monitoring: the gateway's counters.
    monitoring_counts: Counter[tuple[str, str]] = field(default_factory=Counter)
    #: category -> events routed there, and phase -> events dispatched (read while playing).
    routed: Counter[str] = field(default_factory=Counter)
    dispatched: Counter[str] = field(default_factory=Counter)
    #: phase -> (events, seconds it took): the rate actually achieved.
    achieved: dict[str, tuple[int, float]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)
        self._fleet = []
        for i in range(self.printers):
            site, department = SITES[i % len(SITES)]
            self._fleet.append(
                _Printer(
                    f"prn-{i:05d}",
                    f"{site}-{department[:3].upper()}-{i:05d}",
                    f"10.{40 + i // 65_000}.{i // 250 % 250}.{10 + i % 250}",
                    MODELS[i % len(MODELS)],
                    site,
                    department,
                )
            )
        self._slots = [KIND_INDEX[(t, s)] for t, s, share in MIX for _ in range(share)]
        self._jobs = 0
        self._open: deque[tuple[Cycle, _Printer]] = deque()
        self.lock = threading.Lock()

    # -- playing ---------------------------------------------------------------------------
    def play(self, phase: str, rate: float, seconds: float, hold_s: float, stop: threading.Event | None = None) -> None:
        """Dispatch the routine mix at ``rate`` a second for ``seconds``, and incidents at
        INCIDENTS_PER_S, each resolved ``hold_s`` after it opened; none opens later than
        ``hold_s`` before the end, so all are closed when the phase ends."""
        start = time.monotonic()
        end, last_open = start + seconds, start + seconds - hold_s
        sent, next_open = 0, start
        while (now := time.monotonic()) < end and not (stop and stop.is_set()):
            due = int((now - start) * rate)
            for _ in range(due - sent):
                self._routine(phase)
            sent = max(sent, due)
            while self._open and self._open[0][0].resolve_at <= now:
                self._close(*self._open.popleft())
            while next_open <= now and next_open < last_open:
                self._start_cycle(phase, next_open + hold_s)
                next_open += 1 / INCIDENTS_PER_S
            time.sleep(0.002)
        while self._open:  # only when stopped early: leave no incident open
            self._close(*self._open.popleft())
        self.achieved[phase] = (self.dispatched[phase], time.monotonic() - start)

    def prime(self, printer: int = 0) -> tuple[str, str]:
        """One incident on one printer, opened now and closed by :meth:`unprime`: an event
        of every category, to see every receiver reached before the run starts."""
        p = self._fleet[printer]
        self._primer = (Cycle(f"printer/{p.printer_id}/offline", "prime", "", 0, 0.0), p)
        p.busy = True
        cycle = self._primer[0]
        cycle.trigger, cycle.trigger_us = self._dispatch(
            "prime", "printer.offline", "warning", {**p.identity(), "consecutive_failures": 3}, p
        )
        self.cycles.append(cycle)
        return cycle.trigger, cycle.key

    def unprime(self) -> str:
        self._close(*self._primer)
        return self._primer[0].resolve or ""

    # -- what happens ------------------------------------------------------------------------
    def _routine(self, phase: str) -> None:
        rng = self._rng
        kind = KINDS[self._slots[rng.randrange(len(self._slots))]]
        p = self._fleet[rng.randrange(len(self._fleet))]
        t = kind.event_type
        if t.startswith("job."):
            self._jobs += 1
            payload: dict[str, Any] = {
                "job_id": f"job-{self._jobs}",
                "printer_id": p.printer_id,
                "printer_name": p.name,
                "user": USERS[self._jobs % len(USERS)],
                "document_name": f"report-{self._jobs % 977}.pdf",
                "pages": 1 + self._jobs % 40,
            }
            if t == "job.completed":
                payload["duration_ms"] = float(300 + self._jobs % 9000)
            elif t == "job.failed":
                payload.update(error_code="E_DRIVER", error_message="driver rejected the document")
        elif t == "redirect.created":
            target = self._fleet[rng.randrange(len(self._fleet))]
            payload = {
                "redirect_id": f"rd-{self._jobs}-{rng.randrange(10**6)}",
                "source_printer_id": p.printer_id,
                "source_printer_name": p.name,
                "target_printer_id": target.printer_id,
                "target_printer_name": target.name,
                "protocol": "ipp",
                "port": 631,
                "created_by": USERS[rng.randrange(len(USERS))],
            }
        elif t == "group.updated":
            members = [self._fleet[rng.randrange(len(self._fleet))].printer_id for _ in range(3)]
            payload = {
                "group_id": f"grp-{p.location}",
                "group_name": f"{p.location} printers",
                "printer_ids": members,
                "updated_by": USERS[rng.randrange(len(USERS))],
            }
        elif t == "printer.low_toner":
            payload = {**p.identity(), "toner_level_percent": 3 + rng.randrange(8), "conditions": ["toner_low"]}
        elif t == "printer.jam":
            payload = {**p.identity(), "conditions": ["jammed"], "error_message": "paper jam in tray 2"}
        else:  # system.warning
            component = COMPONENTS[rng.randrange(len(COMPONENTS))]
            payload = {"component": component, "message": f"{component} is slow to answer"}
        self._dispatch(phase, t, kind.severity, payload, p if t.startswith("printer.") else None)

    def _start_cycle(self, phase: str, resolve_at: float) -> None:
        rng = self._rng
        p = self._fleet[rng.randrange(len(self._fleet))]
        while p.busy:
            p = self._fleet[rng.randrange(len(self._fleet))]
        p.busy = True
        if rng.random() < 0.8:
            severity = ("warning", "error", "critical")[rng.randrange(3)]
            event_type, payload = "printer.offline", {**p.identity(), "consecutive_failures": 3}
            key = f"printer/{p.printer_id}/offline"
        else:
            severity, event_type = "error", "printer.error"
            payload = {
                **p.identity(),
                "conditions": ["door_open"],
                "error_code": "D01",
                "error_message": "front door open",
            }
            key = f"printer/{p.printer_id}/error"
        cycle = Cycle(key, phase, "", 0, resolve_at)
        cycle.trigger, cycle.trigger_us = self._dispatch(phase, event_type, severity, payload, p)
        self.cycles.append(cycle)
        self._open.append((cycle, p))

    def _close(self, cycle: Cycle, p: _Printer) -> None:
        payload = {**p.identity(), "response_time_ms": round(3 + self._rng.random() * 30, 1)}
        cycle.resolve, cycle.resolve_us = self._dispatch(cycle.phase, "printer.online", "info", payload, p)
        p.busy = False

    def _dispatch(
        self, phase: str, event_type: str, severity: str, payload: dict[str, Any], printer: _Printer | None
    ) -> tuple[str, int]:
        kind_index = KIND_INDEX[(event_type, severity)]
        kind = KINDS[kind_index]
        ts_us = time.time_ns() // 1000
        event_id = self.producer.dispatch(event_type, payload, severity, timestamp_us=ts_us)
        with self.lock:
            self.sent[event_id] = (ts_us, kind_index, phase)
            self.dispatched[phase] += 1
            for category in kind.categories:
                self.routed[category] += 1
            if "monitoring" in kind.categories:
                self.monitoring_counts[(event_type, severity)] += 1
                up = {"printer.online": 1, "printer.offline": 0}.get(event_type)
                if printer is not None and up is not None and up != printer.up:
                    printer.up = up
                    self.up_changes[(printer.printer_id, ts_us / 1_000_000)] = event_id
        return event_id, ts_us
