"""What an operator does to integrations — one implementation, behind the CLI (and any API).

    connect(settings, spec)                       # config topic + filters + default routing + start position
    disconnect(settings, "splunk-prod")
    test_connection(spec)                         # the vendor's real check: a verdict or ConnectionFailed
    replay(settings, spec, start_ms, end_ms, stop)          # re-deliver a window to this integration only
    redrive(settings, spec, stop, reason="HTTP 400")        # dead letters back through delivery, once each

None of these moves another integration's consumer group: replay and redrive read
history with a group-less consumer and deliver through the same runtime as the live
connector (filters, batching, retries, dead letters, and the alerting incident ledger,
so a replay never pages twice).
"""

from __future__ import annotations

import fnmatch
import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import Consumer, KafkaException, Message, TopicPartition
from confluent_kafka.admin import AdminClient

from continuum_events.cluster import cluster_traits
from continuum_events.codec import EventCodec
from continuum_events.config import ConfigStore, write_config
from continuum_events.deadletter import DeadLetter, read_dead_letters
from continuum_events.follower import write_keys
from continuum_events.history import committed as group_committed
from continuum_events.history import history_consumer, offsets_for_window, read_range, watermarks
from continuum_events.integrations import INTEGRATION_PREFIX, IntegrationError, IntegrationSpec, connected
from continuum_events.rules import default_rule
from continuum_events.settings import KafkaSettings
from continuum_events.topology import (
    Topology,
    category_topic,
    connector_group,
    ensure_topics,
    integration_dlq_topic,
    redrive_ledger_topic,
)

log = logging.getLogger(__name__)


class ConnectionFailed(Exception):
    """The vendor's connection check failed; ``kind`` is "configuration" or "unreachable"."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


# -- connect, disconnect, test ----------------------------------------------------------
@dataclass
class Connected:
    spec: IntegrationSpec
    default_rule_written: bool
    #: Where the consumer group was placed ("earliest"/"latest"), or None: it had a position.
    positioned: str | None
    records_behind: int


def read_config(settings: KafkaSettings, timeout: float = 15.0) -> Mapping[str, Any]:
    store = ConfigStore(settings).start()
    try:
        if not store.wait_ready(timeout):
            raise TimeoutError(f"the config topic could not be read within {timeout:.0f} s")
        return store.values()
    finally:
        store.stop()


def connect(settings: KafkaSettings, spec: IntegrationSpec, config: Mapping[str, Any] | None = None) -> Connected:
    """Write ``spec`` and its filters to the config topic; set its category's default routing
    when the category has none; place a new integration's group at ``spec.start_from``."""
    config = read_config(settings) if config is None else config
    admin = AdminClient(settings.client_config())
    created = ensure_topics(admin, Topology().integration_topics(spec.name))
    try:
        return _connect(settings, spec, config)
    except BaseException:
        if spec.key not in config and created:  # a first connect that failed leaves nothing behind
            _undo_connect(admin, spec.name, created)
        raise


def _undo_connect(admin: AdminClient, name: str, topics: list[str]) -> None:
    # Its topics were new: so is its group (a disconnect keeps both, to resume from).
    futures = {
        **admin.delete_topics(topics, operation_timeout=30),
        **admin.delete_consumer_groups([connector_group(name)], request_timeout=30),
    }
    for what, future in futures.items():
        try:
            future.result(30)
        except KafkaException as exc:  # e.g. no such group: it was never placed
            log.debug("undoing the connect of %s: %s: %s", name, what, exc)


def _connect(settings: KafkaSettings, spec: IntegrationSpec, config: Mapping[str, Any]) -> Connected:
    positioned, behind = _place_group(settings, spec)
    stale = [k for k in config if k.startswith(f"rule/{spec.name}.filter.")]
    values: dict[str, Any] = dict.fromkeys(stale)
    values.update({r.key: r.model_dump(mode="json") for r in spec.rules()})
    category = spec.topic_category
    has_routing = any(
        k.startswith("rule/") and isinstance(v, dict) and v.get("category") == category and v.get("integration") is None
        for k, v in config.items()
    )
    if not has_routing:
        rule = default_rule(category)
        values[rule.key] = rule.model_dump(mode="json")
    values[spec.key] = spec.model_dump(mode="json")  # last: followers see the filters first
    write_config(settings, values)
    return Connected(spec, not has_routing, positioned, behind)


