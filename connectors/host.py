"""Run integrations: each in its own thread with its own consumer group, in this process
(several per process, isolated) — or one per process (``--only NAME``).

:class:`ConnectorHost` follows the config topic: an integration connected while it runs
starts delivering within a second, a disconnected one stops after the batch in hand,
a changed one restarts with its new settings. An integration whose secrets cannot be
resolved here is reported failing and tried again; the others are not held up. Every
few seconds each runner's health is published to ``continuum-events.status`` (what
``continuum-events status`` and the live view show)::

    ConnectorHost(settings, only={"splunk-prod"}).run(stop)      # blocks until stop is set
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass

from prometheus_client import start_http_server

from continuum_events.config import ConfigStore
from continuum_events.connectors.base import Sink
from continuum_events.connectors.runtime import Health, IntegrationRunner, Metrics
from continuum_events.integrations import IntegrationError, IntegrationSpec, connected
from continuum_events.settings import KafkaSettings
from continuum_events.status import StatusReporter

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Integration:
    name: str
    category: str
    sink: Sink


@dataclass
class _Running:
    spec: IntegrationSpec | None
    runner: IntegrationRunner | None
    stop: threading.Event
    thread: threading.Thread | None
    error: str | None = None
    retry_at: float = 0.0


class ConnectorHost:
    """Runs the connected integrations (or ``only`` those) until stopped."""

    def __init__(
        self,
        settings: KafkaSettings,
        *,
        only: Collection[str] = (),
        metrics_port: int | None = None,
        metrics_address: str = "127.0.0.1",
        retry_s: float = 30.0,
        sink_factory: Callable[[IntegrationSpec], Sink] | None = None,
    ) -> None:
        self.settings, self.only, self.retry_s = settings, set(only), retry_s
        self.metrics = Metrics()
        self.metrics_port, self.metrics_address = metrics_port, metrics_address
        self.sink_factory = sink_factory or (lambda spec: spec.build_sink())
        self.running: dict[str, _Running] = {}
        self.store = ConfigStore(settings)

    def run(self, stop: threading.Event, static: Sequence[Integration] = ()) -> None:
        """Blocks until ``stop``; ``static`` integrations run as well as the connected ones."""
        if self.metrics_port is not None:
            start_http_server(self.metrics_port, addr=self.metrics_address, registry=self.metrics.registry)
            log.info("metrics on http://%s:%d/metrics", self.metrics_address, self.metrics_port)
        self.store.start()
        self.store.wait_ready(15)
        reporter = StatusReporter(self.settings, self.healths).start()
        try:
            for integration in static:
                self._start_runner(integration.name, None, integration.category, integration.sink)
            while not stop.wait(0.5):
                if not static or self.only:
                    self._reconcile()
        finally:
            for running in self.running.values():
                running.stop.set()
            for running in self.running.values():
                if running.thread is not None:
                    running.thread.join()
            reporter.stop()
            self.store.stop()

    def runners(self) -> list[IntegrationRunner]:
        return [r.runner for r in self.running.values() if r.runner is not None]

    def healths(self) -> Mapping[str, tuple[IntegrationSpec | None, Health]]:
        """What the status reporter publishes: every integration this host is responsible for."""
        report = {}
        for name, running in list(self.running.items()):
            if running.runner is not None:
                report[name] = (running.spec, running.runner.health)
            else:
                report[name] = (running.spec, Health(state="unhealthy", last_error=running.error))
        return report

    def _reconcile(self) -> None:
        wanted = {
            name: spec
            for name, spec in connected(self.store.values()).items()
            if spec.enabled and (not self.only or name in self.only)
        }
        for name in list(self.running):
            running = self.running[name]
            if running.spec is None:
                continue  # a static integration
            if name not in wanted or wanted[name] != running.spec:
                log.info("%s: %s; stopping its connector", name, "changed" if name in wanted else "disconnected")
                running.stop.set()
                if running.thread is not None:
                    running.thread.join()
                del self.running[name]
        for name, spec in wanted.items():
            current = self.running.get(name)
            if current is not None and (current.runner is not None or time.monotonic() < current.retry_at):
                continue
            try:
                sink = self.sink_factory(spec)
            except (IntegrationError, ValueError, TypeError) as exc:
                if current is None or current.error != str(exc):
                    log.error("%s: cannot start: %s (trying again every %.0f s)", name, exc, self.retry_s)
                self.running[name] = _Running(
                    spec, None, threading.Event(), None, str(exc), time.monotonic() + self.retry_s
                )
                continue
            self._start_runner(name, spec, spec.topic_category, sink)

    def _start_runner(self, name: str, spec: IntegrationSpec | None, category: str, sink: Sink) -> None:
        runner = IntegrationRunner(name, category, sink, self.settings, rules=self.store.ruleset, metrics=self.metrics)
        stop = threading.Event()
        thread = threading.Thread(target=runner.run, args=(stop,), name=f"integration-{name}")
        self.running[name] = _Running(spec, runner, stop, thread)
        thread.start()
        log.info("%s: delivering %s to %s", name, runner.topic, type(sink).__name__)


def run_integrations(
    settings: KafkaSettings, integrations: Sequence[Integration], stop: threading.Event, metrics_port: int | None = None
) -> list[IntegrationRunner]:
    """Run exactly these integrations (built in code) until ``stop``; returns the runners."""
    host = ConnectorHost(settings, metrics_port=metrics_port)
    host.run(stop, static=integrations)
    return host.runners()
