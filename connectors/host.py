"""Run integrations: each in its own thread with its own consumer group, in this process
(several per process, isolated) — or one per process, by running this once per
integration. Rules come from the config topic; metrics are served over HTTP."""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass

from prometheus_client import start_http_server

from continuum_events.config import ConfigStore
from continuum_events.connectors.base import Sink
from continuum_events.connectors.runtime import IntegrationRunner, Metrics
from continuum_events.settings import KafkaSettings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Integration:
    name: str
    category: str
    sink: Sink


def run_integrations(settings: KafkaSettings, integrations: Sequence[Integration], stop: threading.Event,
                     metrics_port: int | None = None) -> list[IntegrationRunner]:
    """Blocks until ``stop`` is set and every runner has drained; returns the runners."""
    store = ConfigStore(settings).start()
    store.wait_ready(15)
    metrics = Metrics()
    if metrics_port is not None:
        start_http_server(metrics_port, addr="127.0.0.1", registry=metrics.registry)
        log.info("metrics on http://127.0.0.1:%d/metrics", metrics_port)
    runners = [IntegrationRunner(i.name, i.category, i.sink, settings, rules=store.ruleset, metrics=metrics)
               for i in integrations]
    threads = [threading.Thread(target=r.run, args=(stop,), name=f"integration-{r.name}") for r in runners]
    for t in threads:
        t.start()
    try:
        for t in threads:
            t.join()
    finally:
        store.stop()
    return runners
