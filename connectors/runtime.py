"""The one runtime every connector runs on.

One :class:`IntegrationRunner` per configured integration: its own consumer group
(``continuum-connector-<name>``) on its category topic, so each destination keeps its
own position and a slow or broken vendor holds up nobody else. The runner decodes,
applies the integration's filters and transforms (the shared rule engine), batches by
count, bytes and linger, and hands batches to the sink. Then, by outcome:

* delivered — counted; its offsets become committable;
* retry — exponential backoff with full jitter, at least the vendor's Retry-After; the
  partitions are paused (not dropped) and the consumer keeps polling, so the group
  keeps it; partial failures retry only the failed records;
* rejected record — written unchanged to ``printer-events.dlq.<name>`` with the reason;
* bad configuration — stop sending, keep the data (nothing committed), mark the
  integration unhealthy, log it, try again every ``config_retry_s``;
* 413 — the batch is split in halves.

Offsets are committed only for the contiguous prefix of records that are delivered or
dead-lettered (:class:`OffsetTracker`), dead letters flushed first. Stopping (the
``stop`` event) ends fetching, finishes the batch in hand within ``drain_s`` and
commits what is done::

    runner = IntegrationRunner("splunk-prod", "logging", SplunkSink(...), settings)
    threading.Thread(target=runner.run, args=(stop,)).start()
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import Consumer, KafkaException, Message, Producer, TopicPartition
from confluent_kafka.admin import AdminClient
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from continuum_events.codec import EventCodec
from continuum_events.connectors.base import BatchResult, ConfigError, Retry, Sink, SinkContext, Split
from continuum_events.connectors.http import redact
from continuum_events.deadletter import dead_letter_headers
from continuum_events.events import Event
from continuum_events.faults import crash_point
from continuum_events.rules import DEFAULTS, RuleSet, filter_for_integration
from continuum_events.settings import FAST_GROUP_SETTINGS, KafkaSettings
from continuum_events.topology import Topology, category_topic, connector_group, ensure_topics, integration_dlq_topic

log = logging.getLogger(__name__)


class OffsetTracker:
    """Per partition, the offsets consumed and not yet resolved; commits the contiguous
    prefix only, so a failed record is never skipped because a later one succeeded."""

    def __init__(self) -> None:
        self._pending: dict[tuple[str, int], set[int]] = {}
        self._next: dict[tuple[str, int], int] = {}

    def consumed(self, topic: str, partition: int, offset: int) -> None:
        tp = (topic, partition)
        self._pending.setdefault(tp, set()).add(offset)
        self._next[tp] = max(self._next.get(tp, 0), offset + 1)

    def resolved(self, topic: str, partition: int, offset: int) -> None:
        self._pending.get((topic, partition), set()).discard(offset)

    def is_resolved(self, topic: str, partition: int, offset: int) -> bool:
        return offset not in self._pending.get((topic, partition), ())

    def committable(self) -> dict[tuple[str, int], int]:
        """Offset to commit per partition: the lowest unresolved, or one past the last seen."""
        return {tp: min(pending) if pending else self._next[tp] for tp, pending in self._pending.items()}

    def forget(self, partitions: Sequence[tuple[str, int]]) -> None:
        for tp in partitions:
            self._pending.pop(tp, None)
            self._next.pop(tp, None)


@dataclass
class Backoff:
    """Exponential backoff with full jitter; when the vendor says when to come back
    (Retry-After), that time, plus a little jitter so instances do not return in step.

    The cap bounds how long a recovered vendor waits for us: after an outage the backlog
    starts draining at most ``cap_s`` after the vendor is back."""

    base_s: float = 0.2
    cap_s: float = 10.0
    rng: random.Random = field(default_factory=random.Random)

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        if retry_after is not None:
            return retry_after + self.rng.uniform(0, min(1.0, 0.1 * retry_after))
        return self.rng.uniform(0, min(self.cap_s, self.base_s * 2**attempt))


class Metrics:
    """Prometheus metrics of the connectors, labelled by integration."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r, label = self.registry, ["integration"]
        self.delivered = Counter("continuum_connector_delivered", "Events delivered", label, registry=r)
        self.retried = Counter("continuum_connector_retried", "Events sent again after a failure", label, registry=r)
        self.dead_lettered = Counter("continuum_connector_dead_lettered", "Events dead-lettered", label, registry=r)
        self.filtered = Counter(
            "continuum_connector_filtered", "Events skipped by the integration's filter", label, registry=r
        )
        self.failed_batches = Counter("continuum_connector_failed_batches", "Batches that failed", label, registry=r)
        self.latency = Histogram("continuum_connector_request_seconds", "Vendor request time", label, registry=r)
        self.lag = Gauge("continuum_connector_lag", "Records behind the end of the category topic", label, registry=r)
        self.throttled = Counter(
            "continuum_connector_throttled", "Events held back by the vendor's rate limit", label, registry=r
        )
        self.healthy = Gauge("continuum_connector_healthy", "1 healthy, 0 not", label, registry=r)
        self.heartbeats = Counter(
            "continuum_connector_heartbeats",
            "Heartbeats the vendor accepted (the dead-man's switch)",
            label,
            registry=r,
        )
        self.heartbeat_failures = Counter(
            "continuum_connector_heartbeat_failures", "Heartbeats not accepted", label, registry=r
        )


