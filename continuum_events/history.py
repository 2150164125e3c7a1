"""Reading a topic's history: true end offsets, offsets by record time, and ranges.

Everything here is plain Kafka protocol and correct on Apache Kafka and on Tansu, the
development engine, whose two shortcuts (see BROKER.md) the standard client calls trip over:

* ListOffsets reports the end of a partition as the last batch's base offset + 1, so
  ``get_watermark_offsets`` is short by the last batch's size − 1. :func:`watermarks`
  reads one record near the end and takes the high watermark of that fetch response,
  which is right on every broker.
* ``offsets_for_times`` matches the broker's store time, not the records' timestamps.
  :func:`offsets_for_time` binary-searches on the records themselves: seek, read one
  record, compare its timestamp. On Apache Kafka (``time_index=True``, from
  :func:`~continuum_events.cluster.cluster_traits`) it asks the broker's time index.

All functions take an assign-only consumer from :func:`history_consumer`, which never
joins a group and never commits, so no consumer group's position is ever moved::

    consumer = history_consumer(settings, "replay")
    try:
        window = offsets_for_window(consumer, "printer-events", start_ms, end_ms)
        print(count(window), "records in the window")
        for msg in read_range(consumer, "printer-events", window):
            if start_ms <= msg.timestamp()[1] < end_ms:   # exact filter: clocks may skew
                handle(msg)
    finally:
        consumer.close()

The time search assumes record timestamps are non-decreasing within a partition. That
holds for one producer with CreateTime and always for LogAppendTime; several producers
with slightly skewed clocks interleave out of order by that skew, so the offsets found
are right to within the skew and callers filter records by their exact timestamp.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from typing import NamedTuple
from uuid import uuid4

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, TopicPartition

from continuum_events.settings import KafkaSettings

log = logging.getLogger(__name__)

#: How long one read (a probe, or a stretch of a range with nothing arriving) may wait.
DEFAULT_TIMEOUT_S = 10.0
#: The broker wait of every fetch. Apache Kafka answers at once when records are there;
#: the embedded broker holds every fetch this long even then (and answers a wait of 0
#: with no records at all), and a time search is ~15 fetches in a row, so it is short.
FETCH_WAIT_MS = 1


class OffsetRange(NamedTuple):
    """Offsets ``start <= offset < end`` of one partition (a ``(start, end)`` tuple)."""

    start: int
    end: int

    @property
    def size(self) -> int:
        """Offsets in the range; the record count unless offsets have gaps (transactions)."""
        return max(0, self.end - self.start)


def count(ranges: Mapping[int, tuple[int, int]]) -> int:
    """Offsets covered by ``{partition: (start, end)}``: the records, unless offsets have gaps."""
    return sum(max(0, end - start) for start, end in ranges.values())


def history_consumer(settings: KafkaSettings, purpose: str) -> Consumer:
    """An assign-only consumer for this module's functions.

    librdkafka insists on a ``group.id``; a unique one is given, but the consumer never
    subscribes and never commits, so no group is joined and no position moves.
    """
    return Consumer(
        settings.client_config(
            **{
                "group.id": f"continuum-history-{purpose}-{uuid4().hex[:8]}",
                "enable.auto.commit": False,
                "enable.auto.offset.store": False,
                # End-of-partition events tell a probe "no record at or after this offset".
                "enable.partition.eof": True,
                "fetch.wait.max.ms": FETCH_WAIT_MS,
                "auto.offset.reset": "earliest",
            }
        )
    )


def partitions_of(consumer: Consumer, topic: str, timeout: float = DEFAULT_TIMEOUT_S) -> list[int]:
    """The topic's partition ids from metadata; raises if the topic does not exist."""
    meta = consumer.list_topics(topic, timeout=timeout).topics.get(topic)
    if meta is None:
        raise KafkaException(KafkaError(KafkaError.UNKNOWN_TOPIC_OR_PART, f"topic {topic} not in metadata"))
    if meta.error is not None:
        raise KafkaException(meta.error)
    return sorted(meta.partitions)


