"""The router's Faust app, built from the same Kafka settings as everything else.

Settings chosen for the embedded broker and sane on Apache Kafka: a 6 s session so a
worker joins in ~3 s (Tansu waits session/2), no leader-election topic, no topic
declaration (the topology creates topics with their partition counts), acks=all,
at-least-once (exactly-once is unavailable on Tansu and not needed: consumers
deduplicate on event_id), memory store and no Faust tables (see processors/hygiene.py for why the alert-hygiene
state is not one).
"""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Any

import faust

from continuum_events.settings import KafkaSettings
from continuum_events.topology import DLQ_MAX_RECORD_BYTES

APP_ID = "continuum-router"
#: Pinned: changing it renames the app's internal topics and consumer group offsets.
APP_VERSION = 1


def broker_credentials(settings: KafkaSettings) -> Any:
    """Faust credentials equivalent to the librdkafka TLS/SASL settings."""
    context = None
    if settings.security_protocol in ("SSL", "SASL_SSL"):
        context = ssl.create_default_context(cafile=settings.ssl_ca_location)
        if settings.ssl_certificate_location:
            password = settings.ssl_key_password.get_secret_value() if settings.ssl_key_password else None
            context.load_cert_chain(settings.ssl_certificate_location, settings.ssl_key_location, password)
    if settings.security_protocol.startswith("SASL"):
        return faust.SASLCredentials(
            username=settings.sasl_username,
            password=settings.sasl_password.get_secret_value() if settings.sasl_password else None,
            mechanism=settings.sasl_mechanism or "PLAIN", ssl_context=context,
        )
    if context is not None:
        return faust.SSLCredentials(context)
    return None


def _bound_fetch_wait() -> None:
    """Faust hard-codes a 1,500 ms fetch wait; a broker that does not answer a waiting fetch as
    soon as data arrives (the embedded one, as measured: p50 routing latency 456 ms at 1,000
    events/s) then adds up to that much latency to every quiet moment. The worker's consumer
    takes the app's ``continuum_fetch_wait_max_ms`` (KafkaSettings.fetch_wait_max_ms) instead."""
    from faust.transport.drivers import aiokafka as driver

    original = driver.AIOKafkaConsumerThread._create_worker_consumer
    if getattr(original, "_continuum_bounded", False):
        return

    def create_worker_consumer(self: Any, transport: Any) -> Any:
        consumer = original(self, transport)
        wait = getattr(self.app, "continuum_fetch_wait_max_ms", None)
        if wait is not None:
            consumer._fetch_max_wait_ms = wait  # read by aiokafka's Fetcher at start()
        return consumer

    create_worker_consumer._continuum_bounded = True  # type: ignore[attr-defined]
    driver.AIOKafkaConsumerThread._create_worker_consumer = create_worker_consumer


def create_app(settings: KafkaSettings, *, datadir: Path | None = None, app_id: str = APP_ID, **overrides: Any) -> faust.App:
    brokers = ";".join(f"kafka://{server.strip()}" for server in settings.bootstrap_servers.split(","))
    conf: dict[str, Any] = {
        "version": APP_VERSION,
        "broker": brokers,
        "broker_credentials": broker_credentials(settings),
        "broker_client_id": f"{settings.client_id}-router",
        "broker_session_timeout": 6,
        "broker_heartbeat_interval": 1,
        "broker_commit_interval": 1.0,
        "topic_allow_declare": False,
        "topic_disable_leader": True,
        "consumer_auto_offset_reset": "earliest",
        "producer_acks": -1,
        "producer_linger": settings.linger_ms / 1000,
        # An oversized event is dead-lettered whole (topology.DLQ_MAX_RECORD_BYTES).
        "producer_max_request_size": DLQ_MAX_RECORD_BYTES + (64 << 10),
        "processing_guarantee": "at_least_once",
        "store": "memory://",
        "web_enabled": False,
        "datadir": str(datadir or Path(".state") / "router"),
    }
    conf.update(overrides)
    _bound_fetch_wait()
    app = faust.App(app_id, **conf)
    app.continuum_fetch_wait_max_ms = settings.fetch_wait_max_ms  # type: ignore[attr-defined]
    return app