@dataclass
class Health:
    state: str = "starting"  # starting, healthy, retrying, unhealthy, stopped
    last_error: str | None = None
    last_delivery: float | None = None
    delivered: int = 0
    dead_lettered: int = 0
    retried: int = 0
    lag: int | None = None
    #: Failures seen: failed attempts, configuration problems, dead letters. Published on the
    #: status topic, where each run's last report stays, so the total survives restarts.
    errors: int = 0
    last_error_at: float | None = None
    #: When the vendor last accepted a heartbeat (integrations with a dead-man's switch).
    last_heartbeat: float | None = None


@dataclass
class _Record:
    msg: Message
    event: Event


def _where(msg: Message) -> tuple[str, int, int]:
    """A consumed record's topic, partition and offset (never None for one)."""
    topic, partition, offset = msg.topic(), msg.partition(), msg.offset()
    assert topic is not None and partition is not None and offset is not None
    return topic, partition, offset


class IntegrationRunner:
    """Delivers one integration's category topic to its sink; see the module docstring."""

    def __init__(
        self,
        name: str,
        category: str,
        sink: Sink,
        settings: KafkaSettings,
        *,
        codec: EventCodec | None = None,
        rules: Callable[[], RuleSet] = lambda: DEFAULTS,
        metrics: Metrics | None = None,
        backoff: Backoff | None = None,
        config_retry_s: float = 30.0,
        drain_s: float = 10.0,
        on_batch: Callable[[str], None] | None = None,
        poison_after: int = 5,
    ) -> None:
        self.name, self.category, self.sink, self.settings = name, category, sink, settings
        #: Failed attempts after which the same records are split, and one record alone that
        #: still fails while others are delivered is dead-lettered (see ``_deliver``).
        self.poison_after = poison_after
        self._next_heartbeat = 0.0
        self._heartbeat_ok: bool | None = None
        self.codec = codec or EventCodec(settings.schema_registry())
        self.rules = rules
        self.metrics = metrics or Metrics()
        self.backoff = backoff or Backoff()
        self.config_retry_s, self.drain_s = config_retry_s, drain_s
        self.topic, self.dlq_topic = category_topic(category), integration_dlq_topic(name)
        self.health = Health()
        self.offsets = OffsetTracker()
        self._committed: dict[tuple[str, int], int] = {}
        #: Test hook: called with a phase name ("delivered", "committed") after each batch.
        self.on_batch = on_batch
        self._consumer: Consumer | None = None
        self._dlq = Producer(settings.client_config(**{"acks": "all", "enable.idempotence": True, "linger.ms": 5}))

    def consumer_config(self) -> dict[str, Any]:
        """The librdkafka configuration of this integration's consumer."""
        return self.settings.client_config(
            **{
                "group.id": connector_group(self.name),
                "enable.auto.commit": False,
                "auto.offset.reset": "earliest",
                "partition.assignment.strategy": "cooperative-sticky",
                "fetch.wait.max.ms": self.settings.fetch_wait_max_ms,
                **FAST_GROUP_SETTINGS,
                # Never what an aborted transaction wrote (a router under --guarantee exactly-once).
                "isolation.level": "read_committed",
                **(
                    {"group.instance.id": f"{self.settings.group_instance_id}.{self.name}"}
                    if self.settings.group_instance_id
                    else {}
                ),
            }
        )

    # -- the loop ---------------------------------------------------------------------
    def run(self, stop: threading.Event) -> None:
        """Deliver until ``stop``. A failure of the runner itself (a bug, not a vendor's
        answer) is logged with its traceback, shown as unhealthy, and the runner starts
        again from the committed offsets after ``config_retry_s``: nothing is lost, the
        thread never dies quietly."""
        while True:
            try:
                self._run(stop)
                return
            except Exception as exc:
                log.exception("%s: the connector failed; restarting from the committed offsets", self.name)
                self._set_health("unhealthy", f"connector failed: {type(exc).__name__}: {exc}")
                self.offsets, self._committed = OffsetTracker(), {}
                if stop.wait(self.config_retry_s):
                    return

    def _run(self, stop: threading.Event) -> None:
        # The integration's own topics are created explicitly, never by auto-create.
        ensure_topics(AdminClient(self.settings.client_config()), Topology().integration_topics(self.name))
        if not self._open_sink(stop):
            self._set_health("stopped")
            return
        consumer = Consumer(self.consumer_config())
        self._consumer = consumer
        consumer.subscribe([self.topic], on_revoke=self._on_revoke, on_lost=self._on_lost)
        self._set_health("healthy")
        batch: list[_Record] = []
        batch_bytes, opened = 0, 0.0
        limits = self.sink.limits
        try:
            while not stop.is_set():
                if batch:  # an open batch waits for more until its linger is over
                    wait = limits.linger_s - (time.monotonic() - opened)
                    msgs = consumer.consume(max(1, limits.max_records - len(batch)), max(0.0, wait))
                else:  # none open: the first record opens one at once (consume(n) would wait for n)
                    msgs = consumer.consume(1, 0.5)
                    if msgs and limits.max_records > 1:
                        msgs += consumer.consume(limits.max_records - 1, 0)
                for msg in msgs:
                    record = self._admit(msg)
                    if record is not None:
                        if not batch:
                            opened = time.monotonic()
                        batch.append(record)
                        batch_bytes += len(msg.value() or b"")
                if batch:
                    crash_point("connector.mid-batch")
                full = len(batch) >= limits.max_records or batch_bytes >= limits.max_bytes
                if batch and (full or time.monotonic() - opened >= limits.linger_s):
                    self._deliver(batch, stop)
                    batch, batch_bytes = [], 0
                self._commit()
                self._heartbeat()
            if batch:  # stopping: finish the batch in hand, within drain_s
                self._deliver(batch, stop, deadline=time.monotonic() + self.drain_s)
            self._commit(wait=True)
        finally:
            self._set_health("stopped")
            consumer.close()
            self._dlq.flush(10)
            self.sink.close()

    def run_bounded(
        self,
        records: Iterable[Message],
        stop: threading.Event,
        *,
        accept: Callable[[Message], bool] = lambda msg: True,
        on_resolved: Callable[[list[Message]], None] | None = None,
        on_progress: Callable[[int], None] | None = None,
    ) -> bool:
        """Deliver a bounded stretch of history (replay, dead-letter redrive) through the
        same filters, batching, retries and dead letters as the live loop — but outside the
        integration's consumer group, so no group position moves. ``accept`` skips records
        (outside the time window, already redriven); ``on_resolved`` receives each batch's
        records once every one is delivered or dead-lettered (dead letters stored).
        Returns False when stopped before the end."""
        ensure_topics(AdminClient(self.settings.client_config()), Topology().integration_topics(self.name))
        if not self._open_sink(stop):
            return False
        self._set_health("healthy")
        limits = self.sink.limits
        batch: list[_Record] = []
        batch_msgs: list[Message] = []
        batch_bytes = 0

        def flush() -> bool:
            nonlocal batch, batch_msgs, batch_bytes
            if batch:
                self._deliver(batch, stop, deadline=None)
            if stop.is_set() and any(not self.offsets.is_resolved(*_where(m)) for m in batch_msgs):
                return False
            if self._dlq.flush(30):
                raise RuntimeError(f"{self.dlq_topic} is not acknowledging dead letters")
            if on_resolved and batch_msgs:
                on_resolved(batch_msgs)
            batch, batch_msgs, batch_bytes = [], [], 0
            return True

        try:
            for msg in records:
                if on_progress:
                    on_progress(1)
                if not accept(msg):
                    continue
                record = self._admit(msg)
                batch_msgs.append(msg)
                if record is not None:
                    batch.append(record)
                    batch_bytes += len(msg.value() or b"")
                full = len(batch) >= limits.max_records or batch_bytes >= limits.max_bytes or len(batch_msgs) >= 5000
                if full and not flush():
                    return False
                if stop.is_set():
                    break
            return flush() and not stop.is_set()
        finally:
            self._set_health("stopped")
            self._dlq.flush(10)
            self.sink.close()

    def _open_sink(self, stop: threading.Event) -> bool:
        """Let a stateful sink load its state; until it can, the integration is unhealthy."""
        while hasattr(self.sink, "open") and not stop.is_set():
            try:
                self.sink.open(SinkContext(self.name, self.settings))
                return True
            except Exception as exc:  # noqa: BLE001 - reported, retried; the runner stays up
                self._unhealthy(f"cannot start: {exc}")
                stop.wait(self.config_retry_s)
        return not stop.is_set()

    def _admit(self, msg: Message) -> _Record | None:
        if msg.error():
            log.warning("%s: consumer error %s", self.name, msg.error())
            return None
        self.offsets.consumed(*_where(msg))
        try:
            event = self.codec.decode(msg.value(), *_where(msg))
            decision = filter_for_integration(event, self.rules(), self.name, self.category)
        except Exception as exc:  # noqa: BLE001 - undecodable or a rule that raises: the record's fault
            self._dead_letter(msg, exc)
            return None
        if decision is None:
            self.metrics.filtered.labels(self.name).inc()
            self.offsets.resolved(*_where(msg))
            return None
        return _Record(msg, decision.event)

    def _deliver(self, batch: list[_Record], stop: threading.Event, deadline: float | None = None) -> None:
        """Resolve every record of ``batch``: delivered or dead-lettered. Returns early only
        when stopping past ``deadline``; those records stay unresolved and uncommitted.

        Poison after retries: records that failed ``poison_after`` times together are split
        in two and retried apart, down to one record; one record that still fails that often
        while others of the batch were delivered is dead-lettered with the vendor's last
        answer. A vendor that refuses everything (an outage) delivers nothing, so nothing is
        dead-lettered: it is retried until it answers (split requests, never lost)."""
        queue, attempt = [batch], 0
        failures: dict[tuple[int, int, int], int] = {}  # (first, last, size) of records failing together
        progressed = False
        encode = getattr(self.sink, "encode", None)
        while queue:
            part = queue.pop(0)
            if (
                encode is not None
                and len(part) > 1
                and len(encode([r.event for r in part])) > self.sink.limits.max_bytes
            ):
                # Batches are gathered by stored Avro bytes; the vendor counts the body it gets,
                # often several times larger: halves until each body is within the limit.
                half = len(part) // 2
                queue[:0] = [part[:half], part[half:]]
                continue
            started = time.monotonic()
            try:
                result = self.sink.write([r.event for r in part])
            except Split as exc:
                if len(part) == 1:
                    self._dead_letter(part[0].msg, str(exc) or "the vendor refuses this event")
                    continue
                half = len(part) // 2
                queue[:0] = [part[:half], part[half:]]
                continue
            except ConfigError as exc:
                self._unhealthy(str(exc))
                if not self._wait(self.config_retry_s, stop, deadline):
                    return
                queue.insert(0, part)
                continue
            except Retry as exc:
                result = BatchResult(retry={i: str(exc) for i in range(len(part))}, retry_after=exc.retry_after)
            except Exception as exc:  # noqa: BLE001 - timeouts, resets: transient by default
                result = BatchResult(retry={i: f"{type(exc).__name__}: {exc}" for i in range(len(part))})
            finally:
                self.metrics.latency.labels(self.name).observe(time.monotonic() - started)

            for i, reason in result.rejected.items():
                self._dead_letter(part[i].msg, reason)
            unsent = set(result.unsent)
            delivered = [
                r for i, r in enumerate(part) if i not in result.rejected and i not in result.retry and i not in unsent
            ]
            for r in delivered:
                self.offsets.resolved(*_where(r.msg))
            if delivered:
                progressed = True
                self.metrics.delivered.labels(self.name).inc(len(delivered))
                self.health.delivered += len(delivered)
                self.health.last_delivery = time.time()
                self.health.last_error = None  # superseded: the vendor takes events again
            if unsent:
                # The vendor stopped at a bad record (Splunk HEC does): the rest goes again at
                # once, in order, before anything else — backing off would stall the stream
                # for every bad record in it.
                queue.insert(0, [part[i] for i in sorted(unsent)])
            if result.retry and result.throttled:
                # The sink queues to respect the vendor's rate: no failure, no backoff growth.
                again = [part[i] for i in sorted(result.retry)]
                self.metrics.throttled.labels(self.name).inc(len(again))
                if not self._wait(result.retry_after or 1.0, stop, deadline):
                    return
                queue.insert(0, again)
            elif result.retry:
                again = [part[i] for i in sorted(result.retry)]
                self.metrics.retried.labels(self.name).inc(len(again))
                self.metrics.failed_batches.labels(self.name).inc()
                self.health.retried += len(again)
                reason = redact(next(iter(result.retry.values())))
                self._set_health("retrying", reason)
                log.warning("%s: %d of %d events to retry (%s)", self.name, len(again), len(part), reason)
                together = (id(again[0]), id(again[-1]), len(again))
                failures[together] = tries = failures.get(together, 0) + 1
                if tries >= self.poison_after and len(again) == 1 and progressed:
                    self._dead_letter(
                        again[0].msg,
                        f"failed {tries} times while other events were delivered; the vendor's last answer: {reason}",
                    )
                    continue
                if not self._wait(self.backoff.delay(attempt, result.retry_after), stop, deadline):
                    return
                attempt += 1
                if tries >= self.poison_after and len(again) > 1:
                    half = len(again) // 2  # one of the halves holds what the vendor cannot take
                    log.warning(
                        "%s: %d events failed %d times together; retrying them in two halves",
                        self.name,
                        len(again),
                        tries,
                    )
                    queue[:0] = [again[:half], again[half:]]
                    continue
                queue.insert(0, again)
            else:
                attempt = 0
                if self.health.state != "healthy":
                    log.info("%s: delivering again", self.name)
                self._set_health("healthy")
        log.info(
            "%s: batch of %d resolved (%d delivered so far, %d dead-lettered)",
            self.name,
            len(batch),
            self.health.delivered,
            self.health.dead_lettered,
        )
        crash_point("connector.delivered")
        if self.on_batch:
            self.on_batch("delivered")

    def _heartbeat(self) -> None:
        """The dead-man's switch: a sink with a heartbeat (``heartbeat_s`` not None) tells its
        vendor every ``heartbeat_s`` that this integration is alive — only from the delivery
        loop and only while healthy, so a stopped, wedged or failing connector goes silent
        and the vendor alerts. A heartbeat that fails is logged and counted; it does not
        change delivery health (deliveries say that themselves)."""
        interval = getattr(self.sink, "heartbeat_s", None)
        if not interval or self.health.state != "healthy" or time.monotonic() < self._next_heartbeat:
            return
        self._next_heartbeat = time.monotonic() + interval
        try:
            self.sink.heartbeat()
        except (Retry, ConfigError) as exc:
            self.metrics.heartbeat_failures.labels(self.name).inc()
            if self._heartbeat_ok is not False:
                log.warning("%s: heartbeat not accepted: %s", self.name, redact(str(exc)))
            self._heartbeat_ok = False
            return
        self.metrics.heartbeats.labels(self.name).inc()
        self.health.last_heartbeat = time.time()
        if self._heartbeat_ok is False:
            log.info("%s: heartbeats accepted again", self.name)
        self._heartbeat_ok = True

    def _wait(self, seconds: float, stop: threading.Event, deadline: float | None) -> bool:
        """Sleep with the partitions paused, polling so the group keeps us. False: give up."""
        consumer = self._consumer
        if consumer is None:  # a bounded run: no group to keep; stopping keeps what is owed
            return not stop.wait(seconds)
        consumer.pause(consumer.assignment())
        rewound: set[TopicPartition] = set()
        try:
            until = time.monotonic() + seconds
            while time.monotonic() < until:
                if deadline is not None and time.monotonic() > deadline:
                    return False
                if deadline is None and stop.is_set():
                    # Stopping while the vendor is failing: keep what is owed for the next start.
                    return False
                for msg in consumer.consume(100, min(0.2, max(0.0, until - time.monotonic()))):
                    # Paused partitions deliver nothing, but a rebalance may hand us new ones:
                    # rewind each to its first record and pause it too.
                    if msg.error():
                        continue
                    topic, partition, _ = _where(msg)
                    tp = TopicPartition(topic, partition)
                    if tp not in rewound:
                        rewound.add(tp)
                        consumer.seek(TopicPartition(*_where(msg)))
                        consumer.pause([tp])
            return True
        finally:
            consumer.resume(consumer.assignment())

    # -- outcomes ---------------------------------------------------------------------
    def _dead_letter(self, msg: Message, error: BaseException | str) -> None:
        if redact(str(error)) != str(error):  # a vendor answer quoting a URL that holds a key
            error = redact(str(error))
        headers: list[tuple[str, str | bytes | None]] = [
            *dead_letter_headers(f"connector:{self.name}", error, *_where(msg))
        ]
        self._dlq.produce(self.dlq_topic, msg.value(), msg.key(), headers=headers)
        crash_point("connector.dead-letter")
        self._dlq.poll(0)
        self.offsets.resolved(*_where(msg))
        self.metrics.dead_lettered.labels(self.name).inc()
        self.health.dead_lettered += 1
        self._error(f"dead-lettered {msg.topic()}[{msg.partition()}]@{msg.offset()}: {error}")
        log.warning("%s: dead-lettered %s[%d]@%d: %s", self.name, *_where(msg), error)

    def _unhealthy(self, reason: str) -> None:
        reason = redact(reason)
        if self.health.state != "unhealthy":
            log.error("%s: configuration problem, sending stopped, data kept: %s", self.name, reason)
        self._set_health("unhealthy", reason)

    def _set_health(self, state: str, error: str | None = None) -> None:
        self.health.state = state
        if error is not None:
            self._error(error)
        self.metrics.healthy.labels(self.name).set(1 if state in ("healthy", "starting") else 0)

    def _error(self, error: str) -> None:
        self.health.errors += 1
        self.health.last_error = redact(str(error))  # published on the status topic
        self.health.last_error_at = time.time()

    # -- offsets ----------------------------------------------------------------------
    def _commit(self, wait: bool = False) -> None:
        """Asynchronous while running (a lost commit only means redelivery); synchronous
        when stopping or handing partitions over."""
        consumer = self._consumer
        if consumer is None:
            return
        committable = self.offsets.committable()
        offsets = [TopicPartition(t, p, o) for (t, p), o in committable.items() if self._committed.get((t, p)) != o]
        if not offsets:
            return
        if self._dlq.flush(30):  # dead letters are part of "resolved": they must be stored first
            log.error("%s: dead-letter topic not acknowledging; not committing", self.name)
            return
        try:
            if wait:
                consumer.commit(offsets=offsets, asynchronous=False)
            else:
                consumer.commit(offsets=offsets, asynchronous=True)
        except KafkaException as exc:
            log.warning("%s: commit failed (%s); records will be redelivered", self.name, exc.args[0])
            return
        self._committed.update({(tp.topic, tp.partition): tp.offset for tp in offsets})
        crash_point("connector.committed")
        if self.on_batch:
            self.on_batch("committed")
        self._update_lag(consumer)

    def _update_lag(self, consumer: Consumer) -> None:
        lag = 0
        for tp in consumer.position(consumer.assignment()):
            try:
                _, high = consumer.get_watermark_offsets(tp, cached=True)  # see BROKER.md: not ListOffsets
            except KafkaException:
                continue
            if high >= 0 and tp.offset >= 0:
                lag += max(0, high - tp.offset)
        self.metrics.lag.labels(self.name).set(lag)
        self.health.lag = lag

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self._commit(wait=True)
        self._forget(partitions)

    def _on_lost(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self._forget(partitions)

    def _forget(self, partitions: list[TopicPartition]) -> None:
        tps = [(tp.topic, tp.partition) for tp in partitions]
        self.offsets.forget(tps)
        for tp in tps:
            self._committed.pop(tp, None)
