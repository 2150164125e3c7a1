"""The application producer: what Continuum calls when something happens.

    from continuum_events.producers import EventType, dispatch_event

    dispatch_event(EventType.PRINTER_OFFLINE,
                   {"printer_id": "p-17", "printer_name": "Finance 3F", "consecutive_failures": 3},
                   severity="warning")

``dispatch_event`` enriches the payload into an envelope (event_id, timestamp,
severity, source), validates it against ``schemas/event.avsc`` in the same pass
that encodes it (a wrong field or type raises ``ValueError`` naming it), keys it
by printer, and hands it to librdkafka — an in-memory queue, so the caller never
waits on the network. It returns the event_id.

Delivery is acks=all with the idempotent producer. When the brokers are
unreachable, new events go to a durable local :class:`Spool` instead; a background
thread sends the spool, oldest first, once a broker answers again, and only then
returns to the direct path, so a printer's events keep their order. Events still
inside librdkafka when it gives up (or when the app closes) are moved to the spool
too. What is *not* covered: an app killed with SIGKILL loses the events librdkafka
held in memory at that instant (at most ``linger`` worth while the broker is up).

An event the spool cannot take — its bound reached, or its disk full — is refused,
never silently: it is counted in ``stats().dropped``, logged at ERROR (a line every
few seconds, not one per event), and ``dispatch_async`` raises :class:`SpoolFull`
(:class:`SpoolUnavailable` when the disk refused it). Nothing is acknowledged that is
not on disk or acknowledged by the brokers; the spool takes events again as soon as
its disk has room.
"""

from __future__ import annotations

import asyncio
import atexit
import functools
import itertools
import logging
import os
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Mapping
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Producer

from continuum_events import history
from continuum_events.avro import SchemaViolation
from continuum_events.cluster import cluster_traits
from continuum_events.codec import EventCodec
from continuum_events.events import DEFAULT_SEVERITY, PAYLOAD_BRANCH, EventType, Severity, event_key, new_event_id
from continuum_events.producers.coerce import as_text, coerce
from continuum_events.producers.spool import Spool, SpooledRecord, SpoolFull, SpoolUnavailable, default_spool_path
from continuum_events.settings import KafkaSettings
from continuum_events.topology import EVENTS_TOPIC, MAX_EVENT_BYTES

log = logging.getLogger(__name__)

#: ``1``: every producer is strict (see :meth:`EventProducer.dispatch`).
STRICT_ENV = "CONTINUUM_STRICT_EVENTS"

#: librdkafka settings for the event producer; callers may override any of them.
PRODUCER_DEFAULTS: dict[str, Any] = {
    "acks": "all",
    "enable.idempotence": True,
    "linger.ms": 5,
    "compression.type": "lz4",
    # The Java client's partitioner: a key lands on the same partition whichever
    # client (Faust/aiokafka, Kafka Connect, ...) writes it.
    "partitioner": "murmur2_random",
    # librdkafka never gives up on an event by itself: a per-event timeout fails the oldest
    # events of a partition while newer ones still get through when the brokers return,
    # and the spooled older ones would land after them (librdkafka's documented gap). The
    # producer decides instead, for the whole queue at once and in order (HOLD_S below).
    "message.timeout.ms": 0,
    "queue.buffering.max.messages": 500_000,
    "queue.buffering.max.kbytes": 256 * 1024,
    "log.connection.close": False,
    # Topics are created by the topology at start-up, with their partition counts.
    "allow.auto.create.topics": False,
}

#: The spool engages only when no broker can take a write. One broker of a cluster going away
#: (a _TRANSPORT or _RESOLVE error for it) is librdkafka's to handle: it moves to the new
#: partition leaders and retries there, in the same idempotent session.
_DOWN_CODES = {KafkaError._ALL_BROKERS_DOWN}

