"""Connectors under faults: SIGKILLed mid-stream, and a vendor down while another
keeps delivering. Every event_id is checked: none lost, duplicates counted."""

from __future__ import annotations

import json
import os
import random
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import pytest
from pydantic import SecretStr

from continuum_events.broker import default_engine, local_broker
from continuum_events.connectors.datadog import DatadogConfig, DatadogSink
from continuum_events.connectors.host import Integration, run_integrations
from continuum_events.connectors.splunk import LIMITS as SPLUNK_LIMITS
from continuum_events.connectors.splunk import SplunkConfig, SplunkHecSink
from continuum_events.devtools.receivers import DatadogReceiver, ElasticsearchReceiver, SplunkReceiver
from continuum_events.events import EventType
from continuum_events.producers import EventProducer
from continuum_events.settings import KafkaSettings
from continuum_events.topology import category_topic
from tests.faults import CANARY_SPLUNK, CanarySplunk, Completeness, ConnectorProcess, assert_no_canary, wait_until

pytestmark = [pytest.mark.broker, pytest.mark.slow]
REPORTS = Path(".state/reports")


def stream(settings: KafkaSettings, n: int, rate: float, ids: list[str], done: threading.Event) -> None:
    spool = Path(tempfile.mkdtemp(prefix="faults-")) / "spool.db"
    with EventProducer(settings, topic=category_topic("logging"), spool_path=spool) as producer:
        started = time.monotonic()
        for i in range(n):
            ids.append(
                producer.dispatch(
                    EventType.PRINTER_ONLINE, {"printer_id": f"p-{i % 211}", "printer_name": f"Printer {i % 211}"}
                )
            )
            if i % 200 == 0 and (ahead := i / rate - (time.monotonic() - started)) > 0:
                time.sleep(ahead)
        producer.flush(30)
    done.set()


#: The issue's figures (`make faults`): 100,000 events, 20 kills. The suite runs a fifth.
FULL = os.environ.get("CONTINUUM_FAULT_SCALE") == "full"
EVENTS, KILLS = (100_000, 20) if FULL else (12_000, 3)
#: A restarted connector delivers again within this. With dynamic membership a killed member
#: holds its partitions until its session times out (6 s); Tansu hands them over ~1.5 sessions
#: after the kill (~12 s measured on a loaded machine). With static membership
#: (CONTINUUM_KAFKA_GROUP_INSTANCE_ID) the restart takes them back as the same member: at once
#: on Apache Kafka (issue 16 asks <= 2 s: `make faults` holds it to that; the suite shares
#: the cores with two other workers, where 2.4 s was seen), after Tansu's fixed 6 s static join.
RESTART_BUDGET_S = {
    "kafka": {"dynamic": 10.0, "static": 2.0 if FULL else 4.0},
    "tansu": {"dynamic": 16.0, "static": 10.0},
}[default_engine()]