def watermarks(consumer: Consumer, topic: str, timeout: float = DEFAULT_TIMEOUT_S) -> dict[int, OffsetRange]:
    """Every partition's ``(low, high)``: first offset held, and offset of the next record.

    ListOffsets gives the low watermark and a first guess at the high one; then every
    partition is read at once from just below that guess, and the high watermark of the
    fetch response that answered (the consumer's cached watermark) is taken. That costs
    one fetch and is exact even where ListOffsets is short.
    """
    listed = {}
    for partition in partitions_of(consumer, topic, timeout):
        listed[partition] = consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=timeout)
    # An empty partition is probed too (at its low offset: an end-of-partition event
    # answers at once), so a broker that under-reports one cannot hide records.
    probes = _first_records(consumer, topic, {p: max(low, high - 1) for p, (low, high) in listed.items()}, timeout)
    consumer.unassign()
    ranges = {}
    for partition, (low, high) in listed.items():
        fetched_high = probes[partition].high_watermark
        ranges[partition] = OffsetRange(low, max(high, fetched_high))
        if fetched_high > high:
            log.debug("%s [%d]: ListOffsets end %d, fetched high watermark %d", topic, partition, high, fetched_high)
    return ranges


def end_offsets(consumer: Consumer, topic: str, timeout: float = DEFAULT_TIMEOUT_S) -> dict[int, int]:
    """Every partition's true high watermark (see :func:`watermarks`)."""
    return {partition: r.end for partition, r in watermarks(consumer, topic, timeout).items()}


#: What a group coordinator answers while it loads or moves (Apache Kafka just after a start or a
#: broker failover, and for a group whose offsets partition it has not loaded yet): ask again.
_COORDINATOR_BUSY = frozenset(
    {KafkaError.NOT_COORDINATOR, KafkaError.COORDINATOR_LOAD_IN_PROGRESS, KafkaError.COORDINATOR_NOT_AVAILABLE}
)


def committed(
    consumer: Consumer,
    partitions: list[TopicPartition],
    timeout: float = DEFAULT_TIMEOUT_S,
) -> list[TopicPartition]:
    """The committed offsets of ``consumer``'s group (negative: none), asking again while the
    coordinator is busy, until ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return consumer.committed(partitions, timeout=max(1.0, deadline - time.monotonic()))
        except KafkaException as exc:
            if exc.args[0].code() not in _COORDINATOR_BUSY or time.monotonic() >= deadline:
                raise
            time.sleep(0.2)


def offsets_for_time(
    consumer: Consumer,
    topic: str,
    timestamp_ms: int,
    ranges: Mapping[int, tuple[int, int]],
    timeout: float = DEFAULT_TIMEOUT_S,
    *,
    time_index: bool = False,
) -> dict[int, int]:
    """For each partition of ``ranges``, the first offset in ``[start, end)`` whose record
    timestamp is ``>= timestamp_ms``, or ``end`` when every record there is older.

    With ``time_index`` (Apache Kafka: :func:`~continuum_events.cluster.cluster_traits`)
    the broker answers from its time index in one request. Without it, a binary search on
    record timestamps, all partitions in step: each round assigns every unfinished
    partition at its midpoint and reads one record of each, so the cost is about
    log2(range size) fetch round trips whatever the partition count.
    """
    if time_index:
        return _indexed_offsets(consumer, topic, timestamp_ms, ranges, timeout)
    # Per partition: the answer is the first record at or after some offset in [lo, hi];
    # hi is always such an offset, and ``found`` is the first record at or after hi (or
    # the range's end when there is none before it).
    bounds = {p: [start, end] for p, (start, end) in ranges.items() if start < end}
    found = {p: end for p, (start, end) in ranges.items()}
    rounds = 0
    while probes := {p: (lo + hi) // 2 for p, (lo, hi) in bounds.items() if lo < hi}:
        rounds += 1
        for partition, probe in _first_records(consumer, topic, probes, timeout).items():
            end = ranges[partition][1]
            if probe.offset is None or probe.offset >= end or probe.timestamp_ms >= timestamp_ms:
                bounds[partition][1] = probes[partition]
                found[partition] = end if probe.offset is None else min(probe.offset, end)
            else:
                # That record, and any offsets missing before it, are all older.
                bounds[partition][0] = min(probe.offset + 1, bounds[partition][1])
    consumer.unassign()
    log.debug("%s: offsets for %d found in %d rounds: %s", topic, timestamp_ms, rounds, found)
    return found


def _indexed_offsets(
    consumer: Consumer,
    topic: str,
    timestamp_ms: int,
    ranges: Mapping[int, tuple[int, int]],
    timeout: float,
) -> dict[int, int]:
    """The broker's ``offsets_for_times`` (its time index), kept inside each range."""
    asked = [TopicPartition(topic, p, timestamp_ms) for p in ranges]
    found = {}
    for tp in consumer.offsets_for_times(asked, timeout):
        if tp.error is not None:
            raise KafkaException(tp.error)
        start, end = ranges[tp.partition]
        # -1: no record at or after the time.
        found[tp.partition] = end if tp.offset < 0 else min(max(tp.offset, start), end)
    return found


