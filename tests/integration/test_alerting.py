"""The incident lifecycle end to end, for PagerDuty, Opsgenie and VictorOps, against
receivers that keep incident state like the vendor: one incident per outage whatever
is delivered twice, resolved by the clearing event, reopened by a later outage; no
extra incident from replaying history or from a crash between the vendor's answer and
the ledger; PagerDuty's rate respected by queueing."""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest
from confluent_kafka import Producer
from pydantic import SecretStr

from continuum_events.broker import LocalBroker, local_broker
from continuum_events.codec import EventCodec
from continuum_events.connectors.base import SinkContext
from continuum_events.connectors.incidents import IncidentLedger, LifecycleSink
from continuum_events.connectors.opsgenie import OpsgenieConfig, OpsgenieSink
from continuum_events.connectors.pagerduty import PagerDutyConfig, PagerDutySink
from continuum_events.connectors.runtime import Backoff, IntegrationRunner
from continuum_events.connectors.victorops import VictorOpsConfig, VictorOpsSink
from continuum_events.devtools.receivers import ContractReceiver, OpsgenieReceiver, PagerDutyReceiver, VictorOpsReceiver
from continuum_events.events import DEFAULT_SEVERITY, Event, EventType, Severity, event_key, new_event_id
from continuum_events.settings import KafkaSettings
from continuum_events.topology import Topology, category_topic, ensure_topology

pytestmark = pytest.mark.broker
MINUTE = 60_000_000


@dataclass(frozen=True)
class Alerting:
    name: str
    receiver: Callable[[], ContractReceiver]
    sink: Callable[[str], LifecycleSink]
    open_keys: Callable[[ContractReceiver], set[str]]


VENDORS = [
    Alerting(
        "pagerduty",
        PagerDutyReceiver,
        lambda url: PagerDutySink(PagerDutyConfig(SecretStr(PagerDutyReceiver.ROUTING_KEY), url=url)),
        lambda r: r.open_keys(),
    ),
    Alerting(
        "opsgenie",
        OpsgenieReceiver,
        lambda url: OpsgenieSink(OpsgenieConfig(SecretStr(OpsgenieReceiver.API_KEY), url=url)),
        lambda r: r.open_aliases(),
    ),
    Alerting(
        "victorops",
        VictorOpsReceiver,
        lambda url: VictorOpsSink(
            VictorOpsConfig(SecretStr(VictorOpsReceiver.API_KEY), SecretStr(VictorOpsReceiver.ROUTING_KEY), url=url)
        ),
        lambda r: r.open_entities(),
    ),
]


def printer_event(kind: str, printer: str, t: int, **extra: object) -> Event:
    return Event(
        new_event_id(),
        EventType(kind),
        Severity(DEFAULT_SEVERITY.get(kind, "info")),
        t,
        {"printer_id": printer, "printer_name": f"Printer {printer}", "printer_location": "Finance-3F", **extra},
    )


@dataclass
class Rig:
    broker: LocalBroker
    receiver: ContractReceiver
    vendor: Alerting
    settings: KafkaSettings
    name: str

    def produce(self, *events: Event) -> None:
        codec, topic = EventCodec(), category_topic("alerting")
        producer = Producer(self.settings.client_config(acks="all"))
        for e in events:
            producer.produce(topic, codec.encode(e, topic), event_key(e.family, e.payload).encode())
        assert producer.flush(10) == 0

    def runner(self, sink: LifecycleSink | None = None) -> tuple[IntegrationRunner, threading.Event, threading.Thread]:
        runner = IntegrationRunner(
            self.name,
            "alerting",
            sink or self.vendor.sink(self.receiver.url),
            self.settings,
            backoff=Backoff(base_s=0.05, cap_s=0.5),
        )
        stop = threading.Event()
        thread = threading.Thread(target=runner.run, args=(stop,), daemon=True)
        thread.start()
        return runner, stop, thread

    def opened(self, key: str | None = None) -> int:
        return self.receiver.opened_count(key)

    def open_keys(self) -> set[str]:
        return self.vendor.open_keys(self.receiver)

    def opened_sink(self) -> LifecycleSink:
        """A sink as a fresh process would have it: its ledger read back from the broker."""
        sink = self.vendor.sink(self.receiver.url)
        sink.open(SinkContext(self.name, self.settings))
        return sink


