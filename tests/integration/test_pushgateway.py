"""The Pushgateway connector against a real prometheus-pushgateway, reading back what
Prometheus would scrape (``GET /metrics``) and the gateway's own view (``/api/v1/metrics``)."""

from __future__ import annotations

import random
import threading
import time
import warnings
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from pydantic import SecretStr

from continuum_events.broker import LocalBroker, free_port, local_broker
from continuum_events.connectors.base import ConfigError, Retry, SinkContext
from continuum_events.connectors.http import HttpClient
from continuum_events.connectors.pushgateway import PushgatewayConfig, PushgatewaySink, State
from continuum_events.connectors.runtime import IntegrationRunner
from continuum_events.events import Event, EventType, Severity
from continuum_events.producers import EventProducer
from continuum_events.settings import KafkaSettings
from continuum_events.topology import category_topic
from tests.daemons import Gateway, running_gateway
from tests.kafka_helpers import committed_offsets as group_offsets
from tests.kafka_helpers import read_topic

T0 = 1_795_800_000_000_000  # µs
CONTEXT = SinkContext("pushgateway-test", KafkaSettings())


@pytest.fixture(scope="module")
def gateway() -> Iterator[Gateway]:
    with running_gateway() as g:
        yield g


def sink_for(gateway: Gateway, job: str, **options: object) -> PushgatewaySink:
    return PushgatewaySink(PushgatewayConfig(gateway.url, job=job, **options))  # type: ignore[arg-type]


def ev(
    kind: EventType, printer_id: str = "p-1", at_s: float = 0, severity: str = "warning", **payload: object
) -> Event:
    return Event(
        f"e-{printer_id}-{at_s}",
        kind,
        Severity(severity),
        T0 + int(at_s * 1_000_000),
        {"printer_id": printer_id, **payload},
    )


# -- what Prometheus sees ---------------------------------------------------------------------
def test_offline_then_online_is_up_since_the_online_event(gateway: Gateway) -> None:
    sink = sink_for(gateway, "updown")
    sink.open(CONTEXT)
    sink.write([ev(EventType.PRINTER_OFFLINE, at_s=1), ev(EventType.PRINTER_ONLINE, at_s=2.25, severity="info")])
    assert gateway.value("continuum_printer_up", job="updown", printer="p-1") == 1
    assert gateway.value(
        "continuum_printer_last_change_timestamp_seconds", job="updown", printer="p-1"
    ) == pytest.approx((T0 + 2_250_000) / 1e6, abs=1e-6)
    sink.write([ev(EventType.PRINTER_OFFLINE, at_s=5)])
    assert gateway.value("continuum_printer_up", job="updown", printer="p-1") == 0
    assert gateway.value(
        "continuum_printer_last_change_timestamp_seconds", job="updown", printer="p-1"
    ) == pytest.approx((T0 + 5_000_000) / 1e6, abs=1e-6)


def test_post_keeps_metrics_the_batch_does_not_name(gateway: Gateway) -> None:
    sink = sink_for(gateway, "toner")
    sink.write(
        [
            ev(
                EventType.PRINTER_OFFLINE,
                toner_level_percent=37,
                printer_name="HQ FIN 1",
                printer_model="MX-410",
                printer_location="HQ-1F",
                printer_department="Finance",
                printer_ip="10.0.0.9",
            )
        ]
    )
    assert gateway.value("continuum_printer_toner_level_percent", job="toner", printer="p-1") == 37
    # Another pusher's metric in the same group must survive our POSTs.
    assert requests.post(f"{gateway.url}/metrics/job/toner/printer/p-1", data=b"pages_printed 120\n", timeout=5).ok
    sink.write([ev(EventType.PRINTER_ONLINE, at_s=1, toner_level_percent=36)])
    sink.write([ev(EventType.PRINTER_ERROR, at_s=2)])
    assert gateway.value("continuum_printer_toner_level_percent", job="toner", printer="p-1") == 36
    assert gateway.value("continuum_printer_up", job="toner", printer="p-1") == 1
    assert gateway.value("pages_printed", job="toner", printer="p-1") == 120
    ((info, one),) = gateway.samples("continuum_printer_info", job="toner", printer="p-1")
    assert one == 1 and info == {
        "job": "toner",
        "instance": "",
        "printer": "p-1",
        "name": "HQ FIN 1",
        "model": "MX-410",
        "location": "HQ-1F",
        "department": "Finance",
        "ip": "10.0.0.9",
    }


