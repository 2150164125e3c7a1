"""Reading topics back in tests: assign every partition (no group join to wait for)
and read until an expected count arrives or the deadline passes."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

from continuum_events.codec import EventCodec
from continuum_events.events import Event
from continuum_events.history import committed as group_committed
from continuum_events.topology import CATEGORIES, category_topic


@dataclass(frozen=True)
class Received:
    event: Event
    key: bytes | None
    partition: int
    offset: int
    headers: dict[str, bytes]
    timestamp_ms: int = 0  # the record's timestamp, as stored


def read_topic(
    bootstrap: str,
    topic: str,
    *,
    expect: int | None = None,
    timeout: float = 30.0,
    idle: float = 2.0,
    codec: EventCodec | None = None,
    until: Callable[[list[Received]], bool] | None = None,
) -> list[Received]:
    """Every record of ``topic`` from the beginning, decoded. Stops at ``expect`` records,
    when ``until`` holds, or after ``idle`` seconds without a record (``timeout`` overall)."""
    codec = codec or EventCodec()
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "test-reader", "enable.auto.commit": False})
    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
        out: list[Received] = []
        deadline, last = time.monotonic() + timeout, time.monotonic()
        while time.monotonic() < deadline:
            if (expect is not None and len(out) >= expect) or (until is not None and until(out)):
                break
            batch = consumer.consume(10_000, 0.2)
            if not batch:
                if expect is None and until is None and time.monotonic() - last > idle:
                    break
                continue
            last = time.monotonic()
            for m in batch:
                if m.error():
                    continue
                out.append(
                    Received(
                        codec.decode(m.value(), m.topic(), m.partition(), m.offset()),
                        m.key(),
                        m.partition(),
                        m.offset(),
                        dict(m.headers() or []),
                        m.timestamp()[1],
                    )
                )
        return out
    finally:
        consumer.close()


def committed_offsets(bootstrap: str, group: str, topics: Iterable[str] | None = None) -> dict[tuple[str, int], int]:
    """``group``'s committed offset of every partition of ``topics`` (default: the category
    topics); negative where it never committed.

    Read through a consumer of that group that never joins it, not through
    ``AdminClient.list_consumer_group_offsets``: librdkafka crashes the whole process (SIGSEGV
    in ``rd_kafka_cgrp_op``) when the coordinator answers that call with NOT_COORDINATOR,
    which Apache Kafka does for a group whose offsets partition it has not loaded yet
    (librdkafka issue 5040).
    """
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False})
    try:
        wanted = list(topics) if topics is not None else [category_topic(c) for c in CATEGORIES]
        metadata = consumer.list_topics(timeout=10).topics
        partitions = [TopicPartition(t, p) for t in wanted if t in metadata for p in metadata[t].partitions]
        return {(tp.topic, tp.partition): tp.offset for tp in group_committed(consumer, partitions, timeout=20)}
    finally:
        consumer.close()
