"""Prometheus metrics of the router and the health probe, as the connectors have theirs
(``connectors/runtime.py`` :class:`Metrics`). Each service serves its own registry on
``--metrics-port``; ``deploy/prometheus/`` holds the alert rules and ``deploy/grafana/``
the dashboard built on these names (``tests/unit/test_observability.py`` ties them
together)::

    metrics = RouterMetrics(counts, settings, store, state)     # read at each scrape
    serve(metrics.registry, 9465)

Router (``continuum_router_*``): events read, routed per category, pages sent to alert
hygiene, dead letters, the lag of the router's group on ``printer-events`` (computed
every ``lag_every_s`` from the broker: committed offsets against the true end), the
rule set in force (``continuum_router_rules{version}``: two versions at once means the
workers disagree), and alert hygiene's held entries.

Probe (``continuum_probe_*``): each sweep's duration next to the interval it must fit
in, when the last sweep ended, printers by status, polls unanswered, events emitted.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Gauge, start_http_server
from prometheus_client import Counter as PromCounter
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from continuum_events.settings import KafkaSettings
from continuum_events.topology import CATEGORIES, EVENTS_TOPIC

log = logging.getLogger(__name__)

#: The ports deploy/ gives them (the connectors serve on 9400).
ROUTER_PORT, PROBE_PORT = 9401, 9402


def serve(registry: CollectorRegistry, port: int, address: str = "127.0.0.1") -> None:
    """Serve ``registry`` at http://address:port/metrics from a daemon thread."""
    start_http_server(port, addr=address, registry=registry)
    log.info("metrics on http://%s:%d/metrics", address, port)


def rules_in_force(ruleset: Any) -> list[Any]:
    """Every rule that decides: each category's routing rules (its built-in default when it
    has none of its own), then the integrations' filters."""
    return [r for c in CATEGORIES for r in ruleset.routing_rules(c)] + [r for r in ruleset.rules if r.integration]


def rules_version(ruleset: Any) -> str:
    """A short, stable digest of the rules in force (their definitions, in order)."""
    text = json.dumps([r.model_dump(mode="json") for r in rules_in_force(ruleset)], sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


class RouterMetrics(Collector):
    """Read at each scrape from the routing agent's live counters (``processors.agents``)."""

    def __init__(
        self,
        counts: Counter[str],
        settings: KafkaSettings | None = None,
        store: Any = None,
        state: Any = None,
        group: str | None = None,
        lag_every_s: float = 15.0,
    ) -> None:
        self.counts, self.settings, self.store, self.state = counts, settings, store, state
        self.group, self.lag_every_s = group, lag_every_s
        self.lag: int | None = None
        self._stop = threading.Event()
        self.registry = CollectorRegistry()
        self.registry.register(self)

    def start(self) -> RouterMetrics:
        if self.settings is not None and self.group:
            threading.Thread(target=self._follow_lag, name="router-lag", daemon=True).start()
        return self

    def stop(self) -> None:
        self._stop.set()

    def describe(self) -> Iterator[Metric]:
        return iter(())  # collected fresh at each scrape; nothing to describe ahead

    def collect(self) -> Iterator[Metric]:
        counts = dict(self.counts)
        yield CounterMetricFamily(
            "continuum_router_events", "Events read from printer-events", value=counts.get("in", 0)
        )
        routed = CounterMetricFamily(
            "continuum_router_routed", "Events written to a category topic", labels=["category"]
        )
        for category in CATEGORIES:
            routed.add_metric([category], counts.get(category, 0))
        yield routed
        yield CounterMetricFamily(
            "continuum_router_hygiene_pages",
            "Alerting pages sent through alert hygiene",
            value=counts.get("to-hygiene", 0),
        )
        yield CounterMetricFamily(
            "continuum_router_dead_letters",
            "Events written to printer-events.dlq",
            value=counts.get("dead-lettered", 0),
        )
        yield CounterMetricFamily(
            "continuum_router_send_failures",
            "Outputs the producer gave up on after its retries (each also logged as an error)",
            value=counts.get("send-failed", 0),
        )
        if self.lag is not None:
            yield GaugeMetricFamily(
                "continuum_router_lag",
                "Records of printer-events past the router group's committed offsets",
                value=self.lag,
            )
        if self.store is not None:
            ruleset = self.store.ruleset()
            info = GaugeMetricFamily(
                "continuum_router_rules", "The rule set in force (1), by digest", labels=["version"]
            )
            info.add_metric([rules_version(ruleset)], 1)
            yield info
            yield GaugeMetricFamily(
                "continuum_router_rules_count", "Routing rules and filters in force", value=len(rules_in_force(ruleset))
            )
        if self.state is not None:
            yield GaugeMetricFamily(
                "continuum_router_hygiene_held",
                "Alert hygiene's live entries (held pages, open outages, flapping printers)",
                value=len(self.state.live()),
            )

    def _follow_lag(self) -> None:
        from confluent_kafka import Consumer, KafkaException

        from continuum_events.history import history_consumer, watermarks
        from continuum_events.status import group_lag

        assert self.settings is not None and self.group is not None
        while not self._stop.is_set():
            try:
                consumer = history_consumer(self.settings, "router-lag")
                group = Consumer(self.settings.client_config(**{"group.id": self.group, "enable.auto.commit": False}))
                try:
                    ends = {p: (r.start, r.end) for p, r in watermarks(consumer, EVENTS_TOPIC).items()}
                    self.lag = group_lag(group, EVENTS_TOPIC, ends)
                finally:
                    group.close()
                    consumer.close()
            except (KafkaException, TimeoutError) as exc:
                log.debug("router lag unknown: %s", exc)
                self.lag = None
            self._stop.wait(self.lag_every_s)


class ProbeMetrics:
    """Updated after each sweep (``Probe.run``'s ``on_sweep``)."""

    def __init__(self, interval_s: float, registry: CollectorRegistry | None = None) -> None:
        self.registry = r = registry or CollectorRegistry()
        self.sweep_seconds = Gauge("continuum_probe_sweep_seconds", "How long the last sweep took", registry=r)
        self.interval = Gauge("continuum_probe_sweep_interval_seconds", "The interval a sweep must fit in", registry=r)
        self.interval.set(interval_s)
        self.last_sweep = Gauge("continuum_probe_last_sweep_timestamp_seconds", "When the last sweep ended", registry=r)
        self.sweeps = PromCounter("continuum_probe_sweeps", "Sweeps of the fleet", registry=r)
        self.printers = Gauge("continuum_probe_printers", "Printers probed, by status", ["status"], registry=r)
        self.unanswered = PromCounter("continuum_probe_snmp_unanswered", "Polls no SNMP agent answered", registry=r)
        self.events = PromCounter("continuum_probe_events", "Events emitted, by type", ["event_type"], registry=r)

    def observe(self, stats: Any, health: dict[str, Any]) -> None:
        """One sweep's :class:`~producers.probe.SweepStats` and the fleet's health after it."""
        self.sweep_seconds.set(stats.seconds)
        self.last_sweep.set(time.time())
        self.sweeps.inc()
        self.unanswered.inc(max(0, stats.printers - stats.answered))
        for kind, n in stats.events.items():
            self.events.labels(kind).inc(n)
        by_status = Counter(h.status for h in health.values())
        for status in ("online", "offline", "unknown"):
            self.printers.labels(status).set(by_status.get(status, 0))
