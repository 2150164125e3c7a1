"""The one contract every connector passes, against the real broker and a receiver that
enforces the vendor's contract: delivers all, retries transient errors, dead-letters bad
records with reasons, stops on bad configuration without losing data, commits only
after delivery, drains on shutdown."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Protocol, Self

import pytest
from confluent_kafka import Consumer, TopicPartition
from pydantic import SecretStr

from continuum_events.broker import LocalBroker, local_broker
from continuum_events.connectors.base import Sink
from continuum_events.connectors.datadog import DatadogConfig, DatadogSink
from continuum_events.connectors.elasticsearch import ElasticsearchConfig, ElasticsearchSink
from continuum_events.connectors.grafana import GrafanaConfig, GrafanaSink
from continuum_events.connectors.newrelic import NewRelicConfig, NewRelicSink
from continuum_events.connectors.nsca import NscaConfig, NscaSink
from continuum_events.connectors.opsgenie import OpsgenieConfig, OpsgenieSink
from continuum_events.connectors.pagerduty import PagerDutyConfig, PagerDutySink
from continuum_events.connectors.pushgateway import PushgatewayConfig, PushgatewaySink
from continuum_events.connectors.runtime import Backoff, IntegrationRunner
from continuum_events.connectors.splunk import SplunkConfig, SplunkHecSink
from continuum_events.connectors.victorops import VictorOpsConfig, VictorOpsSink
from continuum_events.deadletter import read_dead_letter_headers
from continuum_events.devtools.receivers import (
    Answer,
    DatadogReceiver,
    ElasticsearchReceiver,
    GrafanaReceiver,
    NewRelicReceiver,
    OpsgenieReceiver,
    PagerDutyReceiver,
    Received,
    SplunkReceiver,
    VictorOpsReceiver,
)
from continuum_events.events import EventType
from continuum_events.producers import EventProducer
from continuum_events.settings import KafkaSettings
from continuum_events.topology import category_topic, integration_dlq_topic
from tests import daemons
from tests.daemons import NscaReceiver, PushgatewayFront
from tests.kafka_helpers import committed_offsets

pytestmark = pytest.mark.broker


class Receiver(Protocol):
    """What the contract needs of a receiver: the URL its sink is given, what it can show of
    deliveries (event ids, counted: a duplicate counts twice) and the faults it can be told
    to show. The SaaS receivers are strict local ones (continuum_events/devtools/receivers.py); the Pushgateway
    and nsca are the real daemons behind small adapters (tests/daemons.py)."""

    url: str
    script: list[Answer]  # the next answers, each a transient failure here
    refuse_ids: set[str]  # records the vendor refuses as bad
    auth_broken: bool  # the vendor no longer accepts the sink's credentials

    @property
    def received(self) -> Received: ...
    def expect(self, payloads: Mapping[str, Mapping[str, Any]]) -> None: ...  # what the test produced, by event id
    def __enter__(self) -> Self: ...
    def __exit__(self, *exc: object) -> None: ...


@dataclass(frozen=True)
class Vendor:
    name: str
    receiver: Callable[[], Receiver]
    sink: Callable[[str], Sink]  # receiver URL -> sink
    busy: tuple  # a scripted transient answer
    #: check() proves the credentials (PagerDuty's Events API cannot without paging someone).
    check_verifies_auth: bool = True
    #: The vendor can refuse one record of a batch (NSCA cannot: it never answers).
    refuses_records: bool = True
    #: The vendor can ask for a delay (Retry-After) with a transient answer (NSCA cannot).
    asks_for_delay: bool = True
    #: One request per event (the alerting APIs, Grafana annotations; the Pushgateway pushes each
    #: printer's group): the contract's volumes are cut by five, so every case still spans many
    #: requests without a minute of HTTP round trips.
    per_event: bool = False


def _unthrottled_pagerduty() -> PagerDutyReceiver:
    receiver = PagerDutyReceiver()
    receiver.rate_limit = 10**9  # the rate limit has its own test (test_alerting.py)
    return receiver


def _pagerduty(url: str) -> PagerDutySink:
    sink = PagerDutySink(PagerDutyConfig(SecretStr(PagerDutyReceiver.ROUTING_KEY), url=url))
    sink.rate = None
    return sink


def _pushgateway(url: str) -> PushgatewaySink:
    return PushgatewaySink(
        PushgatewayConfig(url, username=PushgatewayFront.USERNAME, password=SecretStr(PushgatewayFront.PASSWORD))
    )


def _nsca(url: str) -> NscaSink:
    host, port = url.removeprefix("nsca://").rsplit(":", 1)
    return NscaSink(NscaConfig(host, int(port), password=SecretStr(daemons.PASSWORD)))


VENDORS = [
    Vendor(
        "splunk",
        SplunkReceiver,
        lambda url: SplunkHecSink(SplunkConfig(url, SecretStr(SplunkReceiver.TOKEN), index="printers")),
        (503, {"text": "Server is busy", "code": 9}, {}),
    ),
    Vendor(
        "elasticsearch",
        ElasticsearchReceiver,
        lambda url: ElasticsearchSink(ElasticsearchConfig(url, api_key=SecretStr(ElasticsearchReceiver.API_KEY))),
        (503, {"error": {"type": "unavailable_shards_exception"}, "status": 503}, {}),
    ),
    Vendor(
        "datadog",
        DatadogReceiver,
        lambda url: DatadogSink(DatadogConfig(SecretStr(DatadogReceiver.API_KEY), url=url)),
        (503, {"errors": ["Service Unavailable"]}, {}),
    ),
    Vendor(
        "grafana",
        GrafanaReceiver,
        lambda url: GrafanaSink(GrafanaConfig(url, SecretStr(GrafanaReceiver.TOKEN))),
        (503, {"message": "Service unavailable"}, {}),
        per_event=True,
    ),
    Vendor(
        "newrelic",
        NewRelicReceiver,
        lambda url: NewRelicSink(
            NewRelicConfig(NewRelicReceiver.ACCOUNT_ID, SecretStr(NewRelicReceiver.LICENSE_KEY), url=url)
        ),
        (503, {"success": False, "error": "Service Unavailable"}, {}),
    ),
    Vendor(
        "pagerduty",
        _unthrottled_pagerduty,
        _pagerduty,
        (500, {"status": "error", "message": "Internal Server Error"}, {}),
        check_verifies_auth=False,
        per_event=True,
    ),
    Vendor(
        "opsgenie",
        OpsgenieReceiver,
        lambda url: OpsgenieSink(OpsgenieConfig(SecretStr(OpsgenieReceiver.API_KEY), url=url)),
        (503, {"message": "Service Unavailable", "took": 0.0}, {}),
        per_event=True,
    ),
    Vendor(
        "victorops",
        VictorOpsReceiver,
        lambda url: VictorOpsSink(
            VictorOpsConfig(SecretStr(VictorOpsReceiver.API_KEY), SecretStr(VictorOpsReceiver.ROUTING_KEY), url=url)
        ),
        (503, {"result": "failure", "message": "Service Unavailable"}, {}),
        per_event=True,
    ),
    # The real daemons, /usr/bin/prometheus-pushgateway and /usr/sbin/nsca (tests/daemons.py).
    Vendor("pushgateway", PushgatewayFront, _pushgateway, (503, b"Service Unavailable\n", {}), per_event=True),
    # nsca never answers: a scripted answer is a connection reset before the greeting (NscaReceiver).
    Vendor("nsca", NscaReceiver, _nsca, (0, None, {}), refuses_records=False, asks_for_delay=False),
]
SECRETS = (
    SplunkReceiver.TOKEN,
    ElasticsearchReceiver.API_KEY,
    DatadogReceiver.API_KEY,
    GrafanaReceiver.TOKEN,
    NewRelicReceiver.LICENSE_KEY,
    PagerDutyReceiver.ROUTING_KEY,
    OpsgenieReceiver.API_KEY,
    VictorOpsReceiver.API_KEY,
    VictorOpsReceiver.ROUTING_KEY,
    PushgatewayFront.PASSWORD,
    daemons.PASSWORD,
)


@dataclass
class Rig:
    broker: LocalBroker
    receiver: Receiver
    vendor: Vendor
    settings: KafkaSettings
    name: str

    def volume(self, n: int) -> int:
        """``n`` events for a batching vendor, a fifth of them for one that takes a request per event."""
        return n // 5 if self.vendor.per_event else n

    def produce(self, n: int, start: int = 0) -> list[str]:
        with EventProducer(self.settings, topic=category_topic("logging"), spool_path=_tmp_spool()) as p:
            # One printer per event: for the alerting vendors each is an incident of its own.
            payloads = [
                {"printer_id": f"p-{i}", "printer_name": f"P{i}", "consecutive_failures": 3}
                for i in range(start, start + n)
            ]
            ids = [p.dispatch(EventType.PRINTER_OFFLINE, payload) for payload in payloads]
            assert p.flush(10) == 0
        self.receiver.expect(dict(zip(ids, payloads, strict=True)))
        return ids

    def runner(self, **kwargs) -> tuple[IntegrationRunner, threading.Event, threading.Thread]:
        runner = IntegrationRunner(
            self.name,
            "logging",
            self.vendor.sink(self.receiver.url),
            self.settings,
            backoff=Backoff(base_s=0.05, cap_s=0.5),
            **kwargs,
        )
        stop = threading.Event()
        thread = threading.Thread(target=runner.run, args=(stop,), daemon=True)
        thread.start()
        return runner, stop, thread

    def wait_for(self, predicate: Callable[[], bool], timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            assert time.monotonic() < deadline, "timed out"
            time.sleep(0.05)

    def committed(self) -> int:
        offsets = committed_offsets(self.broker.bootstrap_servers, f"continuum-connector-{self.name}")
        return sum(max(offset, 0) for offset in offsets.values())

    def dead_letters(self) -> list[tuple[bytes, dict[str, str]]]:
        consumer = Consumer({"bootstrap.servers": self.broker.bootstrap_servers, "group.id": "dlq-check"})
        topic = integration_dlq_topic(self.name)
        out = []
        try:
            if topic not in consumer.list_topics(timeout=5).topics:
                return []
            consumer.assign([TopicPartition(topic, 0, 0)])
            while (msg := consumer.poll(1.0)) is not None:
                if not msg.error():
                    out.append((msg.value(), read_dead_letter_headers(msg.headers())))
        finally:
            consumer.close()
        return out


def _tmp_spool():
    import tempfile
    from pathlib import Path

    return Path(tempfile.mkdtemp(prefix="contract-")) / "spool.db"


@pytest.fixture(params=VENDORS, ids=lambda v: v.name)
def rig(request) -> Iterator[Rig]:
    vendor: Vendor = request.param
    with local_broker() as broker, vendor.receiver() as receiver:
        settings = KafkaSettings(bootstrap_servers=broker.bootstrap_servers)
        yield Rig(broker, receiver, vendor, settings, f"{vendor.name}-contract")


def _stop(stop: threading.Event, thread: threading.Thread) -> None:
    stop.set()
    thread.join(30)
    assert not thread.is_alive()


def test_delivers_everything_then_commits(rig: Rig) -> None:
    ids = rig.produce(rig.volume(1_500))
    runner, stop, thread = rig.runner()
    rig.wait_for(lambda: set(ids) <= set(rig.receiver.received.event_ids))
    rig.wait_for(lambda: rig.committed() == len(ids))
    _stop(stop, thread)
    assert sum(rig.receiver.received.event_ids.values()) == len(ids), "no duplicates without faults"
    assert runner.health.delivered == len(ids) and runner.health.dead_lettered == 0


def test_retries_transient_errors_honouring_retry_after(rig: Rig) -> None:
    ids = rig.produce(rig.volume(300))
    rig.receiver.script = [rig.vendor.busy, (429, {"text": "slow down"}, {"Retry-After": "1"}), rig.vendor.busy]
    started = time.monotonic()
    runner, stop, thread = rig.runner()
    rig.wait_for(lambda: set(ids) <= set(rig.receiver.received.event_ids))
    if rig.vendor.asks_for_delay:
        assert time.monotonic() - started >= 1.0, "Retry-After: 1 was not honoured"
    rig.wait_for(lambda: rig.committed() == len(ids))
    _stop(stop, thread)
    assert runner.health.retried > 0 and runner.health.dead_lettered == 0
    assert rig.dead_letters() == []


def test_dead_letters_bad_records_with_reasons_and_delivers_the_rest(rig: Rig) -> None:
    if not rig.vendor.refuses_records:
        pytest.skip(f"{rig.vendor.name} has no answer that refuses a single record: nothing to dead-letter")
    ids = rig.produce(rig.volume(200))
    bad = {ids[17], ids[-10]}
    rig.receiver.refuse_ids = bad
    runner, stop, thread = rig.runner()
    rig.wait_for(lambda: rig.committed() == len(ids))
    _stop(stop, thread)
    assert set(rig.receiver.received.event_ids) == set(ids) - bad
    letters = rig.dead_letters()
    assert len(letters) == 2 and runner.health.dead_lettered == 2
    for _, headers in letters:
        assert headers["dlq.stage"] == f"connector:{rig.name}" and headers["dlq.reason"]
        assert headers["dlq.topic"] == category_topic("logging") and int(headers["dlq.offset"]) >= 0


def test_bad_configuration_stops_sending_keeps_data_and_resumes_when_fixed(rig: Rig) -> None:
    ids = rig.produce(rig.volume(400))
    rig.receiver.auth_broken = True
    runner, stop, thread = rig.runner(config_retry_s=1.0)
    rig.wait_for(lambda: runner.health.state == "unhealthy")
    time.sleep(1.5)
    assert rig.committed() == 0, "nothing may be committed while the integration is misconfigured"
    assert not rig.receiver.received.event_ids and rig.dead_letters() == []
    rig.receiver.auth_broken = False
    rig.wait_for(lambda: rig.committed() == len(ids))
    _stop(stop, thread)
    assert set(rig.receiver.received.event_ids) == set(ids)
    # The failure was counted and dated; the deliveries since superseded it as the last error.
    assert runner.health.state == "stopped" and runner.health.errors >= 1 and runner.health.last_error_at
    assert runner.health.last_error is None


def test_commits_only_after_delivery_and_drains_on_shutdown(rig: Rig) -> None:
    ids = rig.produce(rig.volume(2_000))
    committed_vs_delivered = []

    def check(phase: str) -> None:
        if phase == "committed":
            committed_vs_delivered.append((rig.committed(), sum(rig.receiver.received.event_ids.values())))

    _runner, stop, thread = rig.runner(on_batch=check)
    rig.wait_for(lambda: len(rig.receiver.received.event_ids) >= len(ids) // 4)
    _stop(stop, thread)  # mid-stream: finish the batch in hand, commit, leave
    at_stop = rig.committed()
    assert at_stop <= len(set(rig.receiver.received.event_ids))
    assert all(c <= d for c, d in committed_vs_delivered), committed_vs_delivered

    _runner, stop, thread = rig.runner()  # the same integration again: continues where it left
    rig.wait_for(lambda: set(ids) <= set(rig.receiver.received.event_ids))
    rig.wait_for(lambda: rig.committed() == len(ids))
    _stop(stop, thread)
    duplicates = sum(rig.receiver.received.event_ids.values()) - len(ids)
    assert duplicates == 0, "a clean stop commits everything it delivered"


@pytest.mark.parametrize("vendor", VENDORS, ids=lambda v: v.name)
def test_test_connection_gives_a_verdict_and_never_echoes_the_secret(vendor: Vendor) -> None:
    from continuum_events.connectors.base import ConfigError

    with vendor.receiver() as receiver:
        sink = vendor.sink(receiver.url)
        verdict = sink.check()
        assert receiver.url in verdict or vendor.name in verdict.lower().replace(" ", "")
        if vendor.check_verifies_auth:
            receiver.auth_broken = True
            with pytest.raises(ConfigError) as caught:
                sink.check()
        else:
            import dataclasses

            sink.config = dataclasses.replace(
                sink.config, **{f.name: SecretStr("short") for f in dataclasses.fields(sink.config) if "key" in f.name}
            )
            with pytest.raises(ConfigError) as caught:
                sink.check()
        for secret in SECRETS:
            assert secret not in str(caught.value) and secret not in verdict


@pytest.fixture
def splunk_rig() -> Iterator[Rig]:
    with local_broker() as broker, SplunkReceiver() as receiver:
        yield Rig(broker, receiver, VENDORS[0], KafkaSettings(bootstrap_servers=broker.bootstrap_servers), "splunk-ack")


def test_splunk_indexer_acknowledgement_gates_the_commit(splunk_rig: Rig) -> None:
    rig = splunk_rig
    rig.receiver.ack_enabled, rig.receiver.ack_pending_polls = True, 2
    ids = rig.produce(600)
    sink = SplunkHecSink(SplunkConfig(rig.receiver.url, SecretStr(SplunkReceiver.TOKEN), use_ack=True))
    rig.vendor = Vendor("splunk", SplunkReceiver, lambda url: sink, rig.vendor.busy)
    _runner, stop, thread = rig.runner()
    rig.wait_for(lambda: rig.committed() == len(ids))
    _stop(stop, thread)
    assert set(rig.receiver.received.event_ids) == set(ids)
    assert rig.receiver.ack_polls >= 3 * len(rig.receiver.acks), "each batch was polled until acknowledged"


def test_splunk_ack_requested_but_disabled_on_the_token_is_a_config_error(splunk_rig: Rig) -> None:
    from continuum_events.connectors.base import ConfigError
    from continuum_events.events import Event, Severity, new_event_id
    from tests.samples import full_payload

    sink = SplunkHecSink(SplunkConfig(splunk_rig.receiver.url, SecretStr(SplunkReceiver.TOKEN), use_ack=True))
    event = Event(new_event_id(), EventType.PRINTER_JAM, Severity.WARNING, 0, full_payload("printer"))
    with pytest.raises(ConfigError, match="indexer acknowledgement is off"):
        sink.write([event])


def test_elasticsearch_partial_failures_retry_only_the_failed_items() -> None:
    with local_broker() as broker, ElasticsearchReceiver() as receiver:
        rig = Rig(broker, receiver, VENDORS[1], KafkaSettings(bootstrap_servers=broker.bootstrap_servers), "es-partial")
        ids = rig.produce(300)
        receiver.item_429_once = {ids[5], ids[77], ids[250]}
        runner, stop, thread = rig.runner()
        rig.wait_for(lambda: rig.committed() == len(ids))
        _stop(stop, thread)
        assert {d["event_id"] for d in receiver.documents.values()} == set(ids)
        assert receiver.conflicts == 0, "only the failed items were sent again"
        assert runner.health.retried == 3


def test_metrics_are_served_over_http(splunk_rig: Rig) -> None:
    import requests

    from continuum_events.broker import free_port
    from continuum_events.connectors.host import Integration, run_integrations

    rig = splunk_rig
    ids = rig.produce(250)
    port, stop = free_port(), threading.Event()
    sink = SplunkHecSink(SplunkConfig(rig.receiver.url, SecretStr(SplunkReceiver.TOKEN)))
    host = threading.Thread(
        target=run_integrations, args=(rig.settings, [Integration("splunk-metrics", "logging", sink)], stop, port)
    )
    host.start()
    try:
        rig.wait_for(lambda: set(ids) <= set(rig.receiver.received.event_ids))
        time.sleep(0.5)
        text = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    finally:
        stop.set()
        host.join(30)
    assert 'continuum_connector_delivered_total{integration="splunk-metrics"} 250.0' in text
    assert 'continuum_connector_healthy{integration="splunk-metrics"} 1.0' in text
    assert 'continuum_connector_request_seconds_count{integration="splunk-metrics"}' in text
    assert 'continuum_connector_lag{integration="splunk-metrics"}' in text
    assert SplunkReceiver.TOKEN not in text
