"""librdkafka's lines go through logging, each kind at most once per interval."""

from __future__ import annotations

import logging
import time

import pytest
from confluent_kafka import Consumer

from continuum_events import kafkalog
from continuum_events.kafkalog import RateLimit
from continuum_events.settings import KafkaSettings


def _fail(text: str) -> logging.LogRecord:
    return logging.LogRecord(
        "librdkafka", logging.ERROR, __file__, 1, "%s [%s] %s", ("FAIL", "rdkafka#consumer-1", text), None
    )


def test_a_repeated_line_passes_once_per_interval_then_says_how_many_were_held_back() -> None:
    now = [0.0]
    limit = RateLimit(interval_s=30, clock=lambda: now[0])
    refused = "[thrd:b/bootstrap]: 127.0.0.1:{}/bootstrap: Connect failed: Connection refused (after {}ms)"
    passed = []
    for i in range(500):
        now[0] = i * 0.05
        record = _fail(refused.format(9092 + i % 3, i))
        if limit.filter(record):
            passed.append(record.getMessage())
    assert len(passed) == 1
    now[0] = 31
    last = _fail(refused.format(9092, 1))
    assert limit.filter(last) and last.getMessage().endswith("(499 similar lines held back)")
    assert limit.filter(_fail("[thrd:b]: a different line"))


def test_clients_built_from_the_settings_log_through_python_not_to_stderr(
    capfd: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR, logger="librdkafka")
    for limit in kafkalog.LOGGER.filters:  # another test's refused connection may have passed just now
        if isinstance(limit, RateLimit):
            limit._seen.clear()
    consumer = Consumer(KafkaSettings(bootstrap_servers="127.0.0.1:9").client_config(**{"group.id": "g"}))
    consumer.subscribe(["t"])
    deadline = time.monotonic() + 2.5
    while time.monotonic() < deadline:
        consumer.poll(0.1)
    consumer.close()
    assert "|FAIL|" not in capfd.readouterr().err  # librdkafka's own stderr format: %3|ts|FAIL|client| ...
    fails = [r for r in caplog.records if r.name == "librdkafka" and r.args and r.args[0] == "FAIL"]
    assert len(fails) == 1, [r.getMessage() for r in fails]