def offset_for_time(
    consumer: Consumer,
    topic: str,
    partition: int,
    timestamp_ms: int,
    low: int,
    high: int,
    timeout: float = DEFAULT_TIMEOUT_S,
    *,
    time_index: bool = False,
) -> int:
    """The first offset in ``[low, high)`` of one partition whose record timestamp is
    ``>= timestamp_ms``; ``high`` when every record is older. See :func:`offsets_for_time`."""
    return offsets_for_time(consumer, topic, timestamp_ms, {partition: (low, high)}, timeout, time_index=time_index)[
        partition
    ]


def offsets_for_window(
    consumer: Consumer,
    topic: str,
    start_ms: int | None,
    end_ms: int | None,
    timeout: float = DEFAULT_TIMEOUT_S,
    *,
    time_index: bool = False,
) -> dict[int, OffsetRange]:
    """Per partition, the offsets of the records timestamped in ``[start_ms, end_ms)``.

    ``None`` leaves that side open: from the low watermark, or to the true high one.
    ``time_index``: the broker's own ``offsets_for_times`` finds the offsets (Apache Kafka).
    """
    marks = watermarks(consumer, topic, timeout)
    starts = (
        {p: r.start for p, r in marks.items()}
        if start_ms is None
        else offsets_for_time(consumer, topic, start_ms, marks, timeout, time_index=time_index)
    )
    ends = (
        {p: r.end for p, r in marks.items()}
        if end_ms is None
        # The end cannot precede the start: search only from there.
        else offsets_for_time(
            consumer, topic, end_ms, {p: (starts[p], r.end) for p, r in marks.items()}, timeout, time_index=time_index
        )
    )
    return {p: OffsetRange(starts[p], max(starts[p], ends[p])) for p in marks}


def read_range(
    consumer: Consumer,
    topic: str,
    ranges: Mapping[int, tuple[int, int]],
    timeout: float = DEFAULT_TIMEOUT_S,
) -> Iterator[Message]:
    """Every record with ``start <= offset < end`` of each partition, in fetch order.

    Raises ``TimeoutError`` naming the unfinished partitions when nothing arrives for
    ``timeout`` seconds (a range reaching beyond the partition's end, or a lost broker).
    """
    remaining = {p: end for p, (start, end) in ranges.items() if start < end}
    if not remaining:
        return
    consumer.assign([TopicPartition(topic, p, ranges[p][0]) for p in remaining])
    try:
        last_arrival = time.monotonic()
        while remaining:
            batch = _available(consumer, 0.1)
            if batch:
                last_arrival = time.monotonic()
            elif time.monotonic() - last_arrival > timeout:
                raise TimeoutError(
                    f"{topic}: nothing read for {timeout:.1f} s; unfinished partitions "
                    + ", ".join(f"{p} (to offset {end})" for p, end in sorted(remaining.items()))
                )
            finished = []
            for msg in batch:
                partition, offset = msg.partition(), msg.offset()
                if partition not in remaining or msg.topic() != topic:
                    continue
                if _skippable(msg):
                    # The end of the partition counts as the end of the range when the
                    # range ends there: offsets before it were transaction markers.
                    if msg.error().code() == KafkaError._PARTITION_EOF and offset >= remaining[partition]:
                        finished.append(partition)
                        remaining.pop(partition)
                    continue
                if offset >= remaining[partition]:
                    finished.append(partition)
                    remaining.pop(partition)
                    continue
                yield msg
                if offset + 1 >= remaining[partition]:
                    finished.append(partition)
                    remaining.pop(partition)
            if finished and remaining:
                consumer.incremental_unassign([TopicPartition(topic, p) for p in finished])
    finally:
        consumer.unassign()


