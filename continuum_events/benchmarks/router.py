"""Router benchmark: the router (decode, match rules, encode, produce to every matching
category) versus a bare Faust agent forwarding bytes, on the same broker, reading the
same pre-filled 6-partition topic; then routing latency at a steady 1,000 events/s.

Rates count arrivals on the output topic from the first to the last, so worker
start-up and group joins are excluded from both.
"""

from __future__ import annotations

import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager

from confluent_kafka import OFFSET_END, Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient
from rich.table import Table

from continuum_events.benchmarks import Result
from continuum_events.codec import EventCodec
from continuum_events.events import DEFAULT_SEVERITY, PAYLOAD_BRANCH, event_key, new_event_id
from continuum_events.producers.demo import DemoFleet
from continuum_events.settings import KafkaSettings
from continuum_events.terminal import console, out
from continuum_events.topology import TopicSpec, category_topic, ensure_topics

BENCH_IN = "bench.router-in"
BENCH_OUT = "bench.forward-out"


def _records(n: int, codec: EventCodec, fleet: DemoFleet) -> Iterator[tuple[bytes, bytes]]:
    """Lazily, so each event is stamped when it is produced (latency starts there)."""
    encode, prefix = codec.body_encoder(), codec.prefix(BENCH_IN)
    for _ in range(n):
        t, payload, severity = fleet.next_event()
        record = {
            "event_id": new_event_id(),
            "event_type": t.symbol,
            "severity": severity or DEFAULT_SEVERITY.get(t.value, "info"),
            "timestamp": time.time_ns() // 1000,
            "source": "bench",
            "payload": (PAYLOAD_BRANCH[t.family], payload),
            "details": {},
        }
        yield event_key(t.family, payload).encode(), encode(record, prefix)


def _produce(settings: KafkaSettings, records: Iterable[tuple[bytes, bytes]], rate: float | None = None) -> None:
    producer = Producer(settings.client_config(**{"linger.ms": 0 if rate else 5, "partitioner": "murmur2_random"}))
    started = time.monotonic()
    for i, (key, value) in enumerate(records):
        if rate and i % 10 == 0:
            ahead = i / rate - (time.monotonic() - started)
            if ahead > 0:
                time.sleep(ahead)
        producer.produce(BENCH_IN, value, key)
        producer.poll(0)
    producer.flush(60)


class _Arrivals:
    """Counts records arriving on a topic from now on; optionally decodes for latency."""

    def __init__(self, settings: KafkaSettings, topic: str, latency: bool = False) -> None:
        self.count, self.first, self.last, self.latencies_ms = 0, 0.0, 0.0, []
        self._consumer = Consumer(settings.client_config(**{"group.id": "bench-arrivals", "fetch.wait.max.ms": 10}))
        parts = self._consumer.list_topics(topic, timeout=10).topics[topic].partitions
        self._consumer.assign([TopicPartition(topic, p, OFFSET_END) for p in parts])
        self._consumer.consume(1, 0.5)  # resolve OFFSET_END before anything is produced
        self._codec = EventCodec() if latency else None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            batch = self._consumer.consume(1000, 0.05)
            now = time.monotonic()
            now_us = time.time_ns() // 1000
            for msg in batch:
                if msg.error():
                    continue
                if self.count == 0:
                    self.first = now
                self.count += 1
                self.last = now
                if self._codec:
                    self.latencies_ms.append((now_us - self._codec.decode(msg.value()).timestamp_us) / 1000)

    def wait(self, n: int, timeout: float) -> float:
        deadline = time.monotonic() + timeout
        while self.count < n and time.monotonic() < deadline:
            time.sleep(0.05)
        if self.count < n:
            raise RuntimeError(f"only {self.count} of {n} records arrived within {timeout:.0f} s")
        return (n - 1) / max(self.last - self.first, 1e-6)

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self._consumer.close()


def _spawn(args: list[str], log: str) -> subprocess.Popen[bytes]:
    with open(log, "ab") as sink:
        return subprocess.Popen(
            [sys.executable, *args], stdout=sink, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"}
        )


def _stop(process: subprocess.Popen[bytes]) -> None:
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(30)
    except subprocess.TimeoutExpired:
        process.kill()


def _worker_args(path: str, bootstrap: str, tag: str, work: str) -> tuple[list[str], str]:
    if path == "router":
        return (
            [
                "-m",
                "continuum_events",
                "--log-level",
                "warning",
                "router",
                "-b",
                bootstrap,
                "--source-topic",
                BENCH_IN,
                "--app-id",
                tag,
                "--datadir",
                f"{work}/{tag}",
            ],
            category_topic("logging"),
        )
    return (
        ["-m", "continuum_events.benchmarks.forwarder", bootstrap, BENCH_IN, BENCH_OUT, tag, f"{work}/{tag}"],
        BENCH_OUT,
    )


