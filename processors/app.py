"""The router's Faust app, built from the same Kafka settings as everything else.

Settings chosen for the embedded broker and sane on Apache Kafka: a 6 s session so a
worker joins in ~3 s (Tansu waits session/2), no leader-election topic, no topic
declaration (the topology creates topics with their partition counts), acks=all,
at-least-once (exactly-once is unavailable on Tansu and not needed: consumers
deduplicate on event_id), memory store and no Faust tables (see processors/hygiene.py for why the alert-hygiene
state is not one).
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import AsyncIterator, Mapping
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
            mechanism=settings.sasl_mechanism or "PLAIN",
            ssl_context=context,
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


def _offset_resets_follow_the_leader() -> None:
    """aiokafka resets a partition's position (no committed offset yet: a changelog being
    recovered, a new partition) by asking the leader its cached metadata names. If that broker
    lost the leadership (it was frozen or killed meanwhile) the answer is NotLeaderForPartition,
    and aiokafka asks the same broker again every 100 ms until its metadata ages out (5 min):
    seen in the 3-node test, a router stuck recovering ``printer-events.hygiene`` after one
    broker was SIGSTOPped for 30 s. A leadership error there now refreshes the metadata, as
    aiokafka's other offset lookups already do."""
    from aiokafka import errors
    from aiokafka.consumer.fetcher import Fetcher

    original = Fetcher._proc_offset_request
    if getattr(original, "_continuum_follows_leader", False):
        return
    stale = (errors.NotLeaderForPartitionError, errors.LeaderNotAvailableError, errors.UnknownTopicOrPartitionError)

    async def proc_offset_request(self: Any, node_id: int, topic_data: Any) -> Any:
        try:
            return await original(self, node_id, topic_data)
        except stale:
            self._client.force_metadata_update()
            raise

    proc_offset_request._continuum_follows_leader = True  # type: ignore[attr-defined]
    Fetcher._proc_offset_request = proc_offset_request  # type: ignore[method-assign]


def _transactions_follow_the_source() -> None:
    """Under ``processing_guarantee="exactly_once"`` Faust commits a source partition's offsets
    in the transaction of that partition (``{app}-{group}-{partition}``), but sends each output
    in the transaction named after the *output* topic's partition: an output and the offset of
    the event that caused it land in different transactions, so a worker killed between the
    two commits re-routes what was already committed (measured: 1,413 duplicates in logging
    over 3 kills). Sent while an event is being processed, an output joins that event's
    source-partition transaction instead; sends outside any event (timers) are left as Faust
    makes them."""
    from faust.streams import current_event
    from faust.transport.consumer import TransactionManager

    original = TransactionManager.send
    if getattr(original, "_continuum_source", False):
        return

    async def send(
        self: Any,
        topic: str,
        key: Any,
        value: Any,
        partition: Any,
        timestamp: Any,
        headers: Any,
        *,
        transactional_id: str | None = None,
    ) -> Any:
        event = current_event()
        if event is None:
            return await original(
                self, topic, key, value, partition, timestamp, headers, transactional_id=transactional_id
            )
        source = event.message.tp
        group = self.app.assignor.group_for_topic(source.topic)
        return await self.producer.send(
            topic,
            key,
            value,
            self.consumer.key_partition(topic, key, partition),
            timestamp,
            headers,
            transactional_id=f"{self.app.conf.id}-{group}-{source.partition}",
        )

    send._continuum_source = True  # type: ignore[attr-defined]
    TransactionManager.send = send


class SourceProgress:
    """Under exactly-once, where each source partition's outputs are complete.

    Faust commits the offsets of *acknowledged* events, and it acknowledges an event only when
    the agent asks for the next one; its commit runs beside the agent. So a commit can seal a
    transaction holding an event's outputs while the offset it commits stops just before that
    event, and a worker killed then routes the event again (measured: 7 duplicates over 3
    kills after the fix above). Each agent step runs under :attr:`lock` and records the next
    offset of its source partition when it ends; the commit takes the lock, so it falls between
    events, and commits those offsets.
    """

    def __init__(self) -> None:
        self.lock = asyncio.Lock()
        self.next_offsets: dict[Any, int] = {}

    @contextlib.asynccontextmanager
    async def step(self, event: Any) -> AsyncIterator[None]:
        async with self.lock:
            yield
            message = event.message
            self.next_offsets[message.tp] = message.offset + 1

    def merged(self, offsets: Mapping[Any, int], assigned: set[Any]) -> dict[Any, int]:
        for tp in [tp for tp in self.next_offsets if tp not in assigned]:
            del self.next_offsets[tp]  # revoked: its next owner commits it
        merged = dict(offsets)
        for tp, offset in self.next_offsets.items():
            merged[tp] = max(offset, merged.get(tp, offset))
        return merged


def _commits_between_events() -> None:
    from faust.transport.consumer import TransactionManager

    original = TransactionManager.commit
    if getattr(original, "_continuum_between_events", False):
        return

    async def commit(self: Any, offsets: Mapping[Any, int], start_new_transaction: bool = True) -> bool:
        progress: SourceProgress | None = getattr(self.app, "continuum_progress", None)
        if progress is None:
            return await original(self, offsets, start_new_transaction)
        async with progress.lock:
            merged = progress.merged(offsets, set(self.app.consumer.assignment()))
            return await original(self, merged, start_new_transaction)

    commit._continuum_between_events = True  # type: ignore[attr-defined]
    TransactionManager.commit = commit


def exactly_once_step(app: faust.App, event: Any) -> contextlib.AbstractAsyncContextManager[None]:
    """Wrap an agent's handling of one event: under exactly-once, a commit never splits it."""
    progress: SourceProgress | None = getattr(app, "continuum_progress", None)
    return progress.step(event) if progress is not None else contextlib.nullcontext()


def create_app(
    settings: KafkaSettings, *, datadir: Path | None = None, app_id: str = APP_ID, **overrides: Any
) -> faust.App:
    brokers = ";".join(f"kafka://{server.strip()}" for server in settings.bootstrap_servers.split(","))
    conf: dict[str, Any] = {
        "version": APP_VERSION,
        "broker": brokers,
        "broker_credentials": broker_credentials(settings),
        "broker_client_id": f"{settings.client_id}-router",
        "broker_session_timeout": 6,
        "broker_heartbeat_interval": 1,
        "broker_commit_interval": 1.0,
        # Metadata no older than 30 s (aiokafka's default is 5 min): a client that missed a
        # leadership change finds the new leader within that, whatever path it is stuck on.
        "consumer_metadata_max_age_ms": 30_000,
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
    # Faust makes only the last directory of the path: a fresh clone has no .state/ yet.
    Path(conf["datadir"]).mkdir(parents=True, exist_ok=True)
    _bound_fetch_wait()
    _offset_resets_follow_the_leader()
    if conf["processing_guarantee"] == "exactly_once":
        _transactions_follow_the_source()
        _commits_between_events()
    app = faust.App(app_id, **conf)
    app.continuum_fetch_wait_max_ms = settings.fetch_wait_max_ms  # type: ignore[attr-defined]
    if conf["processing_guarantee"] == "exactly_once":
        app.continuum_progress = SourceProgress()  # type: ignore[attr-defined]
    return app
