"""Poison after retries: one record a vendor can never take must not stall an integration
for ever, and a vendor that is down must never have its events dead-lettered."""

from __future__ import annotations

import threading
from typing import Any

from continuum_events.connectors.base import BatchResult, Retry
from continuum_events.connectors.runtime import Backoff, IntegrationRunner, _Record
from continuum_events.events import Event, EventType, Severity
from continuum_events.settings import KafkaSettings
from tests.unit.fake_kafka import Message


class DeadLetters:
    def __init__(self) -> None:
        self.values: list[int] = []
        self.reasons: list[str] = []

    def produce(self, topic: str, value: bytes, key: bytes, headers: Any) -> None:
        self.values.append(int(value))
        self.reasons.append(dict(headers)["dlq.reason"].decode())

    def poll(self, timeout: float) -> int:
        return 0

    def flush(self, timeout: float) -> int:
        return 0


def event(n: int) -> Event:
    return Event(
        f"00000000-0000-4000-8000-{n:012d}",
        EventType.PRINTER_JAM,
        Severity.WARNING,
        1_700_000_000_000_000,
        {"printer_id": f"p-{n}"},
    )


class Vendor:
    """Answers 500 for a whole request holding the poison event (as Grafana's SQL store or a
    Splunk indexer does for a value it cannot take); down for the first ``down_for`` requests."""

    def __init__(self, poison: int | None = None, down_for: int = 0) -> None:
        self.poison, self.down_for = poison, down_for
        self.requests = 0
        self.delivered: list[int] = []

    def write(self, events: list[Event]) -> BatchResult:
        self.requests += 1
        numbers = [int(e.payload["printer_id"][2:]) for e in events]
        if self.requests <= self.down_for or self.poison in numbers:
            raise Retry("HTTP 500 Internal Server Error")
        self.delivered += numbers
        return BatchResult()


def runner_for(vendor: Vendor) -> IntegrationRunner:
    runner = IntegrationRunner(
        "grafana-x",
        "monitoring",
        vendor,
        KafkaSettings(bootstrap_servers="127.0.0.1:9"),
        backoff=Backoff(base_s=0.0, cap_s=0.0),
        poison_after=3,
    )  # type: ignore[arg-type]
    runner._dlq = DeadLetters()  # type: ignore[assignment]
    return runner


def deliver(runner: IntegrationRunner, count: int) -> None:
    done = threading.Thread(
        target=runner._deliver,
        args=([_Record(Message(i, "printer-events.monitoring"), event(i)) for i in range(count)], threading.Event()),
        daemon=True,
    )
    done.start()
    done.join(20)
    assert not done.is_alive(), "the batch is retried without end"


def test_one_event_the_vendor_can_never_take_is_dead_lettered_and_the_rest_delivered() -> None:
    vendor = Vendor(poison=5)
    runner = runner_for(vendor)
    deliver(runner, 16)
    assert sorted(vendor.delivered) == [i for i in range(16) if i != 5]
    assert runner._dlq.values == [5]  # type: ignore[attr-defined]
    assert "failed 3 times while other events were delivered" in runner._dlq.reasons[0]  # type: ignore[attr-defined]
    assert "HTTP 500" in runner._dlq.reasons[0]  # type: ignore[attr-defined]


def test_a_vendor_that_is_down_gets_everything_once_it_is_back_and_nothing_is_dead_lettered() -> None:
    vendor = Vendor(down_for=40)
    runner = runner_for(vendor)
    deliver(runner, 16)
    assert sorted(vendor.delivered) == list(range(16))
    assert runner._dlq.values == []  # type: ignore[attr-defined]


class Bulky:
    """A vendor whose body is far larger than the stored events (JSON of each, with
    context): it refuses a body over its limit, as Splunk (~1 MB) and Datadog (5 MB) do."""

    limits = type("L", (), {"max_bytes": 10_000})()

    def __init__(self) -> None:
        self.bodies: list[int] = []

    def encode(self, events: list[Event]) -> bytes:
        return b"x" * (900 * len(events))

    def write(self, events: list[Event]) -> BatchResult:
        body = self.encode(events)
        self.bodies.append(len(body))
        if len(body) > self.limits.max_bytes:
            raise Retry("HTTP 413 body too large")  # not even a Split: the runtime must not send it
        return BatchResult()


def test_each_body_sent_is_within_the_vendors_limit_whatever_the_stored_size() -> None:
    vendor = Bulky()
    runner = IntegrationRunner(
        "splunk-x",
        "logging",
        vendor,
        KafkaSettings(bootstrap_servers="127.0.0.1:9"),
        backoff=Backoff(base_s=0.0, cap_s=0.0),
    )  # type: ignore[arg-type]
    runner._dlq = DeadLetters()  # type: ignore[assignment]
    deliver(runner, 100)  # 90,000 bytes of body for 100 events: nine times the limit
    assert vendor.bodies and max(vendor.bodies) <= 10_000
    assert sum(vendor.bodies) == 90_000 and runner._dlq.values == []  # type: ignore[attr-defined]