#: How long librdkafka may hold events through an outage before they all move to the spool
#: (on disk, so a crash of the app loses none of them).
HOLD_S = 15.0
#: Once the brokers answer again, how long librdkafka gets to deliver what it holds (a
#: restarted broker may take seconds to lead its partitions again) before its session is
#: retired into the spool the same way; and how long a drain batch gets.
DELIVER_GRACE_S = 30.0

# Per event type: (Avro enum symbol, key function, union branch, default severity).
_TYPES = {
    t: (
        t.symbol,
        functools.partial(event_key, t.family),
        PAYLOAD_BRANCH[t.family],
        DEFAULT_SEVERITY.get(t.value, "info"),
    )
    for t in EventType
    if t is not EventType.UNKNOWN
}
_SEVERITIES = {s.value for s in Severity}


@dataclass(frozen=True)
class ProducerStats:
    """A snapshot; ``spooled`` is what waits on disk now, ``dropped`` what the spool refused
    (full, or its disk was); ``spool_error`` says why the spool's last write failed, None
    once a write succeeds again."""

    mode: str
    dispatched: int
    delivered: int
    in_memory: int
    spooled: int
    spool_bytes: int
    spool_max_bytes: int
    spooled_total: int
    dropped: int
    spool_error: str | None = None
    #: Spooled events that had been sent once without an answer and were found already
    #: written in the topic by the drain, so were not sent again.
    found_written: int = 0
    #: Calls made into events by :mod:`~continuum_events.producers.coerce` (each with a warning).
    adjusted: int = 0
    #: Calls that could not be events at all, kept in the spool's refused table.
    refused: int = 0