class _Probe(NamedTuple):
    """What one read of a partition found."""

    #: The first record at or after the offset asked for; None if the partition ended first.
    offset: int | None
    timestamp_ms: int
    #: The partition's high watermark in the fetch response that answered.
    high_watermark: int


def _first_records(consumer: Consumer, topic: str, starts: Mapping[int, int], timeout: float) -> dict[int, _Probe]:
    """Assign each partition at its start offset and read its first record there.

    Reassigning replaces librdkafka's fetch state, so nothing fetched for an earlier
    assignment is delivered; the offset check below is a second guard. A partition is
    unassigned once answered: librdkafka then drops the rest of its fetched batch
    itself, instead of this loop wading through it to reach the other partitions.
    """
    consumer.assign([TopicPartition(topic, p, offset) for p, offset in starts.items()])
    first: dict[int, _Probe] = {}
    deadline = time.monotonic() + timeout
    while len(first) < len(starts):
        left = deadline - time.monotonic()
        if left <= 0:
            missing = sorted(set(starts) - set(first))
            raise TimeoutError(
                f"{topic}: no record and no end of partition within {timeout:.1f} s for partitions {missing}"
            )
        answered = []
        for msg in _available(consumer, min(left, 0.1)):
            partition = msg.partition()
            if msg.topic() != topic or partition not in starts or partition in first:
                continue
            if _skippable(msg):
                # Records come before the end of partition, so reaching it first means
                # none at or after the start (also after a reset from beyond the end).
                if msg.error().code() == KafkaError._PARTITION_EOF:
                    first[partition] = _Probe(None, -1, _fetched_high(consumer, topic, partition))
                    answered.append(partition)
            elif msg.offset() >= starts[partition]:
                first[partition] = _Probe(msg.offset(), msg.timestamp()[1], _fetched_high(consumer, topic, partition))
                answered.append(partition)
        if answered and len(first) < len(starts):
            consumer.incremental_unassign([TopicPartition(topic, p) for p in answered])
    return first


def _fetched_high(consumer: Consumer, topic: str, partition: int) -> int:
    """The high watermark of the partition's latest fetch response (not ListOffsets)."""
    return consumer.get_watermark_offsets(TopicPartition(topic, partition), cached=True)[1]


def _available(consumer: Consumer, wait: float) -> list[Message]:
    """What is already fetched, else the first message within ``wait`` seconds.

    ``consume(n, timeout)`` waits for all ``n`` messages or the whole timeout, which
    would add the timeout to every probe that lands near the end of a partition.
    """
    batch = consumer.consume(100, 0)
    if batch:
        return batch
    msg = consumer.poll(wait)
    return [] if msg is None else [msg]


def _skippable(msg: Message) -> bool:
    """True for events that are not records; raises on fatal errors."""
    error = msg.error()
    if error is None:
        return False
    if error.fatal():
        raise KafkaException(error)
    if error.code() != KafkaError._PARTITION_EOF:
        log.warning("%s [%s]: %s", msg.topic(), msg.partition(), error)
    return True


_AGE = re.compile(r"^(\d+(?:\.\d+)?)\s*([smhdw])$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_time(text: str, now: float | None = None) -> int:
    """``2026-11-27T08:00`` (UTC unless it has an offset), ``6h`` (ago) or ``now`` -> epoch ms;
    anything else raises ``ValueError`` saying what is accepted."""
    now = time.time() if now is None else now
    text = text.strip()
    if text == "now":
        return int(now * 1000)
    age = _AGE.match(text)
    if age:
        return int((now - float(age.group(1)) * _UNITS[age.group(2)]) * 1000)
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(
            f"{text!r} is not a time: use ISO 8601 (2026-11-27T08:00, UTC unless an offset is given), "
            "an age (90s, 30m, 6h, 2d, 1w) or now"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)
