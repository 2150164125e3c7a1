"""Producer benchmark: ``dispatch_event`` versus raw confluent-kafka produce of
pre-encoded bytes, alternating on the same broker, median of several rounds."""

from __future__ import annotations

import statistics
import tempfile
import threading
import time
from pathlib import Path

from confluent_kafka import Producer
from rich.table import Table

from continuum_events.benchmarks import Result
from continuum_events.codec import EventCodec
from continuum_events.events import Event, EventType, Severity, event_key, new_event_id, now_micros
from continuum_events.producers.app import PRODUCER_DEFAULTS, EventProducer
from continuum_events.settings import KafkaSettings
from continuum_events.terminal import console, out
from continuum_events.topology import EVENTS_TOPIC


def _payload(i: int) -> dict:
    n = i % 1000
    return {
        "printer_id": f"prn-{n:04d}",
        "printer_name": f"HQ-FIN-{n:03d}",
        "printer_ip": f"10.20.{n // 250}.{n % 250}",
        "printer_location": "HQ-1F",
        "printer_department": "Finance",
        "consecutive_failures": 3,
        "response_time_ms": 5000.0,
    }


def _raw_rate(settings: KafkaSettings, values: list[tuple[bytes, bytes]]) -> float:
    """Baseline: confluent-kafka producing pre-encoded bytes, same settings, its own poll thread."""
    producer = Producer(settings.client_config(**{k: v for k, v in PRODUCER_DEFAULTS.items()}))
    stop = threading.Event()
    poller = threading.Thread(target=lambda: [producer.poll(0.05) for _ in iter(stop.is_set, True)], daemon=True)
    poller.start()
    started = time.perf_counter()
    for key, value in values:
        while True:
            try:
                producer.produce(EVENTS_TOPIC, value, key)
                break
            except BufferError:
                time.sleep(0.001)
    producer.flush(60)
    elapsed = time.perf_counter() - started
    stop.set()
    poller.join()
    return len(values) / elapsed


def _dispatch_rate(settings: KafkaSettings, events: int) -> float:
    """Subject: dispatch_event end to end (enrich, validate, encode, key, produce, acknowledged)."""
    with EventProducer(settings, spool_path=Path(tempfile.mkdtemp(prefix="bench-")) / "spool.db") as producer:
        payloads = [_payload(i) for i in range(1000)]
        started = time.perf_counter()
        for i in range(events):
            producer.dispatch(EventType.PRINTER_OFFLINE, payloads[i % 1000], "warning")
        producer.flush(60)
        elapsed = time.perf_counter() - started
        assert producer.stats().delivered == events, producer.stats()
    return events / elapsed


def measure(settings: KafkaSettings, events: int, rounds: int) -> Result:
    """Alternate baseline and subject ``rounds`` times; print each round, the medians and the ratio."""
    codec = EventCodec()
    values = []
    for i in range(events):
        data = _payload(i)
        event = Event(new_event_id(), EventType.PRINTER_OFFLINE, Severity.WARNING, now_micros(), data)
        values.append((event_key("printer", data).encode(), codec.encode(event, EVENTS_TOPIC)))
    raw, ours = [], []
    for r in range(rounds):
        raw.append(_raw_rate(settings, values))
        ours.append(_dispatch_rate(settings, events))
        console.print(f"round {r + 1}: raw {raw[-1]:,.0f}/s, dispatch_event {ours[-1]:,.0f}/s")
    table = Table("path", "median events/s", "rounds", title=f"producer benchmark, {events:,} events per round")
    table.add_row(
        "raw confluent-kafka produce (pre-encoded)",
        f"{statistics.median(raw):,.0f}",
        ", ".join(f"{x:,.0f}" for x in raw),
    )
    table.add_row("dispatch_event", f"{statistics.median(ours):,.0f}", ", ".join(f"{x:,.0f}" for x in ours))
    out.print(table)
    rate, baseline = statistics.median(ours), statistics.median(raw)
    met = rate >= 100_000 and rate / baseline >= 0.25
    out.print(
        f"ratio dispatch_event / raw = {rate / baseline:.2f}  "
        f"({'meets' if met else 'MISSES'} the target: >= 100,000/s and >= 0.25)"
    )
    return Result("dispatch_event", rate, "raw produce", baseline, met)
