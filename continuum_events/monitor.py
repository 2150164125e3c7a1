"""Watching what flows: a consumer that counts events on a topic, for live views.

It assigns every partition at the current end (no consumer group, so it joins
instantly and disturbs no one), decodes, and keeps counts by type and severity, a
sliding rate and the latest events. It never commits anything::

    monitor = FlowMonitor(settings, "printer-events").start()
    snapshot = monitor.snapshot()
    monitor.stop()
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter, deque
from dataclasses import dataclass, field

from confluent_kafka import OFFSET_END, Consumer, KafkaException, TopicPartition

from continuum_events.codec import DecodeError, EventCodec
from continuum_events.events import Event
from continuum_events.settings import KafkaSettings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FlowSnapshot:
    total: int
    undecodable: int
    rate: float
    by_type: Counter[str]
    by_severity: Counter[str]
    recent: list[Event] = field(default_factory=list)


class FlowMonitor:
    """Counts the events arriving on one topic from now on."""

    def __init__(self, settings: KafkaSettings, topic: str, codec: EventCodec | None = None, window_s: float = 5.0):
        self.settings, self.topic, self.window_s = settings, topic, window_s
        self.codec = codec or EventCodec(settings.schema_registry())
        self._lock = threading.Lock()
        self._total = self._undecodable = 0
        self._by_type: Counter[str] = Counter()
        self._by_severity: Counter[str] = Counter()
        self._recent: deque[Event] = deque(maxlen=10)
        self._arrivals: deque[tuple[float, int]] = deque()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"monitor-{topic}", daemon=True)
        self.ready = threading.Event()

    def start(self) -> FlowMonitor:
        self._thread.start()
        self.ready.wait(15)
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)

    def _run(self) -> None:
        consumer = Consumer(
            self.settings.client_config(
                **{
                    "group.id": f"continuum-events-monitor-{self.topic}",
                    "enable.auto.commit": False,
                }
            )
        )
        try:
            while not self._stop.is_set():
                try:
                    partitions = consumer.list_topics(self.topic, timeout=5).topics[self.topic].partitions
                    break
                except (KafkaException, KeyError):
                    self._stop.wait(1)
            else:
                return
            consumer.assign([TopicPartition(self.topic, p, OFFSET_END) for p in partitions])
            self.ready.set()
            while not self._stop.is_set():
                batch = consumer.consume(1000, 0.25)
                now, decoded = time.monotonic(), []
                for msg in batch:
                    if msg.error():
                        continue
                    try:
                        decoded.append(self.codec.decode(msg.value(), msg.topic(), msg.partition(), msg.offset()))
                    except DecodeError:
                        with self._lock:
                            self._undecodable += 1
                with self._lock:
                    for event in decoded:
                        self._by_type[event.event_type.value] += 1
                        self._by_severity[event.severity.value] += 1
                        self._recent.append(event)
                    self._total += len(decoded)
                    if decoded:
                        self._arrivals.append((now, len(decoded)))
        finally:
            self.ready.set()
            consumer.close()

    def snapshot(self) -> FlowSnapshot:
        now = time.monotonic()
        with self._lock:
            while self._arrivals and self._arrivals[0][0] < now - self.window_s:
                self._arrivals.popleft()
            rate = sum(n for _, n in self._arrivals) / self.window_s
            return FlowSnapshot(
                self._total,
                self._undecodable,
                rate,
                Counter(self._by_type),
                Counter(self._by_severity),
                list(self._recent),
            )
