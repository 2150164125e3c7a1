"""Follow a small keyed topic to its end and keep the last value per key.

The configuration topic and each alerting integration's incident ledger are read this
way: every process folds the whole topic itself with a group-less consumer, so every
instance sees every key whatever the partition assignment, and nothing relies on
compaction (the embedded broker never compacts). Values are JSON; a null value deletes::

    follower = TopicFollower(settings, "continuum-events.config").start()
    follower.wait_ready(10)            # read to the end once
    follower.values()                  # a snapshot: {key: value}

Subclasses may override :meth:`merge` to decide how a newer record combines with the
value already held (the ledger keeps the record with the later event time).
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Mapping
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaException, Producer, TopicPartition

from continuum_events.settings import KafkaSettings

log = logging.getLogger(__name__)


class TopicFollower:
    """Follows ``topic`` in a background thread; reads are lock-free snapshots."""

    def __init__(
        self,
        settings: KafkaSettings,
        topic: str,
        *,
        name: str = "follower",
        on_change: Callable[[Any], None] | None = None,
    ) -> None:
        self.settings, self.topic, self.name, self.on_change = settings, topic, name, on_change
        self._values: Mapping[str, Any] = {}
        self.version = 0
        self._ready = threading.Event()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._follow, name=f"{name}-follower", daemon=True)

    def start(self):  # -> Self
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)

    def wait_ready(self, timeout: float = 15.0) -> bool:
        """True once the topic has been read to its end at least once."""
        return self._ready.wait(timeout)

    def values(self) -> Mapping[str, Any]:
        return self._values

    def merge(self, key: str, old: Any, new: Any) -> Any:
        """The value to keep when ``new`` is read for a key holding ``old`` (None deletes)."""
        return new

    def apply(self, changes: Mapping[str, Any]) -> None:
        """Fold changes into the snapshot: from the topic, or a process's own acknowledged writes."""
        with self._lock:
            values = dict(self._values)
            for key, value in changes.items():
                kept = self.merge(key, values.get(key), value)
                if kept is None:
                    values.pop(key, None)
                else:
                    values[key] = kept
            self._values = values
            self.version += 1
        self.changed(changes)
        if self.on_change:
            self.on_change(self)

    def changed(self, changes: Mapping[str, Any]) -> None:
        """Hook for subclasses that cache something derived from the values."""

    def seen(self, key: str, value: Any) -> None:
        """Hook for subclasses that keep a history: every record read, in topic order
        (``apply`` gets only the last value of each key of a fetch)."""

    def _follow(self) -> None:
        consumer = Consumer(
            self.settings.client_config(
                **{
                    "group.id": f"continuum-events-{self.name}-follower",
                    "enable.auto.commit": False,
                    "fetch.wait.max.ms": 50,
                }
            )
        )
        try:
            tps = self._partitions(consumer)
            if tps is None:
                return
            consumer.assign(tps)
            while not self._stop.is_set():
                changes = {}
                for msg in consumer.consume(500, 0.1):
                    if msg.error():
                        continue
                    key = (msg.key() or b"").decode("utf-8", "replace")
                    try:
                        changes[key] = None if msg.value() is None else json.loads(msg.value())
                        self.seen(key, changes[key])
                    except ValueError:
                        log.error(
                            "%s %s@%d: key %r is not JSON; ignored", self.topic, msg.partition(), msg.offset(), key
                        )
                if changes:
                    self.apply(changes)
                if not self._ready.is_set() and self._caught_up(consumer, tps):
                    self._ready.set()
        finally:
            self._ready.set()
            consumer.close()

    def _partitions(self, consumer: Consumer) -> list[TopicPartition] | None:
        while not self._stop.is_set():
            try:
                meta = consumer.list_topics(self.topic, timeout=5).topics[self.topic]
                if meta.error is None and meta.partitions:
                    return [TopicPartition(self.topic, p, OFFSET_BEGINNING) for p in meta.partitions]
            except (KafkaException, KeyError):
                pass
            log.warning("topic %s not available yet; retrying", self.topic)
            self._stop.wait(1)
        return None

    @staticmethod
    def _caught_up(consumer: Consumer, tps: list[TopicPartition]) -> bool:
        # The cached high watermark from fetches, not ListOffsets (the embedded broker
        # reports end offsets too low).
        for tp in consumer.position(tps):
            try:
                _, high = consumer.get_watermark_offsets(tp, cached=True)
            except KafkaException:
                return False
            if high < 0 or (tp.offset < 0 and high > 0) or (tp.offset >= 0 and tp.offset < high):
                return False
        return True


def write_keys(
    settings: KafkaSettings,
    topic: str,
    values: Mapping[str, Any | None],
    producer: Producer | None = None,
    timeout: float = 15.0,
) -> None:
    """Write keys (None deletes) and wait for the acknowledgement; raise if not stored."""
    producer = producer or Producer(settings.client_config(**{"acks": "all", "enable.idempotence": True}))
    errors: list[str] = []

    def check(err: Any, msg: Any) -> None:
        if err is not None:
            errors.append(str(err))

    for key, value in values.items():
        producer.produce(topic, None if value is None else json.dumps(value).encode(), key.encode(), on_delivery=check)
    if producer.flush(timeout) or errors:
        raise RuntimeError(
            f"could not write to {topic}: {'; '.join(errors) or f'no acknowledgement in {timeout:.0f} s'}"
        )
