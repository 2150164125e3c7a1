"""A simulated Continuum: a fleet of printers whose life produces realistic events.

Used by ``make run`` so a newcomer sees the pipeline move before any real system is
attached. The fleet is a small state machine (printers go offline and come back,
toner runs down and is replaced, redirects are created while a printer is down), so
the stream has the shape of a real one: mostly jobs, some health changes, rare
errors, and every offline eventually followed by an online::

    fleet = DemoFleet(printers=60, seed=7)
    event_type, payload, severity = fleet.next_event()
"""

from __future__ import annotations

import logging
import random
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from continuum_events.events import EventType
from continuum_events.producers.app import EventProducer

log = logging.getLogger(__name__)

SITES = [
    ("HQ-1F", "Finance"),
    ("HQ-2F", "Engineering"),
    ("HQ-3F", "Legal"),
    ("Warehouse", "Logistics"),
    ("Branch-North", "Sales"),
    ("Branch-South", "Support"),
]
MODELS = ["HP LaserJet M507", "Brother HL-L6400DW", "Canon imageRUNNER C3226", "Lexmark MS826", "Xerox VersaLink C405"]
USERS = ["alice", "bob", "chen", "dana", "eve", "farid", "grace"]


@dataclass
class _Printer:
    printer_id: str
    name: str
    ip: str
    model: str
    location: str
    department: str
    online: bool = True
    failures: int = 0
    toner: int = 100
    redirect_id: str | None = None

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
class DemoFleet:
    printers: int = 60
    seed: int | None = None
    _rng: random.Random = field(init=False)
    _fleet: list[_Printer] = field(init=False)
    _jobs: int = field(default=0, init=False)

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)
        self._fleet = []
        for i in range(self.printers):
            site, dept = SITES[i % len(SITES)]
            self._fleet.append(
                _Printer(
                    printer_id=f"prn-{i:04d}",
                    name=f"{site}-{dept[:3].upper()}-{i:02d}",
                    ip=f"10.20.{i // 200}.{10 + i % 200}",
                    model=self._rng.choice(MODELS),
                    location=site,
                    department=dept,
                    toner=self._rng.randint(15, 100),
                )
            )

    def next_event(self) -> tuple[EventType, dict[str, Any], str | None]:
        """The next thing that happens in the fleet: (event type, payload, severity or None)."""
        rng, p = self._rng, self._rng.choice(self._fleet)
        roll = rng.random()
        if p.online and p.redirect_id:  # back online: its redirect is no longer needed
            return self._redirect_removed(p)
        if not p.online:
            if roll < 0.35:
                p.online, p.failures = True, 0
                return (
                    EventType.PRINTER_ONLINE,
                    {**p.identity(), "response_time_ms": round(rng.uniform(3, 40), 1)},
                    None,
                )
            if roll < 0.5 and not p.redirect_id:
                return self._redirect_created(p)
            if roll < 0.53 and p.redirect_id:
                return (
                    EventType.REDIRECT_FAILED,
                    {
                        **self._redirect(p),
                        "error_code": "TARGET_UNREACHABLE",
                        "error_message": "target printer did not accept the job",
                    },
                    None,
                )
        if roll < 0.02 and p.online:
            p.online, p.failures = False, 3
            return (
                EventType.PRINTER_OFFLINE,
                {**p.identity(), "consecutive_failures": 3, "response_time_ms": 5000.0},
                None,
            )
        if roll < 0.04:
            p.toner = max(0, p.toner - rng.randint(5, 20))
            if p.toner <= 10:
                return (
                    EventType.PRINTER_LOW_TONER,
                    {**p.identity(), "toner_level_percent": p.toner, "conditions": ["toner_low"]},
                    None,
                )
        if roll < 0.05:
            return EventType.PRINTER_JAM, {**p.identity(), "conditions": ["jammed"]}, None
        if roll < 0.055:
            return (
                EventType.PRINTER_ERROR,
                {**p.identity(), "error_code": "DOOR_OPEN", "error_message": "Cover open", "conditions": ["door_open"]},
                None,
            )
        if roll < 0.06:
            p.toner = 100
            return EventType.SYSTEM_INFO, {"component": "supplies", "message": f"toner replaced in {p.name}"}, None
        if roll < 0.063:
            return EventType.SYSTEM_WARNING, {"component": "scheduler", "message": "queue depth above 500"}, None
        if roll < 0.064:
            return (
                EventType.SYSTEM_ERROR,
                {
                    "component": "ldap-sync",
                    "error_code": "LDAP_TIMEOUT",
                    "error_message": "directory did not answer within 10 s",
                },
                None,
            )
        if roll < 0.066:
            members = [q.printer_id for q in self._fleet if q.location == p.location]
            return (
                EventType.GROUP_UPDATED,
                {
                    "group_id": f"grp-{p.location.lower()}",
                    "group_name": p.location,
                    "printer_ids": members,
                    "updated_by": rng.choice(USERS),
                },
                None,
            )
        self._jobs += 1
        job = {
            "job_id": f"job-{self._jobs:07d}",
            "printer_id": p.printer_id,
            "printer_name": p.name,
            "user": rng.choice(USERS),
            "document_name": f"report-{self._jobs % 97}.pdf",
            "pages": rng.randint(1, 40),
        }
        if roll < 0.5:
            return EventType.JOB_STARTED, job, None
        if roll < 0.97 or not p.online:
            return EventType.JOB_COMPLETED, {**job, "duration_ms": round(rng.uniform(800, 30_000), 1)}, None
        return EventType.JOB_FAILED, {**job, "error_code": "PAPER_OUT", "error_message": "tray 2 empty"}, None

    def _redirect(self, p: _Printer) -> dict[str, Any]:
        target = next(q for q in self._fleet if q.location == p.location and q is not p) if self.printers > 6 else p
        return {
            "redirect_id": p.redirect_id or "",
            "source_printer_id": p.printer_id,
            "source_printer_name": p.name,
            "source_printer_ip": p.ip,
            "target_printer_id": target.printer_id,
            "target_printer_name": target.name,
            "target_printer_ip": target.ip,
            "protocol": "raw",
            "port": 9100,
        }

    def _redirect_created(self, p: _Printer) -> tuple[EventType, dict[str, Any], str | None]:
        p.redirect_id = f"rdr-{p.printer_id}-{self._rng.randint(1000, 9999)}"
        return EventType.REDIRECT_CREATED, {**self._redirect(p), "created_by": self._rng.choice(USERS)}, None

    def _redirect_removed(self, p: _Printer) -> tuple[EventType, dict[str, Any], str | None]:
        payload = {**self._redirect(p), "removed_by": "auto-recovery"}
        p.redirect_id = None
        return EventType.REDIRECT_REMOVED, payload, None


def run_demo(producer: EventProducer, fleet: DemoFleet, rate: float, stop: threading.Event) -> int:
    """Dispatch ``rate`` events per second until ``stop`` is set; returns how many were sent."""
    sent, started = 0, time.monotonic()
    while not stop.is_set():
        due = int((time.monotonic() - started) * rate) - sent
        for _ in range(min(due, 10_000)):
            event_type, payload, severity = fleet.next_event()
            producer.dispatch(event_type, payload, severity)
            sent += 1
        stop.wait(0.02)
    return sent
