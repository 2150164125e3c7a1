"""What Apache Kafka does that Tansu does not, used by the project and shown here on a real
node: compaction folds the keyed topics to what their readers already computed, topics carry
their retention, read_committed consumers never see an aborted transaction. (The time index
and true end offsets are in test_history.py, on both engines.)"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator

import pytest
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, ConfigResource

from continuum_events.broker import LocalBroker, default_engine, local_broker
from continuum_events.config import ConfigStore, write_config
from continuum_events.deadletter import read_keyed
from continuum_events.history import history_consumer
from continuum_events.settings import KafkaSettings
from continuum_events.topology import (
    CONFIG_TOPIC,
    EVENTS_DLQ_TOPIC,
    EVENTS_TOPIC,
    Topology,
    category_topic,
    incident_ledger_topic,
    redrive_ledger_topic,
)

pytestmark = [pytest.mark.broker, pytest.mark.skipif(default_engine() != "kafka", reason="Apache Kafka's own features")]


@pytest.fixture
def node() -> Iterator[LocalBroker]:
    """A node of this test's own: compaction needs topic settings no other test should see."""
    with local_broker() as broker:
        yield broker


def raw_records(settings: KafkaSettings, topic: str) -> list[tuple[str, bytes | None]]:
    consumer = history_consumer(settings, "raw")
    try:
        from continuum_events.history import read_range, watermarks

        ranges = {p: (r.start, r.end) for p, r in watermarks(consumer, topic).items()}
        return [((m.key() or b"").decode(), m.value()) for m in read_range(consumer, topic, ranges)]
    finally:
        consumer.close()