def measure(
    cluster: Callable[[], AbstractContextManager[KafkaSettings]], events: int, rounds: int, latency_seconds: float
) -> Result:
    """``cluster()`` gives the settings of a cluster for one measurement: a fresh embedded
    broker each time (its in-memory log slows it as it grows: 5.8k -> 1.7k events/s for
    the same path from one round to the next), or the same real cluster."""
    work = tempfile.mkdtemp(prefix="bench-router-")
    console.print(f"{events:,} demo events per measurement; worker logs in {work}")
    rates: dict[str, list[float]] = {"bare forwarder": [], "router": []}
    latencies: dict[str, list[dict[int, float]]] = {"bare forwarder": [], "router": []}
    order = [
        p for r in range(rounds) for p in (("bare forwarder", "router") if r % 2 == 0 else ("router", "bare forwarder"))
    ]
    for i, path in enumerate(order):
        with cluster() as settings:
            ensure_topics(AdminClient(settings.client_config()), [TopicSpec(BENCH_IN, 6), TopicSpec(BENCH_OUT, 6)])
            _produce(settings, _records(events, EventCodec(), DemoFleet(seed=11)))
            tag = f"bench-{path.replace(' ', '-')}-{i}"
            args, topic = _worker_args(path, settings.bootstrap_servers, tag, work)
            rate, pct = _run(settings, args, topic, f"{work}/{tag}.log", events, latency_seconds)
        rates[path].append(rate)
        latencies[path].append(pct)
        console.print(f"{path}: {rate:,.0f} events/s; at 1,000/s p50 {pct[50]:.1f} ms, p99 {pct[99]:.1f} ms")

    table = Table(
        "path",
        "median events/s",
        "rounds",
        "p50 ms",
        "p95 ms",
        "p99 ms",
        "max ms",
        title=f"router benchmark: {events:,} events, 6 partitions; latency at 1,000 events/s "
        f"for {latency_seconds:.0f} s (medians)",
    )
    for path, label in (
        ("bare forwarder", "bare Faust agent forwarding bytes"),
        ("router", "router (decode, rules, encode, fan-out)"),
    ):
        pct = {p: statistics.median(x[p] for x in latencies[path]) for p in (50, 95, 99, 100)}
        table.add_row(
            label,
            f"{statistics.median(rates[path]):,.0f}",
            ", ".join(f"{x:,.0f}" for x in rates[path]),
            *(f"{pct[p]:.1f}" for p in (50, 95, 99, 100)),
        )
    out.print(table)
    ratio = statistics.median(rates["router"]) / statistics.median(rates["bare forwarder"])
    p99 = statistics.median(x[99] for x in latencies["router"])
    out.print(
        f"ratio router / bare = {ratio:.2f} ({'meets' if ratio >= 0.8 else 'MISSES'} the target >= 0.80); "
        f"router p99 {p99:.1f} ms ({'meets' if p99 <= 100 else 'MISSES'} the target <= 100 ms)"
    )
    bare_p99 = statistics.median(x[99] for x in latencies["bare forwarder"])
    return Result(
        "router",
        statistics.median(rates["router"]),
        "bare Faust agent",
        statistics.median(rates["bare forwarder"]),
        met=ratio >= 0.8 and p99 <= 100,
        note=f"p99 at 1,000/s: router {p99:.1f} ms, bare {bare_p99:.1f} ms",
    )


def _run(
    settings: KafkaSettings, args: list[str], topic: str, log: str, backlog: int, seconds: float
) -> tuple[float, dict[int, float]]:
    """Throughput over the pre-filled backlog, then latency at a steady 1,000 events/s."""
    arrivals = _Arrivals(settings, topic, latency=True)
    worker = _spawn(args, log)
    try:
        rate = arrivals.wait(backlog, timeout=backlog / 500 + 60)
        n = int(seconds * 1000)
        arrivals.latencies_ms.clear()
        arrivals.count = 0
        _produce(settings, _records(n, EventCodec(), DemoFleet(seed=12)), rate=1000)
        arrivals.wait(n, timeout=60)
    finally:
        _stop(worker)
        arrivals.close()
    lat = sorted(arrivals.latencies_ms)
    return rate, {p: lat[min(len(lat) - 1, int(len(lat) * p / 100))] for p in (50, 95, 99, 100)}
