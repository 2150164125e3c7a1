"""Connectors under faults: SIGKILLed mid-stream, and a vendor down while another
keeps delivering. Every event_id is checked: none lost, duplicates counted."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest
from pydantic import SecretStr

from continuum_events.broker import EmbeddedBroker
from continuum_events.connectors.datadog import DatadogConfig, DatadogSink
from continuum_events.connectors.host import Integration, run_integrations
from continuum_events.connectors.splunk import SplunkConfig, SplunkHecSink
from continuum_events.events import EventType
from continuum_events.producers import EventProducer
from continuum_events.settings import KafkaSettings
from continuum_events.topology import category_topic
from continuum_events.receivers import DatadogReceiver, ElasticsearchReceiver, SplunkReceiver

pytestmark = [pytest.mark.broker, pytest.mark.slow]
REPORTS = Path(".state/reports")


def stream(settings: KafkaSettings, n: int, rate: float, ids: list[str], done: threading.Event) -> None:
    spool = Path(tempfile.mkdtemp(prefix="faults-")) / "spool.db"
    with EventProducer(settings, topic=category_topic("logging"), spool_path=spool) as producer:
        started = time.monotonic()
        for i in range(n):
            ids.append(producer.dispatch(EventType.PRINTER_ONLINE, {"printer_id": f"p-{i % 211}",
                                                                    "printer_name": f"Printer {i % 211}"}))
            if i % 200 == 0 and (ahead := i / rate - (time.monotonic() - started)) > 0:
                time.sleep(ahead)
        producer.flush(30)
    done.set()


class ConnectorProcess:
    def __init__(self, bootstrap: str, name: str, args: list[str], env: dict[str, str]) -> None:
        self.cmd = [sys.executable, "-m", "continuum_events", "--log-level", "warning", "connector", name,
                    "-b", bootstrap, "--allow-private-network", "--allow-insecure-http", *args]
        self.env = {**os.environ, **env}
        self.log = Path(tempfile.mkdtemp(prefix=f"{name}-")) / "connector.log"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with open(self.log, "ab") as out:
            self.process = subprocess.Popen(self.cmd, stdout=out, stderr=subprocess.STDOUT, env=self.env)

    def kill(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()

    def stop(self) -> int | None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            return self.process.wait(60)
        return self.process.returncode if self.process else None


def wait_until(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def test_sigkill_ten_times_while_50k_events_flow_loses_nothing() -> None:
    with EmbeddedBroker() as broker, SplunkReceiver() as splunk, ElasticsearchReceiver() as elastic:
        settings = KafkaSettings(bootstrap_servers=broker.bootstrap_servers)
        workers = [
            ConnectorProcess(broker.bootstrap_servers, "splunk-killed",
                             ["--vendor", "splunk", "--set", f"url={splunk.url}", "--set", "index=printers",
                              "--secret", "token=HEC_TOKEN"], {"HEC_TOKEN": SplunkReceiver.TOKEN}),
            ConnectorProcess(broker.bootstrap_servers, "elastic-killed",
                             ["--vendor", "elasticsearch", "--set", f"url={elastic.url}", "--secret", "api_key=ES_KEY"],
                             {"ES_KEY": ElasticsearchReceiver.API_KEY}),
        ]
        ids: list[str] = []
        done = threading.Event()
        feeder = threading.Thread(target=stream, args=(settings, 50_000, 4_000, ids, done))
        feeder.start()
        for w in workers:
            w.start()
        try:
            for _ in range(10):
                # Kill mid-stream: only once both made progress since their last start.
                marks = (len(splunk.received.event_ids), len(elastic.documents))
                wait_until(lambda: len(splunk.received.event_ids) >= min(marks[0] + 1_500, 50_000)
                           and len(elastic.documents) >= min(marks[1] + 1_500, 50_000), 90, "progress")
                for w in workers:
                    w.kill()
                for w in workers:
                    w.start()
            feeder.join()
            wait_until(lambda: set(ids) <= set(splunk.received.event_ids) and set(ids) <= set(elastic.documents)
                       or False, 240, "every event at both receivers")
        finally:
            for w in workers:
                w.stop()
                w.kill()
        lost_splunk = len(set(ids) - set(splunk.received.event_ids))
        es_ids = {d["event_id"] for d in elastic.documents.values()}
        lost_es = len(set(ids) - es_ids)
        splunk_dups = sum(splunk.received.event_ids.values()) - len(splunk.received.event_ids)
        assert lost_splunk == 0 and lost_es == 0
        assert len(elastic.documents) == len(ids), "Elasticsearch holds exactly one document per event"
    report = {"events": len(ids), "kills": 10, "lost": 0, "splunk_duplicates": splunk_dups,
              "elasticsearch_duplicate_documents": 0, "elasticsearch_conflicts_absorbed": elastic.conflicts}
    REPORTS.mkdir(parents=True, exist_ok=True)
    (REPORTS / "connector-sigkill.json").write_text(json.dumps(report, indent=2))
    print(f"\nconnectors SIGKILL x10 over {len(ids)} events: {report}")


def test_a_vendor_down_30s_loses_nothing_and_does_not_slow_the_others() -> None:
    with EmbeddedBroker() as broker, SplunkReceiver() as splunk, DatadogReceiver() as datadog:
        settings = KafkaSettings(bootstrap_servers=broker.bootstrap_servers)
        stop = threading.Event()
        integrations = [
            Integration("splunk-steady", "logging", SplunkHecSink(SplunkConfig(splunk.url, SecretStr(SplunkReceiver.TOKEN)))),
            Integration("datadog-down", "logging",
                        DatadogSink(DatadogConfig(SecretStr(DatadogReceiver.API_KEY), url=datadog.url))),
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
            wait_until(lambda: set(ids) <= set(datadog.received.event_ids) and set(ids) <= set(splunk.received.event_ids),
                       120, "every event at both vendors")
        finally:
            stop.set()
            host.join(60)
    print(f"\nwhile datadog was down 30 s: splunk delivered {delivered} of {produced} produced events; "
          f"afterwards 0 lost at both")
