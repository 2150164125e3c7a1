"""Run one router worker: follow the config topic, start the Faust app, route until stopped.

Start more workers (same command, anywhere) to share the partitions; a clean stop
(SIGTERM / Ctrl-C) commits and hands its partitions to the others.
"""

from __future__ import annotations

import logging
from pathlib import Path

import faust

from continuum_events.codec import EventCodec
from continuum_events.config import ConfigStore
from continuum_events.processors.agents import register
from continuum_events.processors.app import APP_ID, create_app
from continuum_events.processors.hygiene import HygieneState
from continuum_events.settings import KafkaSettings
from continuum_events.topology import EVENTS_TOPIC, HYGIENE_TOPIC

log = logging.getLogger(__name__)


def build(
    settings: KafkaSettings,
    datadir: Path | None = None,
    source_topic: str = EVENTS_TOPIC,
    app_id: str = APP_ID,
    guarantee: str = "at_least_once",
) -> tuple[faust.App, ConfigStore, HygieneState | None]:
    store = ConfigStore(settings)
    app = create_app(settings, datadir=datadir, app_id=app_id, processing_guarantee=guarantee)
    codec = EventCodec(settings.schema_registry(), auto_register=settings.schema_registry_auto_register)
    partitions = _partitions(settings, HYGIENE_TOPIC) if app_id == APP_ID else None
    state = HygieneState(settings) if partitions else None
    app.continuum_counts = register(  # type: ignore[attr-defined]  # what the router's metrics read
        app,
        store.ruleset,
        codec,
        store.wait_ready,
        source_topic=source_topic,
        hygiene=store.hygiene,
        hygiene_partitions=partitions,
        hygiene_state=state,
    )
    return app, store, state


def _partitions(settings: KafkaSettings, topic: str) -> int | None:
    """The hygiene stage's partition count, as the topology created it (its table must match)."""
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import AdminClient

    try:
        meta = AdminClient(settings.client_config()).list_topics(topic, timeout=10).topics.get(topic)
    except KafkaException as exc:
        log.warning("cannot read %s's partitions (%s): alert hygiene is off in this worker", topic, exc)
        return None
    if meta is None or meta.error is not None or not meta.partitions:
        log.warning("%s does not exist (run `continuum-events topics`): alert hygiene is off in this worker", topic)
        return None
    return len(meta.partitions)


def make_worker(app: faust.App, loglevel: str | None = None) -> faust.Worker:
    """A Faust worker that keeps the logging its entry point set up (``configure_logging``).

    Left alone, Faust's worker replaces the root logger's handlers with its own, and with
    them the filter that redacts secrets from every line, and ignores ``--log-level``; at
    WARNING and above it also puts the root logger at DEBUG for its terminal spinner, so
    every aiokafka and Faust debug line is built and then dropped (~12 % of a forwarding
    worker's CPU, measured with py-spy). Where nothing configured logging, Faust's own
    set-up applies at ``loglevel`` (default info)."""
    handlers = list(logging.root.handlers)
    if not handlers:
        return faust.Worker(app, loglevel=loglevel or "info", quiet=True)
    app.conf.loghandlers = handlers  # put back after Faust clears the root's handlers
    worker = faust.Worker(
        app,
        loglevel=logging.getLevelName(logging.root.level) if loglevel is None else loglevel,
        logging_config={"version": 1, "incremental": True},  # levels and handlers stay as they are
        # Faust would point sys.stdout at a logger, and the kept handler writes to sys.stdout:
        # every line logged while the worker runs would loop back and be dropped.
        redirect_stdouts=False,
        quiet=True,
    )
    worker.spinner = None  # no spinner, no root logger at DEBUG
    if loglevel is not None:
        logging.root.setLevel(loglevel.upper())
    return worker


def run_worker(
    settings: KafkaSettings,
    datadir: Path | None = None,
    loglevel: str | None = None,
    source_topic: str = EVENTS_TOPIC,
    app_id: str = APP_ID,
    guarantee: str = "at_least_once",
    metrics_port: int | None = None,
    metrics_address: str = "127.0.0.1",
) -> None:
    app, store, state = build(settings, datadir, source_topic, app_id, guarantee)
    store.start()
    if state is not None:
        state.start()
    metrics = None
    if metrics_port is not None:
        from continuum_events.metrics import RouterMetrics, serve

        metrics = RouterMetrics(app.continuum_counts, settings, store, state, group=app_id).start()
        serve(metrics.registry, metrics_port, metrics_address)
    log.info("router on %s (%s)", settings.describe(), guarantee.replace("_", "-"))
    worker = make_worker(app, loglevel)
    try:
        worker.execute_from_commandline()
    finally:
        if metrics is not None:
            metrics.stop()
        store.stop()
        if state is not None:
            state.stop()