class EventProducer:
    """Validates, encodes and delivers events; see the module docstring.

    Collaborators come in with defaults, so a test can pass its own settings,
    codec, spool path or producer factory.
    """

    def __init__(
        self,
        settings: KafkaSettings | None = None,
        *,
        codec: EventCodec | None = None,
        topic: str = EVENTS_TOPIC,
        source: str = "continuum",
        spool_path: Path | None = None,
        spool_max_bytes: int = 512 << 20,
        producer_config: Mapping[str, Any] | None = None,
        producer_factory: Callable[[dict[str, Any]], Producer] = Producer,
        drain_batch: int = 5_000,
        on_delivered: Callable[[str], None] | None = None,
        strict: bool | None = None,
        hold_s: float = HOLD_S,
    ) -> None:
        self.settings = settings or KafkaSettings()
        self.codec = codec or EventCodec(
            self.settings.schema_registry(), auto_register=self.settings.schema_registry_auto_register
        )
        self.topic = topic
        self.source = source
        self.drain_batch = drain_batch
        self.hold_s = hold_s
        #: Called with each event_id the brokers acknowledge on the direct path (audit hooks, tests).
        self.on_delivered = on_delivered
        self._config = self.settings.client_config(
            **{**PRODUCER_DEFAULTS, "linger.ms": self.settings.linger_ms, **(producer_config or {})},
            error_cb=self._on_error,
            logger=logging.getLogger("librdkafka"),
        )
        self._factory = producer_factory
        self._producer = producer_factory(self._config)
        self._prefix = self.codec.prefix(topic)
        self._encode = self.codec.body_encoder()
        self.spool = Spool(spool_path or default_spool_path(), max_bytes=spool_max_bytes)
        # Dispatch order survives restarts: continue after anything still spooled.
        self._seq = itertools.count(max(time.time_ns(), self.spool.max_seq() + 1))
        self._lock = threading.Lock()
        self._spooling = len(self.spool) > 0
        self._fatal = False
        self._outage_since: float | None = None  # monotonic time the brokers went away
        self._held_through_outage = False  # the current producer saw its brokers go away
        self._closed = False
        self._dispatched = self._delivered = self._spooled_total = self._dropped = self._found_written = 0
        self._adjusted = self._refused = 0
        #: Raise ValueError for a call that is not an event exactly as given (see producers.coerce).
        self.strict = strict if strict is not None else os.environ.get(STRICT_ENV, "").lower() in {"1", "true", "yes"}
        self._last_logged: dict[str, float] = {}  # per kind of refusal, for rate-limited errors
        self._spool_error: SpoolUnavailable | None = None
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._poller = threading.Thread(target=self._poll_loop, name="continuum-producer-poll", daemon=True)
        self._drainer = threading.Thread(target=self._drain_loop, name="continuum-producer-drain", daemon=True)
        self._poller.start()
        self._drainer.start()
        if self._spooling:
            log.info("spool %s holds %d events from before; sending them first", self.spool.path, len(self.spool))

    # -- the API Continuum calls ---------------------------------------------------
    def dispatch(
        self,
        event_type: EventType | str,
        data: Mapping[str, Any],
        severity: Severity | str | None = None,
        *,
        source: str | None = None,
        details: Mapping[str, str] | None = None,
        timestamp_us: int | None = None,
        strict: bool | None = None,
    ) -> str:
        """Accept one event; returns its event_id. A call that is not an event as given is
        adjusted (:mod:`~continuum_events.producers.coerce`) or, if nothing can make it one,
        kept in the spool's refused table; with ``strict`` (default: the producer's) either
        raises ValueError naming every bad field."""
        return self._dispatch(event_type, data, severity, source, details, timestamp_us, None, strict)

    async def dispatch_async(
        self,
        event_type: EventType | str,
        data: Mapping[str, Any],
        severity: Severity | str | None = None,
        *,
        source: str | None = None,
        details: Mapping[str, str] | None = None,
        timestamp_us: int | None = None,
        strict: bool | None = None,
    ) -> str:
        """Like :meth:`dispatch`, but resolves once the event is durable: acknowledged by
        the brokers (acks=all) or written to the local spool."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[str] = loop.create_future()

        def settle(error: BaseException | None, event_id: str) -> None:
            if not future.done():
                future.set_exception(error) if error else future.set_result(event_id)

        def resolve(error: BaseException | None, event_id: str) -> None:
            try:
                loop.call_soon_threadsafe(settle, error, event_id)
            except RuntimeError:
                pass  # the caller's loop is closed: nobody waits, and librdkafka's thread must go on

        self._dispatch(event_type, data, severity, source, details, timestamp_us, resolve, strict)
        return await future

    def _dispatch(
        self,
        event_type: EventType | str,
        data: Mapping[str, Any],
        severity: Severity | str | None,
        source: str | None,
        details: Mapping[str, str] | None,
        timestamp_us: int | None,
        resolve: Callable[[BaseException | None, str], None] | None,
        strict: bool | None = None,
    ) -> str:
        strict = self.strict if strict is None else strict
        ts = timestamp_us if timestamp_us is not None else time.time_ns() // 1000
        try:  # the call as given: the common case, and the fast one
            event_id, key, value = self._build(event_type, data, severity, source, details, ts)
        except (ValueError, TypeError) as exc:
            # Not an event as given: make it one without losing a fact (producers.coerce),
            # or, when nothing can, keep it on disk with the reason (never raised unless strict).
            fixed = coerce(event_type, data, severity, details)
            label = fixed.event_type.value if fixed.event_type else repr(event_type)[:80]
            if strict:
                raise ValueError(f"{label}: {fixed.summary() or exc}") from None
            if fixed.problems:
                return self._refuse(label, data, severity, "; ".join(fixed.problems), resolve)
            try:
                event_id, key, value = self._build(
                    fixed.event_type, fixed.data, fixed.severity, source, fixed.details, ts
                )
            except ValueError as still:
                return self._refuse(label, data, severity, str(still), resolve)
            self._adjusted += 1
            if self._may_log("adjusted"):
                log.warning(
                    "%s: the call was adjusted to the event schema (%s); %d events adjusted so far "
                    "(stats().adjusted; strict=True raises instead)",
                    label,
                    fixed.summary()[:500],
                    self._adjusted,
                )
        self._send(next(self._seq), key, value, ts // 1000, event_id, resolve)
        return event_id

    def _build(
        self,
        event_type: EventType | str,
        data: Mapping[str, Any],
        severity: Severity | str | None,
        source: str | None,
        details: Mapping[str, str] | None,
        ts: int,
    ) -> tuple[str, bytes, bytes]:
        """(event_id, key, value) of a call that is an event exactly as given; ValueError if not."""
        try:
            symbol, key_of, branch, default_severity = _TYPES[event_type]  # type: ignore[index]
        except KeyError:
            raise ValueError(
                f"unknown event type {event_type!r}; known: {', '.join(t.value for t in _TYPES)}"
            ) from None
        if type(data) is not dict and not isinstance(data, Mapping):
            raise ValueError(f"{event_type}: the payload must be a mapping, got {type(data).__name__}")
        if "details" in data:
            data = dict(data)
            details = {**data.pop("details"), **(details or {})}
        severity = severity or default_severity
        if severity not in _SEVERITIES:
            raise ValueError(f"{event_type}: severity {severity!r} is not one of info, warning, error, critical")
        event_id = new_event_id()
        record = {
            "event_id": event_id,
            "event_type": symbol,
            "severity": severity,
            "timestamp": ts,
            "source": source or self.source,
            "payload": (branch, data),
            "details": details or {},
        }
        try:
            value = self._encode(record, self._prefix)
        except SchemaViolation as exc:
            raise ValueError(f"{EventType(event_type).value}: {exc}") from None
        if len(value) > MAX_EVENT_BYTES:
            # librdkafka would refuse it at produce(), and a spooled copy would block the spool.
            raise ValueError(
                f"{EventType(event_type).value}: the event is {len(value):,} bytes encoded, over the "
                f"{MAX_EVENT_BYTES:,}-byte limit of every vendor; trim its details"
            )
        return event_id, key_of(data).encode(), value

    def _refuse(
        self,
        label: str,
        data: Any,
        severity: Any,
        reason: str,
        resolve: Callable[[BaseException | None, str], None] | None,
    ) -> str:
        """Keep a call that cannot be an event in the spool's ``refused`` table, with the reason:
        counted, logged, never raised (the app's ``except`` would only log and lose it)."""
        event_id = new_event_id()
        self._refused += 1
        try:
            self.spool.refuse(event_id, label, as_text(data), as_text(severity), reason)
        except SpoolUnavailable as exc:
            self._dropped += 1
            log.error("%s: not an event (%s), and the spool cannot keep it: %s", label, reason, exc.reason)
        else:
            if self._may_log("refused"):
                log.error(
                    "%s: not an event (%s); kept in %s (refused table, %d so far; "
                    "`continuum-events spool --refused` lists them)",
                    label,
                    reason,
                    self.spool.path,
                    self._refused,
                )
        if resolve:
            resolve(None, event_id)
        return event_id

    # -- delivery -------------------------------------------------------------------
    def _send(
        self,
        seq: int,
        key: bytes,
        value: bytes,
        ts_ms: int,
        event_id: str,
        resolve: Callable[[BaseException | None, str], None] | None,
    ) -> None:
        self._dispatched += 1
        if not self._spooling:
            try:
                with self._lock:  # never produce into a producer being replaced
                    if not self._spooling:
                        self._producer.produce(
                            self.topic,
                            value,
                            key,
                            timestamp=ts_ms,
                            on_delivery=functools.partial(self._on_delivery, seq, event_id, ts_ms, resolve),
                        )
                        return
            except BufferError:
                log.warning("librdkafka queue full (brokers slow or away); spooling new events")
                self._enter_spooling()
            except KafkaException as exc:
                log.warning("producer unusable (%s); spooling new events", exc.args[0])
                self._enter_spooling()
        refused = self._to_spool([SpooledRecord(seq, self.topic, key, value, ts_ms)])
        if resolve:
            resolve(refused, event_id)

    def _on_delivery(
        self,
        seq: int,
        event_id: str,
        ts_ms: int,
        resolve: Callable[[BaseException | None, str], None] | None,
        err: KafkaError | None,
        msg: Any,
    ) -> None:
        if err is None:
            self._delivered += 1
            if resolve:
                resolve(None, event_id)
            if self.on_delivered:
                self.on_delivered(event_id)
            return
        # Purged, or the producer went fatal: keep it on disk. Only a purge of the queue of a
        # producer whose brokers never went away proves it was never sent; a queued event may
        # be a retry of a request the lost broker wrote without answering. The timestamp is
        # the one it was produced with: librdkafka reports -1 for a failed message, which would
        # resend it stamped "now" and, worse, ask the broker's time index for "latest" when
        # the drain looks for a copy already written (it found none, and sent it twice).
        never_sent = err.code() == KafkaError._PURGE_QUEUE and not self._held_through_outage
        if not never_sent:
            log.debug("delivery of %s failed (%s); spooling", event_id, err)
        self._enter_spooling()
        refused = self._to_spool(
            [SpooledRecord(seq, msg.topic(), msg.key(), msg.value(), ts_ms, maybe_written=not never_sent)]
        )
        if resolve:
            resolve(refused, event_id)

    def _to_spool(self, records: list[SpooledRecord]) -> SpoolFull | None:
        """None when every record is on disk, else the error for whoever waits on them.

        A refusal is counted and logged, never silent — and never raised: this runs on the
        caller's thread and on librdkafka's callback threads."""
        try:
            accepted = self.spool.append(records)
        except SpoolUnavailable as exc:  # nothing of this write was stored
            self._dropped += len(records)
            self._spool_error = exc
            if self._may_log("unavailable"):
                log.error(
                    "spool %s cannot store events: %s; refusing new events until the disk has room again "
                    "(%d refused so far; events already spooled are kept)",
                    exc.path,
                    exc.reason,
                    self._dropped,
                )
            return exc
        self._spool_writes_again()
        self._spooled_total += accepted
        if accepted < len(records):
            self._dropped += len(records) - accepted
            if self._may_log("bound"):
                log.error(
                    "spool %s is full (%d bytes, bound %d): %d events refused so far; raise spool_max_bytes "
                    "or bring the brokers back",
                    self.spool.path,
                    self.spool.bytes,
                    self.spool.max_bytes,
                    self._dropped,
                )
            return _spool_full()
        return None

    def _may_log(self, kind: str, every_s: float = 10.0) -> bool:
        """Loud, but not one line per event: at most one line per ``kind`` every ``every_s``."""
        now = time.monotonic()
        if now - self._last_logged.get(kind, -every_s) < every_s:
            return False
        self._last_logged[kind] = now
        return True

    def _spool_writes_again(self) -> None:
        if self._spool_error is not None:
            self._spool_error = None
            log.warning("spool %s stores events again; %d events were refused in all", self.spool.path, self._dropped)

    def _on_error(self, err: KafkaError) -> None:
        if err.fatal():
            log.error("producer fatal error: %s; it will be replaced and its queue spooled", err)
            self._fatal = True
            self._enter_spooling()
        elif err.code() in _DOWN_CODES:
            if not self._spooling:
                log.warning("brokers unreachable (%s); spooling events to %s", err.str(), self.spool.path)
            self._held_through_outage = True
            if self._outage_since is None:
                self._outage_since = time.monotonic()
            self._enter_spooling()
        else:
            log.debug("producer error: %s", err)

    def _enter_spooling(self) -> None:
        self._spooling = True
        self._wake.set()

    def _poll_loop(self) -> None:
        while not self._stop.is_set():
            try:
                self._producer.poll(0.05)
            except KafkaException as exc:  # a fatal producer raises from poll until replaced
                if not self._fatal:
                    log.error("producer failed (%s); replacing it, its queue goes to the spool", exc.args[0])
                self._fatal = True
                self._enter_spooling()
                time.sleep(0.05)
            except Exception:  # a callback raised (an on_delivered hook): the poller must outlive it
                if self._may_log("callback"):
                    log.exception("a delivery callback failed; delivery reports keep flowing")

    def _drain_loop(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(0.5)
            self._wake.clear()
            if self._spooling and not self._closed:
                try:
                    self._drain_once()
                except SpoolUnavailable as exc:
                    # The spool cannot record a lease or a delivery: every row stays, and a
                    # row already sent whose delete failed is sent again (a duplicate, never a loss).
                    self._spool_error = exc
                    if self._may_log("drain"):
                        log.error(
                            "spool %s: drain paused, %s; every spooled event is kept, retrying until it "
                            "can write again",
                            exc.path,
                            exc.reason,
                        )
                except Exception:
                    log.exception("draining the spool failed; will retry")

    def _drain_once(self) -> None:
        if self._fatal:
            self._replace_producer()  # a fatal producer can do nothing more, not even metadata
        if not self._broker_reachable():
            if (
                len(self._producer)
                and self._outage_since is not None
                and time.monotonic() - self._outage_since > self.hold_s
            ):
                log.warning(
                    "brokers unreachable for %.0f s; moving the %d events librdkafka holds to the spool",
                    time.monotonic() - self._outage_since,
                    len(self._producer),
                )
                self._replace_producer()
            return
        self._outage_since = None
        # What the producer still holds was dispatched before anything spooled, so it goes
        # first, and all of it before the spool: the spool is sent only once librdkafka is
        # empty, which keeps each printer's events in dispatch order. The producer is kept,
        # not replaced: its idempotent session retries a batch the broker wrote but never
        # acknowledged (a broker killed mid-request) under the same producer id and sequence,
        # and the broker drops the copy; a new session would write it twice. A session the
        # brokers no longer honour (Tansu after a restart) delivers nothing: after
        # DELIVER_GRACE_S it is retired, what it held moving to the spool (checked against
        # the topic before it is sent again).
        if not self._settled(lambda: self._producer.flush(DELIVER_GRACE_S)):
            return
        if len(self._producer):
            log.warning(
                "the brokers answer, yet %d events held through the outage are still not acknowledged "
                "after %.0f s; retiring the producer session, its events go to the spool",
                len(self._producer),
                DELIVER_GRACE_S,
            )
            self._replace_producer()
            return
        while batch := self.spool.claim(self.drain_batch):
            try:
                written = self._written_already([r for r in batch if r.maybe_written])
            except (KafkaException, TimeoutError) as exc:
                self.spool.release([r.seq for r in batch])
                log.warning(
                    "spool drain: cannot check the topic for events sent before without an answer (%s); retrying later",
                    exc,
                )
                return
            if written:
                self._found_written += len(written)
                log.info(
                    "spool drain: %d events sent before without an answer were written then; not sent again",
                    len(written),
                )
                batch = [r for r in batch if r.seq not in written]
            delivered: list[int] = list(written)
            unsure: list[int] = []  # sent, no answer: possibly written

            def done(
                seq: int, err: KafkaError | None, msg: Any, delivered: list[int] = delivered, unsure: list[int] = unsure
            ) -> None:
                if err is None:
                    delivered.append(seq)
                else:  # even a purged queue may hold a retry of a request the broker wrote
                    unsure.append(seq)

            def send(rows: list[SpooledRecord] = batch) -> None:
                for r in rows:
                    self._producer.produce(
                        r.topic, r.value, r.key, timestamp=r.ts_ms, on_delivery=functools.partial(done, r.seq)
                    )
                self._producer.flush(DELIVER_GRACE_S)

            if not self._settled(send) or len(self._producer):
                self._replace_producer()  # what it held reports back now, delivered or not
            self.spool.delete(delivered)
            self._spool_writes_again()
            self._delivered += len(delivered)
            if len(delivered) < len(batch) + len(written):
                self.spool.release([r.seq for r in batch if r.seq not in set(delivered)], maybe_written=unsure)
                log.warning("spool drain: %d of %d sent; retrying later", len(delivered) - len(written), len(batch))
                if batch and len(delivered) == len(written) and self._broker_reachable():
                    # The brokers answer, yet not one record of the batch was acknowledged: the
                    # session is one they no longer honour (a broker that lost its state, as
                    # Tansu does on restart). A new producer starts a new one.
                    log.warning(
                        "spool drain: the brokers answer but acknowledged nothing; starting a new producer session"
                    )
                    self._replace_producer()
                return
            log.info("spool drain: sent %d events, %d left", len(delivered), len(self.spool))
        with self._lock:
            self.spool.refresh()
            if len(self.spool) == 0:
                self._spooling = False
                log.info("spool empty; events go straight to the brokers again")

    def _written_already(self, rows: list[SpooledRecord]) -> set[int]:
        """The seqs of ``rows`` whose exact record (value bytes: the event_id makes each unique)
        is already in its topic. Each topic is read from the broker's first offset at or after
        the oldest row's timestamp to its end: the old session's requests are all settled by
        now (the drain flushed it first), so a write of theirs is below the end."""
        if not rows:
            return set()
        wanted: dict[str, dict[bytes, int]] = defaultdict(dict)
        since: dict[str, int] = {}
        for r in rows:
            wanted[r.topic][r.value] = r.seq
            since[r.topic] = min(since.get(r.topic, r.ts_ms), r.ts_ms)
        found: set[int] = set()
        time_index = cluster_traits(self.settings).time_index
        consumer = history.history_consumer(self.settings, "spool-check")
        try:
            for topic, values in wanted.items():
                marks = history.watermarks(consumer, topic)
                starts = history.offsets_for_time(consumer, topic, since[topic], marks, time_index=time_index)
                ranges = {p: (starts[p], marks[p].end) for p in marks}
                with closing(history.read_range(consumer, topic, ranges)) as records:
                    for msg in records:
                        seq = values.pop(msg.value(), None)
                        if seq is not None:
                            found.add(seq)
                            if not values:
                                break
        finally:
            consumer.close()
        return found

    def _settled(self, step: Callable[[], Any]) -> bool:
        """Run a step of the drain; False when the producer went fatal in it (librdkafka
        raises from produce and flush then), so it is replaced before the next step."""
        try:
            step()
        except (KafkaException, SystemError) as exc:  # SystemError: a fatal error met inside flush's callbacks
            if self._may_log("drain-fatal"):
                log.error("producer failed while draining the spool (%s); replacing it", exc)
            self._fatal = True
            return False
        return True

    def _broker_reachable(self) -> bool:
        try:
            meta = self._producer.list_topics(timeout=2)  # all topics: never triggers auto-create
        except KafkaException:
            return False
        topic = meta.topics.get(self.topic)
        return bool(topic and topic.error is None and topic.partitions)

    def _replace_producer(self) -> None:
        """Retire the producer that lived through the outage before the spool drains.

        What it never sent is purged into the spool (safe: not written anywhere). What is
        in flight may already be written, so its outcome is awaited (delivered, or failed
        into the spool when librdkafka gives up) rather than purged and sent twice — unless
        the producer is fatal, when nothing more will come of it."""
        with self._lock:
            old, self._producer = self._producer, self._factory(self._config)
            fatal = self._fatal
            self._fatal = False
        _purge_into_callbacks(old, in_flight=fatal, timeout=5.0)
        # What the old one held has reported back by now; the new one starts clean unless
        # the brokers are still away.
        self._held_through_outage = self._outage_since is not None

    # -- lifecycle ------------------------------------------------------------------
    def flush(self, timeout: float = 30.0) -> int:
        """Wait until librdkafka's queue is empty (delivered or spooled); returns what is left."""
        deadline = time.monotonic() + timeout
        while len(self._producer) and time.monotonic() < deadline:
            self._producer.flush(min(0.5, max(0.0, deadline - time.monotonic())))
        return len(self._producer)

    def wait_drained(self, timeout: float = 60.0) -> bool:
        """Wait until nothing is owed: librdkafka empty and the spool sent."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self._spooling and self.flush(0.5) == 0:
                return True
            self._wake.set()
            time.sleep(0.1)
        return False

    def close(self, timeout: float = 10.0) -> None:
        """Deliver what can be delivered within ``timeout``; spool the rest; stop."""
        if self._closed:
            return
        self._closed = True
        self._stop.set()
        self._wake.set()
        self._drainer.join(timeout)
        self._poller.join(timeout)
        if not self._spooling:
            self._producer.flush(timeout)
        _purge_into_callbacks(self._producer)
        if len(self.spool):
            log.info(
                "closing with %d events spooled in %s; they are sent on next start", len(self.spool), self.spool.path
            )
        self.spool.close()

    def stats(self) -> ProducerStats:
        return ProducerStats(
            mode="spooling" if self._spooling else "direct",
            dispatched=self._dispatched,
            delivered=self._delivered,
            in_memory=len(self._producer),
            spooled=len(self.spool),
            spool_bytes=self.spool.bytes,
            spool_max_bytes=self.spool.max_bytes,
            spooled_total=self._spooled_total,
            dropped=self._dropped,
            spool_error=self._spool_error.reason if self._spool_error else None,
            found_written=self._found_written,
            adjusted=self._adjusted,
            refused=self._refused,
        )

    def __enter__(self) -> EventProducer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _purge_into_callbacks(producer: Producer, in_flight: bool = True, timeout: float = 5.0) -> None:
    """Abandon what a producer still holds; each message's delivery callback fires with
    ``_PURGE_QUEUE`` and moves it to the spool. With ``in_flight`` off, requests already
    sent are left to finish (until ``timeout``, then purged too). Purged in-flight
    messages may already have been written: that can duplicate (never lose) an event."""
    try:
        producer.purge(in_queue=True, in_flight=in_flight)
    except KafkaException as exc:
        log.warning("purge failed (%s); collecting delivery reports instead", exc.args[0])
    deadline = time.monotonic() + timeout
    while len(producer) and time.monotonic() < deadline:
        try:
            producer.poll(0.05)
        except KafkaException:
            pass  # a fatal producer re-raises its error; the reports still flow
    if len(producer) and not in_flight:
        _purge_into_callbacks(producer, in_flight=True, timeout=5.0)
    if len(producer):
        log.error("%d events could not be moved from librdkafka to the spool before the timeout", len(producer))


def _spool_full() -> SpoolFull:
    return SpoolFull("the local spool is full and the brokers are unreachable; the event was not accepted")


# -- the module-level API Continuum already calls ------------------------------------
_default: EventProducer | None = None
_default_lock = threading.Lock()


def configure(**kwargs: Any) -> EventProducer:
    """Replace the process-wide producer (closing the old one)."""
    global _default
    with _default_lock:
        if _default is not None:
            _default.close()
        _default = EventProducer(**kwargs)
        return _default


def get_producer() -> EventProducer:
    """The process-wide producer, built from the environment on first use."""
    global _default
    if _default is None:
        with _default_lock:
            if _default is None:
                _default = EventProducer()
                atexit.register(_default.close)
    return _default


def dispatch_event(
    event_type: EventType | str, data: Mapping[str, Any], severity: Severity | str | None = None, **kwargs: Any
) -> str:
    """Dispatch one event through the process-wide producer; returns its event_id."""
    return get_producer().dispatch(event_type, data, severity, **kwargs)


async def dispatch_event_async(
    event_type: EventType | str, data: Mapping[str, Any], severity: Severity | str | None = None, **kwargs: Any
) -> str:
    """Dispatch and await durability (broker acknowledgement or the local spool)."""
    return await get_producer().dispatch_async(event_type, data, severity, **kwargs)