@pytest.mark.parametrize("membership", ["dynamic", "static"])
def test_random_sigkills_while_events_flow_lose_nothing(membership: str) -> None:
    rng = random.Random(20)
    # Static membership (a stable instance name): a restart takes the partitions back as
    # that member instead of waiting out the dead one's session.
    static = {"CONTINUUM_KAFKA_GROUP_INSTANCE_ID": "faults-host"} if membership == "static" else {}
    kills = KILLS if membership == "dynamic" or FULL else 2
    with local_broker() as broker, CanarySplunk() as splunk, ElasticsearchReceiver() as elastic:
        settings = KafkaSettings(bootstrap_servers=broker.bootstrap_servers)
        workers = [
            ConnectorProcess(
                broker.bootstrap_servers,
                "splunk-killed",
                [
                    "--vendor",
                    "splunk",
                    "--set",
                    f"url={splunk.url}",
                    "--set",
                    "index=printers",
                    "--secret",
                    "token=HEC_TOKEN",
                ],
                {"HEC_TOKEN": CANARY_SPLUNK, **static},
            ),
            ConnectorProcess(
                broker.bootstrap_servers,
                "elastic-killed",
                ["--vendor", "elasticsearch", "--set", f"url={elastic.url}", "--secret", "api_key=ES_KEY"],
                {"ES_KEY": ElasticsearchReceiver.API_KEY, **static},
            ),
        ]
        ids: list[str] = []
        done = threading.Event()
        # Paced to outlast the kills (a cycle takes up to ~16 s), so every restart has work.
        events = EVENTS if membership == "dynamic" or FULL else EVENTS // 2
        feeder = threading.Thread(target=stream, args=(settings, events, events / (kills * 20), ids, done))
        feeder.start()
        for w in workers:
            w.start()
        first_delivery: list[float] = []

        def arrived() -> tuple[int, int]:
            return sum(splunk.received.event_ids.values()), len(elastic.documents) + elastic.conflicts

        try:
            wait_until(lambda: all(arrived()), 60, "first deliveries")
            for _ in range(kills):
                time.sleep(rng.uniform(0.5, 3.0))  # a random moment of the stream
                if done.is_set():
                    break
                for w in workers:
                    w.kill()
                marks = arrived()
                for w in workers:
                    w.start()
                first_delivery.append(
                    wait_until(
                        lambda: all(a > m for a, m in zip(arrived(), marks, strict=False)),
                        60,
                        "a delivery after the restart",
                    )
                )
                if done.is_set():
                    break
            feeder.join()
            wait_until(
                lambda: set(ids) <= set(splunk.received.event_ids) and set(ids) <= set(elastic.documents),
                240,
                "every event at both receivers",
            )
        finally:
            for w in workers:
                w.stop()
                w.kill()
        verdict = Completeness.judge(ids, splunk.received.event_ids)
        es = Completeness.judge(ids, Counter(d["event_id"] for d in elastic.documents.values()))
        report = {
            "membership": membership,
            "events": len(ids),
            "kills": len(first_delivery),
            "splunk": str(verdict),
            "elasticsearch": str(es),
            "elasticsearch_conflicts_absorbed": elastic.conflicts,
            "first_delivery_after_restart_s": {
                "max": round(max(first_delivery), 2),
                "median": round(sorted(first_delivery)[len(first_delivery) // 2], 2),
            },
        }
        REPORTS.mkdir(parents=True, exist_ok=True)
        (REPORTS / f"connector-sigkill-{membership}.json").write_text(json.dumps(report, indent=2))
        print(f"\nconnectors SIGKILL x{len(first_delivery)} over {len(ids)} events: {report}")
        verdict.check(max_duplicates=len(first_delivery) * SPLUNK_LIMITS.max_records)
        es.check(max_duplicates=0)
        assert len(elastic.documents) == len(ids), "Elasticsearch holds exactly one document per event"
        for w in workers:
            assert_no_canary(w.output(), where="a connector's log")
        assert max(first_delivery) <= RESTART_BUDGET_S[membership], (
            f"first delivery {max(first_delivery):.1f} s after a restart (median {sorted(first_delivery)[len(first_delivery) // 2]:.1f} s)"
        )


@pytest.mark.skipif(not FULL, reason="make faults only: the fault-proxy tests check the same in the suite")
def test_a_vendor_down_30s_loses_nothing_and_does_not_slow_the_others() -> None:
    with local_broker() as broker, SplunkReceiver() as splunk, DatadogReceiver() as datadog:
        settings = KafkaSettings(bootstrap_servers=broker.bootstrap_servers)
        stop = threading.Event()
        integrations = [
            Integration(
                "splunk-steady", "logging", SplunkHecSink(SplunkConfig(splunk.url, SecretStr(SplunkReceiver.TOKEN)))
            ),
            Integration(
                "datadog-down",
                "logging",
                DatadogSink(DatadogConfig(SecretStr(DatadogReceiver.API_KEY), url=datadog.url)),
            ),
        ]
        host = threading.Thread(target=run_integrations, args=(settings, integrations, stop))
        host.start()
        ids: list[str] = []
        done = threading.Event()
        feeder = threading.Thread(target=stream, args=(settings, 40_000, 1_000, ids, done))
        feeder.start()
        try:
            time.sleep(5)
            datadog.down = True
            window_start = (len(ids), len(splunk.received.event_ids))
            time.sleep(30)
            window_end = (len(ids), len(splunk.received.event_ids))
            datadog.down = False
            produced = window_end[0] - window_start[0]
            delivered = window_end[1] - window_start[1]
            assert delivered >= 0.9 * produced, f"splunk delivered {delivered} of {produced} while datadog was down"
            feeder.join()
            wait_until(
                lambda: set(ids) <= set(datadog.received.event_ids) and set(ids) <= set(splunk.received.event_ids),
                120,
                "every event at both vendors",
            )
        finally:
            stop.set()
            host.join(60)
    print(
        f"\nwhile datadog was down 30 s: splunk delivered {delivered} of {produced} produced events; "
        f"afterwards 0 lost at both"
    )


def test_a_failing_runner_restarts_from_its_commits_and_says_why(settings: KafkaSettings, caplog) -> None:
    """A bug in the runtime's own handling (here: a sink answering with a malformed
    result) must not kill the runner's thread quietly: it is reported and restarted."""
    from continuum_events.connectors.base import BatchResult, Limits
    from continuum_events.connectors.runtime import IntegrationRunner

    class OnceMalformed:
        limits = Limits(max_records=50, linger_s=0.05)

        def __init__(self) -> None:
            self.calls, self.seen = 0, Counter()

        def write(self, events):
            self.calls += 1
            if self.calls == 1:
                return BatchResult(unsent=3.0)  # not a sequence: the runtime itself fails on it
            self.seen.update(e.event_id for e in events)
            return BatchResult()

        def check(self) -> str:
            return "ok"

        def close(self) -> None:
            pass

    name = f"restarts-{random.randrange(1 << 30):x}"
    sink = OnceMalformed()
    ids: list[str] = []
    stream(settings, 200, 10_000, ids, threading.Event())
    runner = IntegrationRunner(name, "logging", sink, settings, config_retry_s=0.2)
    stop = threading.Event()
    thread = threading.Thread(target=runner.run, args=(stop,))
    thread.start()
    try:
        wait_until(lambda: set(ids) <= set(sink.seen), 60, "delivery after the restart")
        assert thread.is_alive()
    finally:
        stop.set()
        thread.join(30)
    assert runner.health.errors >= 1 and runner.health.last_error is None, "counted, then superseded by deliveries"
    assert "the connector failed; restarting from the committed offsets" in caplog.text
    assert "TypeError" in caplog.text