def topic_configs(admin: AdminClient, topic: str, timeout: float = 15.0) -> dict:
    """A topic's configuration, asking again while a topic just created is not yet in the
    metadata of the broker that answers (UNKNOWN_TOPIC_OR_PART)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return next(iter(admin.describe_configs([ConfigResource("TOPIC", topic)]).values())).result(timeout)
        except Exception:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def test_the_compacted_config_topic_folds_to_the_same_configuration(node: LocalBroker) -> None:
    settings = KafkaSettings(bootstrap_servers=node.bootstrap_servers)
    for version in range(40):  # a rule edited 40 times, an integration connected then removed
        write_config(settings, {"rule/edited": {"version": version}, f"rule/churn-{version % 4}": {"v": version}})
    write_config(settings, {"integration/gone": {"vendor": "splunk"}})
    write_config(settings, {"integration/gone": None})  # a delete is a tombstone
    before = ConfigStore(settings).start()
    assert before.wait_ready(15)
    folded = dict(before.values())
    before.stop()
    assert folded["rule/edited"] == {"version": 39} and "integration/gone" not in folded
    written = len(raw_records(settings, CONFIG_TOPIC))

    # Let the cleaner run now instead of after a week of segments: small segments, no lag, and
    # tombstones dropped at once; then a write rolls the segment the cleaner may not touch.
    admin = AdminClient({"bootstrap.servers": node.bootstrap_servers})
    resource = ConfigResource(
        "TOPIC",
        CONFIG_TOPIC,
        set_config={
            "cleanup.policy": "compact",
            "segment.ms": "100",
            "min.cleanable.dirty.ratio": "0.001",
            "min.compaction.lag.ms": "0",
            "delete.retention.ms": "0",
        },
    )
    for future in admin.alter_configs([resource]).values():
        future.result(15)
    deadline = time.monotonic() + 60
    while len(raw := raw_records(settings, CONFIG_TOPIC)) >= written - 30:
        assert time.monotonic() < deadline, f"not compacted: {len(raw)} of {written} records still there"
        time.sleep(1.0)
        write_config(settings, {"rule/edited": {"version": 39}})  # same value: rolls the segment

    after = ConfigStore(settings).start()
    assert after.wait_ready(15)
    assert dict(after.values()) == folded, "the compacted topic folds to the same configuration"
    after.stop()
    print(f"\nconfig topic: {written} records written, {len(raw)} after compaction")
    # Six keys, plus what the active segment still holds (the rolls above): the rest is gone.
    assert len(raw) <= 6 + 4, [key for key, _ in raw]


def test_topics_carry_their_retention_and_cleanup_policy(node: LocalBroker) -> None:
    admin = AdminClient({"bootstrap.servers": node.bootstrap_servers})
    from continuum_events.topology import ensure_topics

    ensure_topics(admin, [*Topology.ledger_topics("ledgered"), *Topology().integration_topics("ledgered")])
    wanted = {
        EVENTS_TOPIC: {"cleanup.policy": "delete", "retention.ms": str(7 * 24 * 3600 * 1000)},
        category_topic("alerting"): {"cleanup.policy": "delete", "retention.ms": str(7 * 24 * 3600 * 1000)},
        EVENTS_DLQ_TOPIC: {"retention.ms": str(30 * 24 * 3600 * 1000)},
        CONFIG_TOPIC: {"cleanup.policy": "compact"},
        incident_ledger_topic("ledgered"): {"cleanup.policy": "compact"},
        redrive_ledger_topic("ledgered"): {
            "cleanup.policy": "compact,delete",
            "retention.ms": str(30 * 24 * 3600 * 1000),
        },
    }
    for topic, expected in wanted.items():
        configs = topic_configs(admin, topic)
        assert {k: configs[k].value for k in expected} == expected, topic


def test_the_topics_command_sets_the_retention_asked_for(node: LocalBroker) -> None:
    from typer.testing import CliRunner

    from continuum_events.cli.main import app

    result = CliRunner().invoke(app, ["topics", "-b", node.bootstrap_servers, "--retention-hours", "72"])
    assert result.exit_code == 0, result.output
    # Existing topics are left as they are; the retention applies to topics it creates.
    assert "exists" in result.output
    admin = AdminClient({"bootstrap.servers": node.bootstrap_servers})
    topic = f"retention-{uuid.uuid4().hex[:6]}"
    from continuum_events.topology import TopicSpec, ensure_topics

    ensure_topics(admin, [TopicSpec(topic, 1, Topology(retention_ms=72 * 3600 * 1000).topics()[0].config)])
    assert topic_configs(admin, topic)["retention.ms"].value == str(72 * 3600 * 1000)


def test_connectors_never_deliver_what_an_aborted_transaction_wrote(node: LocalBroker, tmp_path) -> None:
    from continuum_events.codec import EventCodec
    from continuum_events.devtools.receivers import SplunkReceiver
    from continuum_events.events import Event, EventType, Severity, new_event_id, now_micros
    from tests.faults import ConnectorProcess

    codec, topic = EventCodec(), category_topic("logging")

    def event(i: int) -> Event:
        return Event(
            new_event_id(),
            EventType.PRINTER_ONLINE,
            Severity.INFO,
            now_micros(),
            {"printer_id": f"p-{i}", "printer_name": f"P {i}"},
        )

    producer = Producer({"bootstrap.servers": node.bootstrap_servers, "transactional.id": f"t-{uuid.uuid4().hex}"})
    producer.init_transactions(15)
    kept, aborted = [event(i) for i in range(50)], [event(i) for i in range(50, 100)]
    for batch, finish in ((aborted, producer.abort_transaction), (kept, producer.commit_transaction)):
        producer.begin_transaction()
        for e in batch:
            producer.produce(topic, codec.encode(e, topic), e.payload["printer_id"].encode())
        finish(15)
    with SplunkReceiver() as splunk:
        connector = ConnectorProcess(
            node.bootstrap_servers,
            "aborted-splunk",
            ["--vendor", "splunk", "--set", f"url={splunk.url}", "--secret", "token=HEC"],
            {"HEC": SplunkReceiver.TOKEN},
        ).start()
        try:
            deadline = time.monotonic() + 60
            while len(splunk.received.event_ids) < len(kept):
                assert time.monotonic() < deadline, connector.output()[-2000:]
                time.sleep(0.1)
            time.sleep(1.5)  # anything more would have come by now
        finally:
            connector.stop()
    assert set(splunk.received.event_ids) == {e.event_id for e in kept}
    print(json.dumps({"committed": len(kept), "aborted": len(aborted), "delivered": len(splunk.received.event_ids)}))


def test_the_redrive_ledger_reads_the_same_after_compaction_marks(node: LocalBroker) -> None:
    """A compacted ledger is read by folding, as before: offsets with gaps are no obstacle."""
    settings = KafkaSettings(bootstrap_servers=node.bootstrap_servers)
    from continuum_events.topology import ensure_topics

    ensure_topics(AdminClient({"bootstrap.servers": node.bootstrap_servers}), Topology().integration_topics("gaps"))
    write_config(settings, {f"0@{i}": {"at": i} for i in range(20)}, topic=redrive_ledger_topic("gaps"))
    consumer = history_consumer(settings, "ledger")
    try:
        assert len(read_keyed(consumer, redrive_ledger_topic("gaps"))) == 20
    finally:
        consumer.close()