def _place_group(settings: KafkaSettings, spec: IntegrationSpec) -> tuple[str | None, int]:
    """A group with no committed position is placed explicitly (not left to
    auto.offset.reset at its first join, which would skip what arrives in between)."""
    topic = category_topic(spec.topic_category)
    reader = history_consumer(settings, "connect")
    group = Consumer(settings.client_config(**{"group.id": connector_group(spec.name), "enable.auto.commit": False}))
    try:
        ranges = watermarks(reader, topic)
        committed = group_committed(group, [TopicPartition(topic, p) for p in ranges])
        if any(tp.offset >= 0 for tp in committed):
            return None, sum(
                max(0, ranges[tp.partition].end - max(tp.offset, ranges[tp.partition].start)) for tp in committed
            )
        earliest = spec.start_from == "earliest"
        group.commit(
            offsets=[TopicPartition(topic, p, r.start if earliest else r.end) for p, r in ranges.items()],
            asynchronous=False,
        )
        return spec.start_from, sum(r.end - r.start for r in ranges.values()) if earliest else 0
    finally:
        group.close()
        reader.close()


def disconnect(settings: KafkaSettings, name: str, config: Mapping[str, Any] | None = None) -> IntegrationSpec:
    """Remove the integration and its filters; its group and dead letters stay (a
    reconnect resumes where it stopped). Unknown name: :class:`IntegrationError`."""
    config = read_config(settings) if config is None else config
    spec = connected(config).get(name)
    if spec is None and INTEGRATION_PREFIX + name not in config:
        known = ", ".join(sorted(connected(config))) or "none"
        raise IntegrationError(f"no integration named {name!r} is connected (connected: {known})")
    values: dict[str, Any] = {k: None for k in config if k.startswith(f"rule/{name}.filter.")}
    values[INTEGRATION_PREFIX + name] = None
    write_config(settings, values)
    return spec  # type: ignore[return-value]


def test_connection(spec: IntegrationSpec) -> str:
    """The vendor's own check; returns its verdict or raises :class:`ConnectionFailed`."""
    from continuum_events.connectors.base import ConfigError, Retry

    try:
        sink = spec.build_sink()
    except IntegrationError as exc:
        raise ConnectionFailed("configuration", str(exc)) from None
    try:
        return sink.check()
    except ConfigError as exc:
        raise ConnectionFailed("configuration", str(exc)) from None
    except Retry as exc:
        raise ConnectionFailed("unreachable", str(exc)) from None
    finally:
        sink.close()


# -- replay and redrive ------------------------------------------------------------------
@dataclass
class Delivery:
    """The outcome of a replay or a redrive."""

    considered: int = 0
    selected: int = 0
    delivered: int = 0
    dead_lettered: int = 0
    filtered: int = 0
    completed: bool = False
    seconds: float = 0.0
    by_partition: dict[int, tuple[int, int]] = field(default_factory=dict)


def _runner(settings: KafkaSettings, spec: IntegrationSpec, config: Mapping[str, Any]) -> Any:
    from continuum_events.connectors.runtime import IntegrationRunner
    from continuum_events.rules import Rule, RuleSet

    rules = RuleSet.of([Rule.model_validate(v) for k, v in config.items() if k.startswith("rule/") and v])
    return IntegrationRunner(spec.name, spec.topic_category, spec.build_sink(), settings, rules=lambda: rules)


def replay(
    settings: KafkaSettings,
    spec: IntegrationSpec,
    start_ms: int | None,
    end_ms: int | None,
    stop: threading.Event,
    *,
    config: Mapping[str, Any] | None = None,
    on_plan: Callable[[int], None] | None = None,
    on_progress: Callable[[int], None] | None = None,
) -> Delivery:
    """Re-deliver the records of the integration's category topic whose timestamps fall in
    [start_ms, end_ms) to this integration only. The window's bounds come from the broker's
    time index on Apache Kafka, from a client-side binary search on record timestamps where
    the broker's is wrong (Tansu); the records are then filtered by exact timestamp."""
    config = read_config(settings) if config is None else config
    started = time.monotonic()
    topic = category_topic(spec.topic_category)
    reader = history_consumer(settings, f"replay-{spec.name}")
    try:
        ranges = offsets_for_window(reader, topic, start_ms, end_ms, time_index=cluster_traits(settings).time_index)
        result = Delivery(by_partition=dict(ranges))
        if on_plan:
            on_plan(sum(end - begin for begin, end in ranges.values()))

        def in_window(msg: Message) -> bool:
            result.considered += 1
            ts = msg.timestamp()[1]
            inside = (start_ms is None or ts >= start_ms) and (end_ms is None or ts < end_ms)
            result.selected += inside
            return inside

        return _deliver_history(
            settings,
            spec,
            config,
            reader,
            topic,
            ranges,
            stop,
            result,
            started,
            accept=in_window,
            on_progress=on_progress,
        )
    finally:
        reader.close()