def test_counters_by_type_and_severity_are_exact(gateway: Gateway) -> None:
    sink = sink_for(gateway, "counts")
    rng = random.Random(3)
    kinds = [EventType.PRINTER_OFFLINE, EventType.PRINTER_ONLINE, EventType.PRINTER_ERROR]
    events = [
        ev(rng.choice(kinds), f"p-{i % 7}", at_s=i, severity=rng.choice(["info", "warning", "error"]))
        for i in range(120)
    ]
    sink.write(events[:50])
    sink.write(events[50:])
    expected = Counter((e.event_type.value, e.severity.value) for e in events)
    assert gateway.counters("counts") == expected
    assert len(gateway.samples("continuum_events_total", job="counts")) == len(expected)  # one group only


def test_removed_printer_group_is_gone(gateway: Gateway) -> None:
    sink = sink_for(gateway, "removal")
    sink.write([ev(EventType.PRINTER_OFFLINE, "stays"), ev(EventType.PRINTER_OFFLINE, "goes", toner_level_percent=5)])
    assert {"job": "removal", "printer": "goes"} in gateway.groups("removal")
    sink.write([ev(EventType.PRINTER_REMOVED, "goes", at_s=1, severity="info")])
    assert gateway.samples("continuum_printer_up", job="removal", printer="goes") == []
    assert gateway.samples("continuum_printer_toner_level_percent", job="removal", printer="goes") == []
    assert {"job": "removal", "printer": "goes"} not in gateway.groups("removal")
    assert gateway.value("continuum_printer_up", job="removal", printer="stays") == 0
    assert gateway.counters("removal")[("printer.removed", "info")] == 1


def test_a_restarted_connector_continues_counting(gateway: Gateway) -> None:
    first = sink_for(gateway, "restart")
    first.open(CONTEXT)
    first.write([ev(EventType.PRINTER_OFFLINE, at_s=1 + i / 10) for i in range(5)])
    first.close()
    second = sink_for(gateway, "restart")
    second.open(CONTEXT)
    second.write([ev(EventType.PRINTER_OFFLINE, at_s=9 + i / 10) for i in range(3)])  # offline again: not a change
    second.close()
    third = sink_for(gateway, "restart")  # open never called: read back on the first batch
    third.write([ev(EventType.PRINTER_OFFLINE, at_s=10 + i / 10) for i in range(2)])
    assert gateway.counters("restart") == {("printer.offline", "warning"): 10}
    assert gateway.value(
        "continuum_printer_last_change_timestamp_seconds", job="restart", printer="p-1"
    ) == pytest.approx((T0 + 1_000_000) / 1e6, abs=1e-6)


def test_a_batch_replayed_after_a_restart_is_neither_applied_nor_counted_again(gateway: Gateway) -> None:
    """A connector crashes after its pushes, before the offsets were committed: the next one
    gets the same records again, and an old offline redelivered later still."""
    batch = [
        ev(EventType.PRINTER_OFFLINE, "a", at_s=1),
        ev(EventType.PRINTER_ONLINE, "a", at_s=2, severity="info"),
        ev(EventType.PRINTER_OFFLINE, "b", at_s=1),
    ]
    first = sink_for(gateway, "replay")
    first.open(CONTEXT)
    first.write(batch)
    first.close()
    second = sink_for(gateway, "replay")
    second.open(CONTEXT)
    second.write(batch)
    second.write([ev(EventType.PRINTER_OFFLINE, "a", at_s=1.5)])  # late: older than the online
    assert gateway.counters("replay") == {("printer.offline", "warning"): 2, ("printer.online", "info"): 1}
    assert gateway.value("continuum_printer_up", job="replay", printer="a") == 1
    assert gateway.value(
        "continuum_printer_last_event_timestamp_seconds", job="replay", instance="continuum-events", printer="a"
    ) == pytest.approx((T0 + 2_000_000) / 1e6, abs=1e-6)
    second.write([ev(EventType.PRINTER_OFFLINE, "a", at_s=3)])  # newer: applied and counted
    assert gateway.value("continuum_printer_up", job="replay", printer="a") == 0
    assert gateway.counters("replay")[("printer.offline", "warning")] == 3


