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

import time
from collections.abc import Callable, Mapping
from typing import Any

from pydantic import ValidationError

from continuum_events.follower import TopicFollower, write_keys
from continuum_events.hygiene import HYGIENE_KEY, HygienePolicy
from continuum_events.rules import Rule, RuleSet
from continuum_events.settings import KafkaSettings
from continuum_events.topology import CONFIG_TOPIC


class ConfigStore(TopicFollower):
    """Follows the config topic in a background thread; reads are lock-free snapshots."""

    def __init__(
        self, settings: KafkaSettings, topic: str = CONFIG_TOPIC, on_change: Callable[[ConfigStore], None] | None = None
    ) -> None:
        super().__init__(settings, topic, name="config", on_change=on_change)
        self._ruleset: RuleSet | None = None
        self._hygiene: tuple[HygienePolicy | None] | None = None  # None: not read since the last change
        self.invalid: dict[str, str] = {}

    def changed(self, changes: Mapping[str, Any]) -> None:
        self.invalid = {k: v for k, v in self.invalid.items() if k not in changes}
        self._ruleset = None
        self._hygiene = None

    def hygiene(self) -> HygienePolicy | None:
        """The alert-hygiene policy, or None: not configured (pages go straight to alerting)."""
        cached = self._hygiene
        if cached is None:
            value, policy = self._values.get(HYGIENE_KEY), None
            if value is not None:
                try:
                    policy = HygienePolicy.model_validate(value)
                except ValidationError as exc:
                    self.invalid[HYGIENE_KEY] = str(exc)
            cached = self._hygiene = (policy,)
        return cached[0]

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


def write_config(settings: KafkaSettings, values: Mapping[str, Any | None], topic: str = CONFIG_TOPIC) -> None:
    """Write keys (None deletes) and wait for the acknowledgement."""
    write_keys(settings, topic, values)


def write_rule(settings: KafkaSettings, rule: Rule) -> None:
    write_config(settings, {rule.key: rule.model_dump(mode="json")})


def delete_rule(settings: KafkaSettings, name: str) -> None:
    write_config(settings, {f"rule/{name}": None})


def write_hygiene(settings: KafkaSettings, policy: HygienePolicy | None) -> None:
    """Set (or, with None, switch off) alert hygiene; routers apply it to the next pages."""
    write_config(settings, {HYGIENE_KEY: None if policy is None else policy.model_dump(mode="json")})


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