def _deliver_history(
    settings: KafkaSettings,
    spec: IntegrationSpec,
    config: Mapping[str, Any],
    reader: Consumer,
    topic: str,
    ranges: Mapping[int, tuple[int, int]],
    stop: threading.Event,
    result: Delivery,
    started: float,
    **hooks: Any,
) -> Delivery:
    """Read ``ranges`` of ``topic`` and deliver them through the integration's runtime."""
    runner = _runner(settings, spec, config)
    result.completed = runner.run_bounded(read_range(reader, topic, ranges), stop, **hooks)
    result.delivered = runner.health.delivered
    result.dead_lettered = runner.health.dead_lettered
    result.filtered = int(runner.metrics.filtered.labels(runner.name)._value.get())
    result.seconds = time.monotonic() - started
    return result


def redrive(
    settings: KafkaSettings,
    spec: IntegrationSpec,
    stop: threading.Event,
    *,
    reason: str | None = None,
    event_type: str | None = None,
    config: Mapping[str, Any] | None = None,
    on_plan: Callable[[int], None] | None = None,
    on_progress: Callable[[int], None] | None = None,
) -> Delivery:
    """Send the integration's dead letters (not yet redriven; matching ``reason`` as a
    substring and ``event_type`` as a pattern) back through its delivery. Each one is
    recorded in the redrive ledger once it is delivered or dead-lettered again, so a
    second redrive never sends it twice; one that fails again is a new dead letter."""
    config = read_config(settings) if config is None else config
    started = time.monotonic()
    reader = history_consumer(settings, f"redrive-{spec.name}")
    codec = EventCodec(settings.schema_registry())
    ledger = redrive_ledger_topic(spec.name)
    try:
        letters = [
            d for d in read_dead_letters(reader, spec.name) if not d.redriven and _matches(d, reason, event_type, codec)
        ]
        wanted = {(d.partition, d.offset) for d in letters}
        result = Delivery()
        if on_plan:
            on_plan(len(letters))
        topic = integration_dlq_topic(spec.name)
        ranges = {}
        for d in letters:
            begin, end = ranges.get(d.partition, (d.offset, d.offset + 1))
            ranges[d.partition] = (min(begin, d.offset), max(end, d.offset + 1))
        result.by_partition = ranges

        def selected(msg: Message) -> bool:
            result.considered += 1
            chosen = (msg.partition(), msg.offset()) in wanted
            result.selected += chosen
            if chosen and on_progress:
                on_progress(1)
            return chosen

        def record(batch: list[Message]) -> None:
            now = time.time()
            write_keys(settings, ledger, {f"{m.partition()}@{m.offset()}": {"redriven_at": now} for m in batch})

        return _deliver_history(
            settings, spec, config, reader, topic, ranges, stop, result, started, accept=selected, on_resolved=record
        )
    finally:
        reader.close()


def _matches(letter: DeadLetter, reason: str | None, event_type: str | None, codec: EventCodec) -> bool:
    if reason and reason.lower() not in letter.reason.lower():
        return False
    if event_type:
        return fnmatch.fnmatch(event_type_of(letter, codec), event_type)
    return True


def event_type_of(letter: DeadLetter, codec: EventCodec) -> str:
    try:
        return codec.decode(letter.value, "dlq", letter.partition, letter.offset).event_type
    except Exception:  # noqa: BLE001 - an undecodable dead letter is exactly that
        return "(undecodable)"


@dataclass
class ReasonGroup:
    reason: str
    stage: str
    count: int
    waiting: int
    event_types: Counter[str]
    first_ms: int | None
    last_ms: int | None


def summarize_dead_letters(letters: list[DeadLetter], codec: EventCodec) -> list[ReasonGroup]:
    """Dead letters grouped by reason, most frequent first."""
    groups: dict[tuple[str, str], ReasonGroup] = {}
    for d in letters:
        key = (d.reason, d.headers.get("dlq.stage", "?"))
        group = groups.setdefault(key, ReasonGroup(key[0], key[1], 0, 0, Counter(), None, None))
        group.count += 1
        group.waiting += not d.redriven
        group.event_types[event_type_of(d, codec)] += 1
        at = int(d.headers.get("dlq.time_ms", "0") or 0) or None
        if at is not None:
            group.first_ms = min(group.first_ms or at, at)
            group.last_ms = max(group.last_ms or at, at)
    return sorted(groups.values(), key=lambda g: (-g.count, g.reason))


def list_dead_letters(settings: KafkaSettings, name: str) -> list[DeadLetter]:
    reader = history_consumer(settings, f"dlq-{name}")
    try:
        return read_dead_letters(reader, name)
    except KafkaException as exc:
        raise IntegrationError(f"cannot read the dead letters of {name}: {exc.args[0]}") from None
    finally:
        reader.close()
