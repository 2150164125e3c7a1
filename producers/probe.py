"""The health probe: polls every printer of its inventory once per interval and emits
printer.offline / online / jam / low_toner / error events when something changes.

::

    probe = Probe(load_inventory("printers.csv"), emit=producer_emitter(producer))
    await probe.run(stop)              # or: continuum-events probe --inventory printers.csv

Per sweep, polls are spread evenly over ``spread`` × ``interval_s`` with at most
``concurrency`` in flight (beyond ~200 a process saturates and times out falsely), each
printer's reading folded into its :class:`~producers.health.PrinterHealth`. The health
of every printer, and the printers added or removed live, are saved after each sweep
(atomically) and read back at start, so a restarted probe neither forgets an outage nor
re-announces one. With ``follow``, the probe reads printer.added / printer.removed from
``printer-events`` (its own consumer group, so nothing added while it was down is
missed) and polls an added printer from the next sweep on. ``shards`` processes split a
fleet by printer id.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from continuum_events.producers.health import Policy, PrinterHealth, Reading
from continuum_events.producers.inventory import PrinterEntry, from_added_event, shard_of
from continuum_events.producers.snmp import Poller, Timing

log = logging.getLogger(__name__)
SOURCE = "health-probe"
#: (event type, payload, details) -> None
Emit = Callable[[str, dict[str, Any], dict[str, str]], None]


@dataclass(frozen=True)
class ProbeConfig:
    interval_s: float = 60.0
    spread: float = 0.9  # polls spread over this fraction of the interval
    concurrency: int = 150
    policy: Policy = field(default_factory=Policy)
    timing: Timing = field(default_factory=Timing)
    state_path: Path | None = None
    shard: int = 0
    shards: int = 1
    #: SNMP settings for printers added live (printer.added carries no community).
    defaults: Mapping[str, Any] = field(default_factory=dict)


@dataclass
class SweepStats:
    printers: int = 0
    seconds: float = 0.0
    cpu_seconds: float = 0.0
    answered: int = 0
    events: Counter[str] = field(default_factory=Counter)


class Probe:
    def __init__(
        self,
        printers: Iterable[PrinterEntry],
        emit: Emit,
        config: ProbeConfig = ProbeConfig(),
        poller: Poller | None = None,
    ) -> None:
        self.config, self.emit = config, emit
        self.poller = poller or Poller(config.timing)
        self.printers: dict[str, PrinterEntry] = {}
        self.health: dict[str, PrinterHealth] = {}
        self._added: dict[str, dict[str, Any]] = {}
        self._removed: set[str] = set()
        self._changes: list[tuple[str, Mapping[str, Any]]] = []
        self._lock = threading.Lock()
        self._warned: set[tuple[str, tuple[str, ...]]] = set()
        for printer in printers:
            self._keep(printer)
        self._load_state()

    # -- inventory -------------------------------------------------------------------
    def _keep(self, printer: PrinterEntry) -> None:
        if shard_of(printer.id, self.config.shards) == self.config.shard:
            self.printers[printer.id] = printer
            self.health.setdefault(printer.id, PrinterHealth())

    def printer_event(self, event_type: str, payload: Mapping[str, Any]) -> None:
        """A printer.added / printer.removed seen on the topic (any thread); applied at the next sweep."""
        with self._lock:
            self._changes.append((event_type, payload))

    def pending_changes(self) -> int:
        """Printer changes heard and not applied yet (they apply at the next sweep)."""
        with self._lock:
            return len(self._changes)

    def _apply_changes(self) -> None:
        with self._lock:
            changes, self._changes = self._changes, []
        for event_type, payload in changes:
            printer_id = payload.get("printer_id")
            if event_type == "printer.removed" and printer_id in self.printers:
                self.poller.forget(self.printers.pop(printer_id).target())
                self.health.pop(printer_id, None)
                self._removed.add(printer_id)
                self._added.pop(printer_id, None)
                log.info("printer %s removed: no longer probed", printer_id)
            elif event_type == "printer.added" and printer_id not in self.printers:
                try:
                    entry = from_added_event(payload, self.config.defaults)
                except ValueError as exc:
                    log.warning("printer.added for %s cannot be probed: %s", printer_id, exc)
                    continue
                if entry is None:
                    log.warning("printer.added for %s has no address: not probed", printer_id)
                    continue
                self._removed.discard(entry.id)
                self._keep(entry)
                if entry.id in self.printers:
                    self._added[entry.id] = entry.model_dump(mode="json")
                    log.info("printer %s added: probed from this sweep on", entry.id)

    # -- polling ---------------------------------------------------------------------
    async def sweep(self, window_s: float | None = None) -> SweepStats:
        """Poll every printer once, spread over ``window_s`` (default: spread × interval)."""
        self._apply_changes()
        printers = list(self.printers.values())
        window = self.config.spread * self.config.interval_s if window_s is None else window_s
        stats, loop = SweepStats(printers=len(printers)), asyncio.get_running_loop()
        started, cpu = loop.time(), time.process_time()
        gate = asyncio.Semaphore(self.config.concurrency)

        async def one(i: int, printer: PrinterEntry) -> None:
            delay = started + window * i / max(1, len(printers)) - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            async with gate:
                reading = await self.poller.poll(printer.target())
            stats.answered += reading.answered
            for kind in self.observe(printer, reading):
                stats.events[kind] += 1

        await asyncio.gather(*(one(i, p) for i, p in enumerate(printers)))
        stats.seconds, stats.cpu_seconds = loop.time() - started, time.process_time() - cpu
        self.save_state()
        return stats

    def observe(self, printer: PrinterEntry, reading: Reading) -> list[str]:
        """Fold a reading into the printer's health and emit what changed."""
        health = self.health.setdefault(printer.id, PrinterHealth())
        if reading.malformed and (printer.id, reading.malformed) not in self._warned:
            self._warned.add((printer.id, reading.malformed))
            log.warning("printer %s: unreadable SNMP answer for %s; ignored", printer.id, ", ".join(reading.malformed))
        kinds = []
        for kind, fields in health.observe(reading, self.config.policy):
            if kind == "probe.misconfigured":
                self.emit(
                    "system.warning",
                    {
                        "component": SOURCE,
                        "error_code": "snmp_unanswered",
                        "message": f"printer {printer.id} ({printer.ip}) accepts print connections but does not answer "
                        f"SNMP: check the probe's community/version or the printer's SNMP access list",
                    },
                    {"printer_id": printer.id},
                )
                kind = "system.warning"
            else:
                self.emit(kind, {**printer.event_fields(), **fields}, {})
            kinds.append(kind)
        return kinds

    async def run(self, stop: asyncio.Event, on_sweep: Callable[[SweepStats], None] | None = None) -> None:
        loop = asyncio.get_running_loop()
        while not stop.is_set():
            begun = loop.time()
            stats = await self.sweep()
            log.info(
                "sweep: %d printers in %.1f s (%.2f CPU s), %d answered, events %s",
                stats.printers,
                stats.seconds,
                stats.cpu_seconds,
                stats.answered,
                dict(stats.events) or "none",
            )
            if on_sweep:
                on_sweep(stats)
            try:
                await asyncio.wait_for(stop.wait(), max(0.0, begun + self.config.interval_s - loop.time()))
            except TimeoutError:
                pass
        self.save_state()

    # -- state across restarts ---------------------------------------------------------
    def save_state(self) -> None:
        path = self.config.state_path
        if path is None:
            return
        state = {
            "health": {k: v.to_dict() for k, v in self.health.items()},
            "added": self._added,
            "removed": sorted(self._removed),
        }
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_suffix(".tmp")
        temporary.write_text(json.dumps(state))
        os.replace(temporary, path)

    def _load_state(self) -> None:
        path = self.config.state_path
        if path is None or not path.exists():
            return
        try:
            state = json.loads(path.read_text())
        except ValueError:
            log.error("probe state %s is unreadable; starting afresh", path)
            return
        for printer_id in state.get("removed", []):
            self.printers.pop(printer_id, None)
            self._removed.add(printer_id)
        for entry in state.get("added", {}).values():
            self._keep(PrinterEntry.model_validate(entry))
            self._added[entry["id"]] = entry
        for printer_id, health in state.get("health", {}).items():
            if printer_id in self.printers:
                self.health[printer_id] = PrinterHealth.from_dict(health)
        log.info("probe state read back: %d printers", len(self.health))

    def close(self) -> None:
        self.save_state()
        self.poller.close()


