"""A connector killed (SIGKILL, via CONTINUUM_CRASH_AT) at each labelled crash point,
then restarted: 0 lost, 0 unexpected, at most one batch repeated, and for alerting no
second incident. Judged by the completeness checker; canary credentials throughout."""

from __future__ import annotations

import signal
import tempfile
from collections import Counter
from pathlib import Path

import pytest

from continuum_events.broker import local_broker
from continuum_events.codec import EventCodec
from continuum_events.connectors.splunk import LIMITS as SPLUNK_LIMITS
from continuum_events.events import EventType
from continuum_events.faults import POINTS
from continuum_events.producers import EventProducer
from continuum_events.settings import KafkaSettings
from continuum_events.topology import category_topic, integration_dlq_topic
from tests.faults import (
    CANARY_PAGERDUTY,
    CANARY_SPLUNK,
    CanaryPagerDuty,
    CanarySplunk,
    Completeness,
    ConnectorProcess,
    assert_no_canary,
    wait_until,
)
from tests.kafka_helpers import read_topic

pytestmark = [pytest.mark.broker, pytest.mark.slow]
EVENTS = 4_000


def produce(settings: KafkaSettings, category: str, n: int, kind: EventType, printers: int) -> list[str]:
    spool = Path(tempfile.mkdtemp(prefix="crash-")) / "spool.db"
    with EventProducer(settings, topic=category_topic(category), spool_path=spool) as producer:
        ids = [
            producer.dispatch(kind, {"printer_id": f"p-{i % printers}", "printer_name": f"Printer {i % printers}"})
            for i in range(n)
        ]
        assert producer.flush(30) == 0
    return ids


def crash_then_recover(connector: ConnectorProcess, point: str, nth: int, done) -> float:
    """Start armed, expect the SIGKILL at the point, restart clean; returns the seconds
    from the restart to the first progress."""
    connector.start(CONTINUUM_CRASH_AT=f"{point}:{nth}")
    code = connector.wait_exit(90)
    assert code == -signal.SIGKILL, f"expected the crash at {point}, exit code {code}:\n{connector.output()[-2000:]}"
    assert f"crash point {point} reached" in " ".join(connector.output().split())
    connector.start()
    return wait_until(done, 90, "every event after the restart")


@pytest.mark.parametrize("point", [p for p in POINTS if p != "connector.dead-letter"])
def test_splunk_killed_at_each_crash_point_loses_nothing(point: str) -> None:
    with local_broker() as broker, CanarySplunk() as splunk:
        settings = KafkaSettings(bootstrap_servers=broker.bootstrap_servers)
        ids = produce(settings, "logging", EVENTS, EventType.PRINTER_ONLINE, 97)
        connector = ConnectorProcess(
            broker.bootstrap_servers,
            "splunk-crash",
            ["--vendor", "splunk", "--set", f"url={splunk.url}", "--secret", "token=TOKEN"],
            {"TOKEN": CANARY_SPLUNK},
        )
        try:
            crash_then_recover(connector, point, 2, lambda: set(ids) <= set(splunk.received.event_ids))
        finally:
            connector.stop()
        verdict = Completeness.judge(ids, splunk.received.event_ids)
        print(f"\n{point}: {verdict}")
        verdict.check(max_duplicates=SPLUNK_LIMITS.max_records)
        assert_no_canary(connector.output(), where="the connector's log")


def test_killed_in_the_middle_of_a_dead_letter_write_keeps_every_dead_letter() -> None:
    with local_broker() as broker, CanarySplunk() as splunk:
        settings = KafkaSettings(bootstrap_servers=broker.bootstrap_servers)
        ids = produce(settings, "logging", 600, EventType.PRINTER_ONLINE, 31)
        refused = set(ids[::50])  # 12 records the vendor refuses as bad: dead letters
        splunk.refuse_ids = refused
        delivered = [i for i in ids if i not in refused]
        connector = ConnectorProcess(
            broker.bootstrap_servers,
            "splunk-dlq-crash",
            ["--vendor", "splunk", "--set", f"url={splunk.url}", "--secret", "token=TOKEN"],
            {"TOKEN": CANARY_SPLUNK},
        )
        dlq = integration_dlq_topic("splunk-dlq-crash")

        def dead_letters() -> list:
            return read_topic(broker.bootstrap_servers, dlq, timeout=5, idle=0.5, codec=EventCodec())

        try:
            crash_then_recover(
                connector,
                "connector.dead-letter",
                3,
                lambda: (
                    set(delivered) <= set(splunk.received.event_ids)
                    and refused <= {r.event.event_id for r in dead_letters()}
                ),
            )
        finally:
            connector.stop()
        verdict = Completeness.judge(delivered, splunk.received.event_ids)
        verdict.check(max_duplicates=SPLUNK_LIMITS.max_records)
        letters = dead_letters()
        dead = Completeness.judge(refused, Counter(r.event.event_id for r in letters))
        print(f"\ndelivered: {verdict}; dead letters: {dead}")
        dead.check(max_duplicates=len(refused))
        for letter in letters:
            assert letter.headers["dlq.stage"] == b"connector:splunk-dlq-crash" and letter.headers["dlq.reason"]
            assert_no_canary(*(v for v in letter.headers.values()), where="dead-letter headers")
        assert_no_canary(connector.output(), where="the connector's log")


@pytest.mark.parametrize(
    "point,nth", [("connector.request-answered", 7), ("connector.delivered", 1), ("connector.committed", 1)]
)
def test_pagerduty_killed_at_a_crash_point_opens_no_second_incident(point: str, nth: int) -> None:
    with local_broker() as broker, CanaryPagerDuty() as pagerduty:
        settings = KafkaSettings(bootstrap_servers=broker.bootstrap_servers)
        ids = produce(settings, "alerting", 50, EventType.PRINTER_OFFLINE, 50)  # 50 printers, one outage each
        connector = ConnectorProcess(
            broker.bootstrap_servers,
            "pagerduty-crash",
            ["--vendor", "pagerduty", "--set", f"url={pagerduty.url}", "--secret", "routing_key=KEY"],
            {"KEY": CANARY_PAGERDUTY},
        )
        try:
            crash_then_recover(connector, point, nth, lambda: len(pagerduty.open_keys()) == 50)
        finally:
            connector.stop()
        assert pagerduty.opened_count() == 50, f"{pagerduty.opened_count()} incidents opened for 50 outages"
        verdict = Completeness.judge(ids, pagerduty.received.event_ids)
        print(f"\n{point}: {verdict}, incidents opened {pagerduty.opened_count()}")
        verdict.check(max_duplicates=20)  # the alerting batch
        assert_no_canary(connector.output(), where="the connector's log")
