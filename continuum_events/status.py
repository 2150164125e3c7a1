"""What each integration is doing, for the operator: healthy or not, how far behind,
when it last delivered, what failed, how many dead letters wait.

Two sources, joined by :func:`integration_status`:

* **reports** — every connector host publishes, every ``interval_s``, the health of each
  runner it holds to ``continuum-events.status`` under ``<integration>@<instance>``
  (:class:`StatusReporter`); a report older than ``stale_s`` means that instance is gone;
* **the broker itself** — lag is computed from the integration's committed group offsets
  against the true end of its category topic, and the dead-letter depth from its
  dead-letter topic minus what was redriven: both right even when no connector runs::

    statuses = integration_status(settings)      # list[IntegrationStatus]
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
import threading
import time
from collections import defaultdict, deque
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition

from continuum_events.follower import TopicFollower, write_keys
from continuum_events.integrations import IntegrationSpec, connected, invalid_integrations
from continuum_events.settings import KafkaSettings
from continuum_events.topology import STATUS_TOPIC, category_topic, connector_group

log = logging.getLogger(__name__)


def instance_id() -> str:
    """Host, process and a start nonce: each run of a connector host reports under a key of
    its own, so the last report of every earlier run (its error total) stays on the topic."""
    return f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"


class StatusReporter:
    """Publishes a host's runners' health every ``interval_s`` and once more at stop."""

    def __init__(
        self,
        settings: KafkaSettings,
        healths: Callable[[], Mapping[str, tuple[IntegrationSpec | None, Any]]],
        interval_s: float = 2.0,
        instance: str | None = None,
    ) -> None:
        self.settings, self.healths, self.interval_s = settings, healths, interval_s
        self.instance = instance or instance_id()
        self.started = time.time()  # this run's counts start at zero here
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="status-reporter", daemon=True)
        self._producer = Producer(settings.client_config(**{"acks": "all", "linger.ms": 5}))

    def start(self) -> StatusReporter:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)
        self.publish()

    def publish(self) -> None:
        values = {}
        for name, (spec, health) in self.healths().items():
            values[f"{name}@{self.instance}"] = {
                "integration": name,
                "instance": self.instance,
                "started": self.started,
                "updated": time.time(),
                "vendor": spec.vendor if spec else None,
                "state": health.state,
                "last_error": health.last_error,
                "last_delivery": health.last_delivery,
                "delivered": health.delivered,
                "retried": health.retried,
                "dead_lettered": health.dead_lettered,
                "lag": health.lag,
                "errors": health.errors,
                "last_error_at": health.last_error_at,
            }
        if values:
            try:
                write_keys(self.settings, STATUS_TOPIC, values, self._producer, timeout=5)
            except RuntimeError as exc:
                log.warning("status not published: %s", exc)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.publish()


class StatusBoard(TopicFollower):
    """Follows the status topic: the latest report of every connector instance, and the
    last ``keep_s`` of reports per integration for :meth:`history` (read back from the
    topic at start, as far as compaction left it)."""

    def __init__(self, settings: KafkaSettings, keep_s: float = 3600.0) -> None:
        super().__init__(settings, STATUS_TOPIC, name="status")
        self.keep_s = keep_s
        #: integration -> (updated, instance, delivered, lag, started) in topic order
        self._samples: dict[str, deque[tuple[float, str, int, int | None, float | None]]] = defaultdict(deque)
        self._samples_lock = threading.Lock()

    def seen(self, key: str, value: Any) -> None:
        if not isinstance(value, dict) or not value.get("integration"):
            return
        updated = float(value.get("updated") or 0)
        if updated < time.time() - self.keep_s:
            return
        lag = value.get("lag")
        with self._samples_lock:
            samples = self._samples[str(value["integration"])]
            samples.append(
                (
                    updated,
                    str(value.get("instance")),
                    int(value.get("delivered") or 0),
                    int(lag) if isinstance(lag, int) else None,
                    float(value["started"]) if isinstance(value.get("started"), (int, float)) else None,
                )
            )
            while samples and samples[0][0] < time.time() - self.keep_s:
                samples.popleft()

    def history(
        self, integration: str, window_s: float = 3600.0, step_s: float = 60.0, now: float | None = None
    ) -> dict[str, Any]:
        """Per ``step_s`` over the last ``window_s``: the delivery rate (events/s, from the
        growth of each instance's delivered count, from zero for a run that began inside the
        window; a count that falls is a restart and adds nothing) and the lag (the sum of each instance's last report), None where no
        connector reported."""
        now = time.time() if now is None else now
        steps = int(window_s // step_s)
        start = now - steps * step_s
        delivered = [0.0] * steps
        reported = [False] * steps
        lags: list[dict[str, int | None]] = [{} for _ in range(steps)]
        last: dict[str, int] = {}
        with self._samples_lock:
            samples = list(self._samples.get(integration, ()))
        for updated, instance, count, lag, started in samples:
            i = int((updated - start) // step_s)
            before = last.get(instance)
            if before is None and started is not None and started >= start:
                before = 0  # a run that began inside the window counted from zero
            last[instance] = count
            if not 0 <= i < steps:
                continue
            reported[i] = True
            lags[i][instance] = lag
            if before is not None and count > before:
                delivered[i] += count - before
        return {
            "step_s": step_s,
            "start": start,
            "rate": [d / step_s if reported[i] else None for i, d in enumerate(delivered)],
            "lag": [sum(v for v in lags[i].values() if v is not None) if reported[i] else None for i in range(steps)],
        }

    def errors(self, integration: str) -> int:
        """Failures ``integration``'s connectors ever reported: the last report of every run,
        live, stopped or gone, summed (a run's count starts at zero)."""
        return sum(
            int(r.get("errors") or 0)
            for r in self.values().values()
            if isinstance(r, dict) and r.get("integration") == integration
        )

    def reports(self, integration: str, stale_s: float = 15.0, stopped: bool = False) -> list[dict[str, Any]]:
        """The live instances' reports for ``integration`` (a stopped one counts as not live,
        unless ``stopped``: then the last report of instances that stopped is included)."""
        now = time.time()
        return [
            r
            for r in self.values().values()
            if isinstance(r, dict)
            and r.get("integration") == integration
            and now - float(r.get("updated", 0)) <= stale_s
            and (stopped or r.get("state") != "stopped")
        ]


@dataclass
class IntegrationStatus:
    name: str
    vendor: str
    category: str
    connected: bool
    state: str  # healthy, retrying, unhealthy, not running, invalid
    instances: int
    lag: int | None
    last_delivery: float | None
    delivered: int
    retried: int
    dead_lettered: int
    dead_letters_waiting: int | None
    last_error: str | None
    #: Failures over every run of its connectors (see :meth:`StatusBoard.errors`).
    errors: int = 0
    last_error_at: float | None = None

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


def combine(reports: list[dict[str, Any]]) -> dict[str, Any]:
    """One integration's instance reports as one: the worst state, summed counts, the
    latest error and delivery. Empty reports: ``{}``."""
    if not reports:
        return {}
    states = [r["state"] for r in reports]
    errors = [r for r in reports if r.get("last_error")]
    deliveries = [r["last_delivery"] for r in reports if r.get("last_delivery")]
    return {
        "state": "unhealthy" if "unhealthy" in states else "retrying" if "retrying" in states else states[0],
        "instances": len(reports),
        "lag": sum(r.get("lag") or 0 for r in reports),
        **{k: sum(int(r.get(k) or 0) for r in reports) for k in ("delivered", "retried", "dead_lettered")},
        "last_error": max(errors, key=lambda r: r["updated"])["last_error"] if errors else None,
        "last_error_at": max(errors, key=lambda r: r["updated"]).get("last_error_at") if errors else None,
        "last_delivery": max(deliveries) if deliveries else None,
    }


def group_lag(group_consumer: Consumer, topic: str, ends: Mapping[int, tuple[int, int]]) -> int:
    """Records of ``topic`` past the group's committed offsets (from the start if none)."""
    from continuum_events.history import committed as group_committed

    committed = group_committed(group_consumer, [TopicPartition(topic, p) for p in ends])
    lag = 0
    for tp in committed:
        low, high = ends[tp.partition]
        position = tp.offset if tp.offset >= 0 else low
        lag += max(0, high - position)
    return lag


def integration_status(
    settings: KafkaSettings, config: Mapping[str, Any], board: StatusBoard, stale_s: float = 15.0
) -> list[IntegrationStatus]:
    """One status per connected integration (and per invalid entry), sorted by name."""
    from continuum_events import deadletter
    from continuum_events.history import history_consumer, watermarks

    specs = connected(config)
    statuses = []
    consumer = history_consumer(settings, "status")
    try:
        ends_by_topic: dict[str, Mapping[int, tuple[int, int]]] = {}
        for name, spec in sorted(specs.items()):
            reports = board.reports(name, stale_s)
            topic = category_topic(spec.topic_category)
            try:
                if topic not in ends_by_topic:
                    ends_by_topic[topic] = {p: (r.start, r.end) for p, r in watermarks(consumer, topic).items()}
                group = Consumer(
                    settings.client_config(**{"group.id": connector_group(name), "enable.auto.commit": False})
                )
                try:
                    lag: int | None = group_lag(group, topic, ends_by_topic[topic])
                finally:
                    group.close()
            except (KafkaException, TimeoutError) as exc:
                log.warning("%s: lag unknown (%s)", name, exc)
                lag = None
            try:
                waiting: int | None = deadletter.pending_count(name, consumer)
            except (KafkaException, TimeoutError) as exc:
                log.warning("%s: dead letters unknown (%s)", name, exc)
                waiting = None
            seen = combine(reports)
            statuses.append(
                IntegrationStatus(
                    name=name,
                    vendor=spec.vendor,
                    category=spec.topic_category,
                    connected=spec.enabled,
                    state=seen.get("state", "not running") if spec.enabled else "disabled",
                    instances=len(reports),
                    lag=lag,
                    last_delivery=seen.get("last_delivery"),
                    delivered=seen.get("delivered", 0),
                    retried=seen.get("retried", 0),
                    dead_lettered=seen.get("dead_lettered", 0),
                    dead_letters_waiting=waiting,
                    last_error=seen.get("last_error"),
                    errors=board.errors(name),
                    last_error_at=seen.get("last_error_at"),
                )
            )
    finally:
        consumer.close()
    for name, problem in sorted(invalid_integrations(config).items()):
        statuses.append(IntegrationStatus(name, "?", "?", False, "invalid", 0, None, None, 0, 0, 0, None, problem))
    return statuses
