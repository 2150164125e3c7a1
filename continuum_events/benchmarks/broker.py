"""Broker benchmark: the two local engines side by side in one run — start time, memory,
and the raw confluent-kafka produce and consume ceilings every other figure sits under.

Each engine is started fresh, measured, and stopped before the next starts, so they never
share the cores; Tansu's rates are the in-run baseline Apache Kafka's are divided by.
"""

from __future__ import annotations

import os
import statistics
import time
from dataclasses import dataclass

from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition
from rich.table import Table

from continuum_events.broker import Engine, KafkaBroker, LocalBroker, local_broker
from continuum_events.terminal import console, out
from continuum_events.topology import EVENTS_TOPIC

#: 300-byte values, as BROKER.md measured Tansu with.
VALUE = os.urandom(150).hex().encode()


@dataclass
class BrokerFigures:
    engine: str
    start_s: float
    rss_mb: float
    produce: list[float]
    consume: list[float]
    rss_after_mb: float


def _rss_mb(broker: LocalBroker) -> float:
    if isinstance(broker, KafkaBroker):
        return broker.rss_bytes() / 1e6
    process = getattr(broker, "process", None)
    if process is None:
        return 0.0
    with open(f"/proc/{process.pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1e3
    return 0.0


def _produce(bootstrap: str, events: int) -> float:
    producer = Producer(
        {
            "bootstrap.servers": bootstrap,
            "acks": "all",
            "enable.idempotence": True,
            "linger.ms": 5,
            "compression.type": "lz4",
            "queue.buffering.max.messages": 1_000_000,
        }
    )
    started = time.perf_counter()
    for i in range(events):
        while True:
            try:
                producer.produce(EVENTS_TOPIC, VALUE, str(i % 1000).encode())
                break
            except BufferError:
                producer.poll(0.001)
        if i % 10_000 == 0:
            producer.poll(0)
    left = producer.flush(120)
    if left:
        raise RuntimeError(f"{left} records not acknowledged within 120 s")
    return events / (time.perf_counter() - started)


def _consume(bootstrap: str, expect: int) -> float:
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": "bench-broker",
            "enable.auto.commit": False,
            "fetch.max.bytes": 50 << 20,
            "max.partition.fetch.bytes": 8 << 20,
        }
    )
    try:
        partitions = consumer.list_topics(EVENTS_TOPIC, timeout=10).topics[EVENTS_TOPIC].partitions
        consumer.assign([TopicPartition(EVENTS_TOPIC, p, OFFSET_BEGINNING) for p in partitions])
        got, started = 0, time.perf_counter()
        deadline = started + 120
        while got < expect and time.perf_counter() < deadline:
            got += sum(1 for m in consumer.consume(10_000, 0.5) if m.error() is None)
        if got < expect:
            raise RuntimeError(f"read {got:,} of {expect:,} records within 120 s")
        return got / (time.perf_counter() - started)
    finally:
        consumer.close()


def _measure_engine(engine: Engine, events: int, rounds: int) -> BrokerFigures:
    began = time.perf_counter()
    broker = local_broker(engine).start()
    try:
        start_s = time.perf_counter() - began
        rss = _rss_mb(broker)
        produce, consume = [], []
        for r in range(rounds):
            produce.append(_produce(broker.bootstrap_servers, events))
            consume.append(_consume(broker.bootstrap_servers, events * (r + 1)) * 1.0)
            console.print(
                f"{engine} round {r + 1}: produce {produce[-1]:,.0f}/s, "
                f"consume (all {events * (r + 1):,} records) {consume[-1]:,.0f}/s"
            )
        return BrokerFigures(engine, start_s, rss, produce, consume, _rss_mb(broker))
    finally:
        broker.stop()


def measure(engines: list[Engine], events: int, rounds: int) -> list[BrokerFigures]:
    figures = [_measure_engine(engine, events, rounds) for engine in engines]
    table = Table(
        "engine",
        "start s",
        "RSS MB (ready → after)",
        "produce /s (median)",
        "consume /s (median)",
        title=f"local brokers, {events:,} × 300-byte records per round, acks=all, lz4",
    )
    for f in figures:
        table.add_row(
            f.engine,
            f"{f.start_s:.1f}",
            f"{f.rss_mb:,.0f} → {f.rss_after_mb:,.0f}",
            f"{statistics.median(f.produce):,.0f}",
            f"{statistics.median(f.consume):,.0f}",
        )
    out.print(table)
    by = {f.engine: f for f in figures}
    if "kafka" in by and "tansu" in by:
        k, t = by["kafka"], by["tansu"]
        out.print(
            f"kafka / tansu: produce {statistics.median(k.produce) / statistics.median(t.produce):.2f}, "
            f"consume {statistics.median(k.consume) / statistics.median(t.consume):.2f}"
        )
    return figures