def producer_emitter(producer: Any) -> Emit:
    """Emit through an :class:`~producers.app.EventProducer` (keyed by printer, spooled on outage)."""

    def emit(event_type: str, payload: dict[str, Any], details: dict[str, str]) -> None:
        producer.dispatch(event_type, payload, source=SOURCE, details=details or None)

    return emit


def follow_printer_changes(settings: Any, probe: Probe, stop: threading.Event, group_id: str) -> None:
    """Feed printer.added / printer.removed from ``printer-events`` to the probe until ``stop``.

    Its own consumer group: offsets committed, so changes made while the probe was down
    are read when it comes back. A record that cannot be decoded is skipped here (the
    router dead-letters it)."""
    from confluent_kafka import Consumer

    from continuum_events.codec import DecodeError, EventCodec
    from continuum_events.topology import EVENTS_TOPIC

    codec = EventCodec(settings.schema_registry())
    consumer = Consumer(
        settings.client_config(
            **{
                "group.id": group_id,
                "auto.offset.reset": "latest",
                "enable.auto.commit": True,
                "fetch.wait.max.ms": 100,
            }
        )
    )
    consumer.subscribe([EVENTS_TOPIC])
    try:
        while not stop.is_set():
            for msg in consumer.consume(500, 0.5):
                if msg.error():
                    continue
                try:
                    event = codec.decode(msg.value(), msg.topic(), msg.partition(), msg.offset())
                except DecodeError:
                    continue
                if event.event_type.value in ("printer.added", "printer.removed"):
                    probe.printer_event(event.event_type.value, event.payload)
    finally:
        consumer.close()