def wait_for(predicate: Callable[[], bool], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def stop_runner(stop: threading.Event, thread: threading.Thread) -> None:
    stop.set()
    thread.join(30)
    assert not thread.is_alive()


@pytest.fixture(params=VENDORS, ids=lambda v: v.name)
def rig(request) -> Iterator[Rig]:
    vendor: Alerting = request.param
    with local_broker() as broker, vendor.receiver() as receiver:
        settings = KafkaSettings(bootstrap_servers=broker.bootstrap_servers)
        from confluent_kafka.admin import AdminClient

        ensure_topology(AdminClient(settings.client_config()), Topology())
        yield Rig(broker, receiver, vendor, settings, f"{vendor.name}-life")


def test_an_outage_opens_one_incident_resolves_and_a_later_one_opens_anew(rig: Rig) -> None:
    key = "printer/p-1/offline"
    now = time.time_ns() // 1000
    offline = printer_event("printer.offline", "p-1", now, consecutive_failures=3)
    runner, stop, thread = rig.runner()
    rig.produce(offline)
    wait_for(lambda: rig.open_keys() == {key})
    rig.produce(offline, printer_event("printer.offline", "p-1", now + 1))  # the same event again; a repeat
    online = printer_event("printer.online", "p-1", now + MINUTE)
    rig.produce(online)
    wait_for(lambda: rig.open_keys() == set())
    assert rig.opened(key) == 1, "a duplicate offline must not open a second incident"
    rig.produce(printer_event("printer.offline", "p-1", now + 5 * MINUTE))
    wait_for(lambda: rig.open_keys() == {key})
    assert rig.opened(key) == 2, "an outage after the resolve is a new incident"
    stop_runner(stop, thread)
    assert runner.health.dead_lettered == 0


def day_of_history(printers: int, start_us: int, seed: int = 7) -> list[Event]:
    """A day of flapping printers: alternating offline/online per printer, in time order."""
    rng, events = random.Random(seed), []
    for p in range(printers):
        t, down = start_us, False
        for _ in range(rng.randint(1, 6)):
            t += rng.randint(5, 200) * MINUTE
            down = not down
            events.append(printer_event("printer.offline" if down else "printer.online", f"p-{p}", t))
    return sorted(events, key=lambda e: e.timestamp_us)


def test_replaying_a_day_of_history_twice_opens_no_extra_incident(rig: Rig) -> None:
    day = day_of_history(25, time.time_ns() // 1000 - 24 * 60 * MINUTE)
    outages = sum(1 for e in day if e.event_type is EventType.PRINTER_OFFLINE)
    still_down = {
        f"printer/{e.payload['printer_id']}/offline"
        for e in day
        if e.event_type is EventType.PRINTER_OFFLINE
        and not any(o.payload["printer_id"] == e.payload["printer_id"] and o.timestamp_us > e.timestamp_us for o in day)
    }
    for _ in range(3):  # live once, then replayed twice, each by a restarted sink reading its ledger back
        sink = rig.opened_sink()
        for i in range(0, len(day), 20):
            result = sink.write(day[i : i + 20])
            assert not result.rejected and not result.retry
        sink.close()
        assert rig.opened() == outages
        assert rig.open_keys() == still_down


def test_a_crash_between_the_vendors_answer_and_the_ledger_reopens_nothing(rig: Rig, monkeypatch) -> None:
    offline = [printer_event("printer.offline", f"p-{i}", time.time_ns() // 1000) for i in range(30)]
    real_record, failures = IncidentLedger.record, []

    def record_once_failing(self, entries):
        if not failures:
            failures.append(len(entries))
            raise RuntimeError("broker gone")
        real_record(self, entries)

    monkeypatch.setattr(IncidentLedger, "record", record_once_failing)
    runner, stop, thread = rig.runner()
    rig.produce(*offline)
    wait_for(lambda: len(rig.open_keys()) == 30)
    wait_for(lambda: runner.health.delivered == 30)
    stop_runner(stop, thread)
    assert failures, "the ledger write failed once"
    assert rig.opened() == 30, "requests sent again after the failed ledger write landed on open incidents"
    assert runner.health.retried >= failures[0]


def test_pagerduty_rate_is_respected_by_queueing_never_by_dropping() -> None:
    with local_broker() as broker, PagerDutyReceiver() as receiver:
        settings = KafkaSettings(bootstrap_servers=broker.bootstrap_servers)
        receiver.rate_limit, receiver.rate_window_s = 12, 3.0
        sink = PagerDutySink(PagerDutyConfig(SecretStr(PagerDutyReceiver.ROUTING_KEY), url=receiver.url))
        sink.rate = (12, 3.0)
        rig = Rig(broker, receiver, VENDORS[0], settings, "pagerduty-rate")
        now = time.time_ns() // 1000
        rig.produce(*[printer_event("printer.offline", f"p-{i}", now) for i in range(40)])
        started = time.monotonic()
        runner, stop, thread = rig.runner(sink)
        wait_for(lambda: len(receiver.open_keys()) == 40, timeout=60)
        elapsed = time.monotonic() - started
        stop_runner(stop, thread)
    assert elapsed >= 3 * 3.0 - 1, f"40 events at 12 per 3 s cannot all arrive in {elapsed:.1f} s"
    assert receiver.throttled == 0, "the sink must hold back before PagerDuty throttles"
    throttled = runner.metrics.registry.get_sample_value(
        "continuum_connector_throttled_total", {"integration": "pagerduty-rate"}
    )
    assert runner.health.dead_lettered == 0 and throttled and throttled > 0, "the wait shows in the metrics"


def test_a_healthy_connector_beats_and_a_failing_or_stopped_one_goes_silent(rig: Rig) -> None:
    """The dead-man's switch: Opsgenie's Heartbeat API; PagerDuty and VictorOps through a
    dead-man's-switch check URL (their own APIs cannot alert on silence)."""
    from continuum_events.devtools.receivers import DeadMansSwitch

    with DeadMansSwitch() as switch:
        if rig.vendor.name == "opsgenie":
            sink: LifecycleSink = OpsgenieSink(
                OpsgenieConfig(
                    SecretStr(OpsgenieReceiver.API_KEY),
                    url=rig.receiver.url,
                    heartbeat="continuum-pipeline",
                    heartbeat_s=0.3,
                )
            )
            pings = lambda: [t for name, t in rig.receiver.heartbeats if name == "continuum-pipeline"]  # noqa: E731
        else:
            sink = rig.vendor.sink(rig.receiver.url)
            sink.config = type(sink.config)(
                **{**sink.config.__dict__, "heartbeat_url": SecretStr(switch.check_url), "heartbeat_s": 0.3}
            )
            pings = lambda: list(switch.pings)  # noqa: E731
        runner, stop, thread = rig.runner(sink)
        try:
            wait_for(lambda: len(pings()) >= 3)  # idle and healthy: it beats
            rig.receiver.down = True  # the vendor fails deliveries: the connector is not healthy
            rig.produce(printer_event("printer.offline", "hb-1", time.time_ns() // 1000))
            wait_for(lambda: runner.health.state == "retrying")
            time.sleep(0.5)
            silent_from = len(pings())
            time.sleep(1.5)
            assert len(pings()) == silent_from, "a connector that cannot deliver must not say it is alive"
            rig.receiver.down = False
            wait_for(lambda: runner.health.state == "healthy" and len(pings()) >= silent_from + 2)
            assert runner.metrics.heartbeats.labels(rig.name)._value.get() >= 4
            assert runner.health.last_heartbeat and abs(runner.health.last_heartbeat - time.time()) < 10
        finally:
            stop_runner(stop, thread)
        stopped_at = len(pings())
        time.sleep(1.0)
        assert len(pings()) == stopped_at, "a stopped connector goes silent"
        assert rig.opened("printer/hb-1/offline") == 1