class AnswerLost(HttpClient):
    """Sends the first PUT, then reports it lost, as a connection reset after the gateway
    took the push would."""

    lost = False

    def request(self, method, url, body=None, headers=None, *, what="request"):  # type: ignore[override]
        response = super().request(method, url, body, headers, what=what)
        if method == "PUT" and not self.lost:
            self.lost = True
            raise Retry(f"{what}: connection reset")
        return response


def test_a_batch_sent_again_is_counted_once(gateway: Gateway) -> None:
    sink = PushgatewaySink(PushgatewayConfig(gateway.url, job="again"), AnswerLost(5.0))
    batch = [ev(EventType.PRINTER_OFFLINE, f"p-{i}") for i in range(4)]
    with pytest.raises(Retry):
        sink.write(batch)
    sink.write(batch)  # the runtime's retry
    assert gateway.counters("again") == {("printer.offline", "warning"): 4}


@pytest.mark.parametrize("printer_id", ["a/b", "a/b/c", "", "..", "x y?#%&", "Drucker Ü", "p-1"])
def test_any_printer_id_gets_its_own_group(gateway: Gateway, printer_id: str) -> None:
    sink = sink_for(gateway, "odd-ids")
    name = 'cover "B" \\ open\nnow'
    sink.write([ev(EventType.PRINTER_OFFLINE, printer_id, toner_level_percent=11, printer_name=name)])
    assert gateway.value("continuum_printer_up", job="odd-ids", printer=printer_id) == 0
    assert gateway.value("continuum_printer_toner_level_percent", job="odd-ids", printer=printer_id) == 11
    ((info, _),) = gateway.samples("continuum_printer_info", job="odd-ids", printer=printer_id)
    assert info["name"] == name


# -- the gateway's answers -----------------------------------------------------------------------
def test_the_gateway_refuses_malformed_bodies_and_timestamps_with_400(gateway: Gateway) -> None:
    """What the connector relies on: a malformed push is a 400 with a reason, never stored."""
    url = f"{gateway.url}/metrics/job/malformed"
    broken = requests.post(url, data=b"continuum_printer_up{ 1\n", timeout=5)
    stamped = requests.post(url, data=b"some_gauge 1 1795800000000\n", timeout=5)
    assert broken.status_code == 400 and "text format parsing error" in broken.text
    assert stamped.status_code == 400 and "must not have timestamps" in stamped.text
    assert gateway.samples("some_gauge") == []


def test_a_metric_typed_differently_elsewhere_is_a_configuration_problem() -> None:
    with running_gateway() as fresh:  # the conflicting push would poison the shared gateway
        assert requests.put(f"{fresh.url}/metrics/job/legacy", data=b"continuum_printer_up 1\n", timeout=5).ok
        sink = sink_for(fresh, "conflict")
        with pytest.raises(ConfigError, match="another type"):
            sink.write([ev(EventType.PRINTER_OFFLINE)])
        assert sink.state is not None and sink.state.counters == {}


def test_check_names_the_gateway(gateway: Gateway) -> None:
    verdict = sink_for(gateway, "check").check()
    assert gateway.url in verdict and "Pushgateway 1." in verdict


def test_gateway_down_is_retried() -> None:
    sink = PushgatewaySink(PushgatewayConfig(f"http://127.0.0.1:{free_port()}"))
    sink.open(CONTEXT)  # logs, does not raise: the runtime would not survive it
    assert sink.state is None
    with pytest.raises(Retry):
        sink.write([ev(EventType.PRINTER_OFFLINE)])
    with pytest.raises(Retry):
        sink.check()


def test_a_wrong_base_url_is_a_configuration_error(gateway: Gateway) -> None:
    sink = PushgatewaySink(PushgatewayConfig(f"{gateway.url}/pushgateway"))
    with pytest.raises(ConfigError, match="404"):
        sink.check()
    with pytest.raises(ConfigError, match="404"):
        sink.write([ev(EventType.PRINTER_OFFLINE)])
    sink.state = State()  # past the read-back: the pushes themselves
    with pytest.raises(ConfigError, match="404"):
        sink.write([ev(EventType.PRINTER_OFFLINE)])


def _bcrypt(password: str) -> str:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        crypt = pytest.importorskip("crypt")
    hashed = crypt.crypt(password, crypt.mksalt(crypt.METHOD_BLOWFISH, rounds=16))
    if not hashed or not hashed.startswith("$2"):
        pytest.skip("no bcrypt in this libc's crypt()")
    return hashed


