"""Connector benchmark: the Splunk HEC connector delivering from Kafka to a receiver that
only counts, versus one HTTP request per event (how Continuum's integrations send
today), same run, same broker, same events, same receiver."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time

import requests
from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition
from pydantic import SecretStr
from rich.table import Table

from continuum_events.benchmarks import Result
from continuum_events.broker import free_port
from continuum_events.codec import EventCodec
from continuum_events.connectors.base import describe_event
from continuum_events.connectors.runtime import IntegrationRunner
from continuum_events.connectors.splunk import SplunkConfig, SplunkHecSink
from continuum_events.events import Event, EventType, Severity, event_key, new_event_id, now_micros
from continuum_events.settings import KafkaSettings
from continuum_events.terminal import console, out
from continuum_events.topology import category_topic

TOKEN = "bench-token"


def _fill(settings: KafkaSettings, n: int) -> None:
    codec, topic = EventCodec(), category_topic("logging")
    producer = Producer(settings.client_config(**{"linger.ms": 20, "partitioner": "murmur2_random"}))
    for i in range(n):
        payload = {
            "printer_id": f"prn-{i % 1000:04d}",
            "printer_name": f"HQ-FIN-{i % 1000:03d}",
            "printer_ip": "10.20.1.17",
            "printer_location": "HQ-1F",
            "printer_department": "Finance",
            "consecutive_failures": 3,
            "response_time_ms": 5000.0,
        }
        event = Event(new_event_id(), EventType.PRINTER_OFFLINE, Severity.WARNING, now_micros(), payload)
        while True:
            try:
                producer.produce(topic, codec.encode(event, topic), event_key("printer", payload).encode())
                break
            except BufferError:
                producer.poll(0.01)
    producer.flush(60)


def _count(url: str) -> int:
    return int(requests.get(url, timeout=5).text)


def _batched(settings: KafkaSettings, url: str, n: int) -> float:
    base = _count(url)
    runner = IntegrationRunner("bench-splunk", "logging", SplunkHecSink(SplunkConfig(url, SecretStr(TOKEN))), settings)
    stop = threading.Event()
    thread = threading.Thread(target=runner.run, args=(stop,))
    started = time.perf_counter()
    thread.start()
    first = None
    while _count(url) - base < n:
        if first is None and _count(url) > base:
            first = time.perf_counter()
        time.sleep(0.02)
    elapsed = time.perf_counter() - (first or started)
    stop.set()
    thread.join()
    return n / elapsed


def _per_event(settings: KafkaSettings, url: str, n: int) -> float:
    """Continuum today: one POST per event, from the same topic, decoded the same way."""
    codec, session, topic = EventCodec(), requests.Session(), category_topic("logging")
    consumer = Consumer(settings.client_config(**{"group.id": "bench-per-event", "enable.auto.commit": False}))
    parts = consumer.list_topics(topic, timeout=10).topics[topic].partitions
    consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in parts])
    sent, started = 0, None
    headers = {"Authorization": f"Splunk {TOKEN}", "Content-Type": "application/json"}
    while sent < n:
        for msg in consumer.consume(500, 1.0):
            if msg.error() or sent >= n:
                continue
            started = started or time.perf_counter()
            event = codec.decode(msg.value())
            body = {"time": event.timestamp_us / 1e6, "sourcetype": "continuum:event", "event": describe_event(event)}
            session.post(f"{url}/services/collector/event", data=json.dumps(body), headers=headers, timeout=10)
            sent += 1
    consumer.close()
    return n / (time.perf_counter() - (started or time.perf_counter()))


def measure(settings: KafkaSettings, events: int, per_event: int) -> Result:
    port = free_port()
    receiver = subprocess.Popen([sys.executable, "-m", "continuum_events.benchmarks.counting_receiver", str(port)])
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                _count(url)
                break
            except requests.ConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        _fill(settings, events)
        console.print(f"{events:,} events in {category_topic('logging')}")
        baseline = _per_event(settings, url, per_event)
        console.print(f"one request per event: {baseline:,.0f} events/s")
        batched = _batched(settings, url, events)
        console.print(f"Splunk HEC connector: {batched:,.0f} events/s")
    finally:
        receiver.terminate()
        receiver.wait(10)
    table = Table("path", "events/s", title="Splunk HEC delivery from Kafka to a counting receiver")
    table.add_row(f"one HTTP request per event ({per_event:,} events)", f"{baseline:,.0f}")
    table.add_row(f"Splunk HEC connector, batched ({events:,} events)", f"{batched:,.0f}")
    out.print(table)
    ratio = batched / baseline
    met = batched >= 50_000 and ratio >= 20
    out.print(
        f"ratio connector / per-event = {ratio:.1f}x ({'meets' if met else 'MISSES'} the target: >= 50,000/s and >= 20x)"
    )
    return Result("Splunk HEC connector", batched, "one request per event", baseline, met)
