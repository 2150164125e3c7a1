"""The configuration topic: routing rules (and, later, integrations), last value per key.

Keys are ``rule/<name>`` (and ``integration/<name>``); values are JSON, a null value
deletes. The topic is declared compacted, but nothing relies on compaction (the
embedded broker never compacts): readers fold the whole topic, last value wins.

Every process that needs the configuration — each router worker, each connector —
follows the topic itself with a group-less consumer, so every instance sees every
key whatever the partition assignment (Faust's GlobalTable does not reliably deliver
live updates to every worker: faust-streaming issue #283)::

    store = ConfigStore(settings).start()
    store.wait_ready(10)
    rules = store.ruleset()              # a fresh RuleSet whenever a rule changed
    write_rule(settings, Rule(...))      # acknowledged write; followers see it within ~0.1 s
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaException, Producer, TopicPartition
from pydantic import ValidationError

from continuum_events.rules import Rule, RuleSet
from continuum_events.settings import KafkaSettings
from continuum_events.topology import CONFIG_TOPIC

log = logging.getLogger(__name__)


class ConfigStore:
    """Follows the config topic in a background thread; reads are lock-free snapshots."""

    def __init__(self, settings: KafkaSettings, topic: str = CONFIG_TOPIC,
                 on_change: Callable[[ConfigStore], None] | None = None) -> None:
        self.settings, self.topic, self.on_change = settings, topic, on_change
        self._values: Mapping[str, Any] = {}
        self._ruleset: RuleSet | None = None
        self.version = 0
        self.invalid: dict[str, str] = {}
        self._ready = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._follow, name="config-follower", daemon=True)

    def start(self) -> ConfigStore:
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

    def ruleset(self) -> RuleSet:
        ruleset = self._ruleset
        if ruleset is None:
            rules = []
            for key, value in self._values.items():
                if key.startswith("rule/"):
                    try:
                        rules.append(Rule.model_validate(value))
                    except ValidationError as exc:
                        self.invalid[key] = str(exc)
            ruleset = self._ruleset = RuleSet.of(rules)
        return ruleset

    def _follow(self) -> None:
        consumer = Consumer(self.settings.client_config(**{
            "group.id": "continuum-events-config-follower", "enable.auto.commit": False,
            "fetch.wait.max.ms": 50,
        }))
        try:
            tps = self._partitions(consumer)
            if tps is None:
                return
            consumer.assign(tps)
            while not self._stop.is_set():
                batch = consumer.consume(500, 0.1)
                changes = {}
                for msg in batch:
                    if msg.error():
                        continue
                    key = (msg.key() or b"").decode("utf-8", "replace")
                    try:
                        changes[key] = None if msg.value() is None else json.loads(msg.value())
                    except ValueError:
                        log.error("config topic %s@%d: key %r is not JSON; ignored", msg.partition(), msg.offset(), key)
                if changes:
                    values = dict(self._values)
                    for key, value in changes.items():
                        if value is None:
                            values.pop(key, None)
                        else:
                            values[key] = value
                    self.invalid = {k: v for k, v in self.invalid.items() if k not in changes}
                    self._values, self._ruleset = values, None
                    self.version += 1
                    if self.on_change:
                        self.on_change(self)
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
            log.warning("config topic %s not available yet; retrying", self.topic)
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


def write_config(settings: KafkaSettings, values: Mapping[str, Any | None], topic: str = CONFIG_TOPIC) -> None:
    """Write keys (None deletes) and wait for the acknowledgement."""
    producer = Producer(settings.client_config(**{"acks": "all", "enable.idempotence": True}))
    errors: list[str] = []

    def check(err: Any, msg: Any) -> None:
        if err is not None:
            errors.append(str(err))

    for key, value in values.items():
        producer.produce(topic, None if value is None else json.dumps(value).encode(), key.encode(), on_delivery=check)
    if producer.flush(15) or errors:
        raise RuntimeError(f"could not write to {topic}: {'; '.join(errors) or 'no acknowledgement in 15 s'}")


def write_rule(settings: KafkaSettings, rule: Rule) -> None:
    write_config(settings, {rule.key: rule.model_dump(mode="json")})


def delete_rule(settings: KafkaSettings, name: str) -> None:
    write_config(settings, {f"rule/{name}": None})


def wait_for(store: ConfigStore, predicate: Callable[[ConfigStore], bool], timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate(store):
            return True
        time.sleep(0.05)
    return False


def ensure_category_defaults(settings: KafkaSettings, store: ConfigStore, category: str) -> bool:
    """Write the category's default routing rule unless it already has routing rules
    (what connecting an integration does). Returns True when it wrote."""
    from continuum_events.rules import default_rule

    if any(r.category == category and r.integration is None for r in store.ruleset().rules):
        return False
    write_rule(settings, default_rule(category))
    return True