def test_basic_auth_behind_a_web_config(tmp_path: Path) -> None:
    web = tmp_path / "web.yml"
    web.write_text(f"basic_auth_users:\n  pusher: '{_bcrypt('s3cret-pw')}'\n")
    with running_gateway(f"--web.config.file={web}") as secured:
        good = PushgatewaySink(
            PushgatewayConfig(secured.url, job="auth", username="pusher", password=SecretStr("s3cret-pw"))
        )
        assert "Pushgateway" in good.check()
        good.write([ev(EventType.PRINTER_ONLINE, severity="info")])
        counted = requests.get(f"{secured.url}/metrics", auth=("pusher", "s3cret-pw"), timeout=5).text
        assert 'continuum_events_total{event_type="printer.online",instance="continuum-events",job="auth"' in counted
        for wrong in (
            PushgatewayConfig(secured.url),
            PushgatewayConfig(secured.url, username="pusher", password=SecretStr("guessed-pw")),
        ):
            with pytest.raises(ConfigError, match="401") as refused:
                PushgatewaySink(wrong).check()
            assert "guessed-pw" not in str(refused.value) and "s3cret" not in str(refused.value)
            with pytest.raises(ConfigError, match="401"):
                PushgatewaySink(wrong).write([ev(EventType.PRINTER_ONLINE)])


# -- through Kafka -----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def broker() -> Iterator[LocalBroker]:
    """A broker of this module's own: the monitoring topic holds exactly what the test produced."""
    with local_broker() as b:
        yield b


@pytest.mark.broker
def test_monitoring_events_through_the_runner(gateway: Gateway, broker: LocalBroker, tmp_path: Path) -> None:
    settings = KafkaSettings(bootstrap_servers=broker.bootstrap_servers)
    rng = random.Random(11)
    sent: list[tuple[EventType, str, str]] = []
    with EventProducer(settings, topic=category_topic("monitoring"), spool_path=tmp_path / "spool.db") as producer:
        for i in range(300):
            printer = f"p-{rng.randrange(20)}"
            kind = rng.choice([EventType.PRINTER_OFFLINE, EventType.PRINTER_ONLINE])
            severity = rng.choice(["info", "warning", "error"])
            producer.dispatch(
                kind,
                {"printer_id": printer, "printer_name": f"HQ {printer}", "toner_level_percent": rng.randrange(101)},
                severity=severity,
                timestamp_us=T0 + i * 1_000_000,
            )
            sent.append((kind, printer, severity))
        producer.flush(10)
    name = "pushgateway-runner"
    sink = PushgatewaySink(PushgatewayConfig(gateway.url, job="runner"))
    stop = threading.Event()
    runner = IntegrationRunner(name, "monitoring", sink, settings)
    thread = threading.Thread(target=runner.run, args=(stop,))
    thread.start()
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and sum(gateway.counters("runner").values()) < 300:
            time.sleep(0.2)
    finally:
        stop.set()
        thread.join(30)
    assert not thread.is_alive()
    assert gateway.counters("runner") == Counter((kind.value, severity) for kind, _, severity in sent)
    last = {printer: kind for kind, printer, _ in sent}
    for printer, kind in last.items():
        up = 1 if kind is EventType.PRINTER_ONLINE else 0
        assert gateway.value("continuum_printer_up", job="runner", printer=printer) == up, printer
    assert runner.health.delivered == 300 and runner.health.dead_lettered == 0
    ends = end_offsets(broker)
    assert sum(ends.values()) == 300 and committed_offsets(broker, f"continuum-connector-{name}") == ends


def end_offsets(broker: LocalBroker) -> dict[int, int]:
    """One past the last record, per partition of the monitoring topic that holds any. Read
    from the records: Tansu's ListOffsets answers too low (BROKER.md)."""
    ends: dict[int, int] = {}
    for r in read_topic(broker.bootstrap_servers, category_topic("monitoring"), expect=300):
        ends[r.partition] = max(ends.get(r.partition, 0), r.offset + 1)
    return ends


def committed_offsets(broker: LocalBroker, group: str) -> dict[int, int]:
    offsets = group_offsets(broker.bootstrap_servers, group, [category_topic("monitoring")])
    return {partition: offset for (_, partition), offset in offsets.items() if offset >= 0}
