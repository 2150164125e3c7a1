"""Canary secrets never leave the process: not in exception text, a runner's health or
metrics, dead-letter headers, or the CLI's output — whatever fails. (The fault tests
check their own logs for the same canaries.)"""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import generate_latest
from pydantic import SecretStr
from typer.testing import CliRunner

from continuum_events.cli.main import app
from continuum_events.connectors.base import BatchResult, ConfigError, Limits, Retry
from continuum_events.connectors.http import HttpClient
from continuum_events.connectors.registry import make_sink
from continuum_events.connectors.runtime import Backoff, IntegrationRunner, Metrics, _Record
from continuum_events.connectors.victorops import VictorOpsConfig, VictorOpsSink
from continuum_events.deadletter import dead_letter_headers
from continuum_events.devtools.receivers import SplunkReceiver, VictorOpsReceiver
from continuum_events.events import Event, EventType, Severity
from continuum_events.integrations import IntegrationSpec
from continuum_events.netguard import TargetPolicy
from continuum_events.settings import KafkaSettings
from tests.faults import CANARY_PAGERDUTY, CANARY_SPLUNK, assert_no_canary
from tests.unit.fake_kafka import Message


def test_a_failing_request_never_names_a_key_carried_in_its_url() -> None:
    for url in (
        f"http://127.0.0.1:1/integrations/generic/20131114/alert/{CANARY_PAGERDUTY}/printers",
        f"http://{CANARY_PAGERDUTY}.invalid/alert",
    ):
        with pytest.raises(Retry) as failed:
            HttpClient(2.0).post(url, b"{}", {}, what="VictorOps alert")
        assert_no_canary(str(failed.value), repr(failed.value), where="exception text")


def test_a_refused_token_leaves_no_trace_in_health_metrics_or_dead_letters() -> None:
    with SplunkReceiver() as splunk:  # expects its own token: ours is refused (403)
        sink = make_sink(
            "splunk",
            {"url": splunk.url, "token": SecretStr(CANARY_SPLUNK)},
            policy=TargetPolicy(allow_private=True, allow_http=True),
        )
        with pytest.raises(ConfigError) as refused:
            sink.check()
    metrics = Metrics()
    metrics.healthy.labels("splunk-canary").set(0)
    headers = dead_letter_headers("connector:splunk-canary", refused.value, "printer-events.logging", 0, 1)
    assert_no_canary(
        str(refused.value),
        repr(sink.config),
        generate_latest(metrics.registry),
        *(v for _, v in headers),
        where="errors, config reprs, metrics or dead-letter headers",
    )
    assert "**********" in repr(sink.config), "the secret prints redacted"


def test_secrets_from_env_or_a_private_file_print_redacted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    secret = tmp_path / "token"
    secret.write_text(CANARY_SPLUNK + "\n")
    secret.chmod(0o600)
    monkeypatch.setenv("CANARY_TOKEN", CANARY_SPLUNK)
    for ref in ({"file": str(secret)}, {"env": "CANARY_TOKEN"}):
        spec = IntegrationSpec(
            name="canary", vendor="splunk", options={"url": "https://splunk.example.com"}, secrets={"token": ref}
        )
        sink = spec.build_sink()
        assert sink.config.token.get_secret_value() == CANARY_SPLUNK
        assert_no_canary(repr(sink.config), str(sink.config), spec.model_dump_json(), where="a printed config")
    secret.chmod(0o644)
    with pytest.raises(Exception, match="readable by others") as loose:
        IntegrationSpec(
            name="canary",
            vendor="splunk",
            options={"url": "https://splunk.example.com"},
            secrets={"token": {"file": str(secret)}},
        ).build_sink()
    assert_no_canary(str(loose.value), where="the refusal")


def test_the_cli_never_prints_a_secret_whatever_fails() -> None:
    runner = CliRunner()
    env = {**os.environ, "CANARY_TOKEN": CANARY_SPLUNK}
    with SplunkReceiver() as splunk:
        for args in (
            [
                "connector",
                "c",
                "--vendor",
                "splunk",
                "--set",
                f"url={splunk.url}",
                "--secret",
                "token=CANARY_TOKEN",
                "--check",
                "--allow-private-network",
                "--allow-insecure-http",
            ],  # refused token
            [
                "connector",
                "c",
                "--vendor",
                "splunk",
                "--set",
                "url=http://127.0.0.1:1",
                "--secret",
                "token=CANARY_TOKEN",
                "--check",
                "--allow-private-network",
                "--allow-insecure-http",
            ],  # unreachable
            [
                "connector",
                "c",
                "--vendor",
                "splunk",
                "--set",
                f"url={splunk.url}",
                "--secret",
                "token=CANARY_TOKEN",
                "--check",
            ],  # loopback refused by the address rules
            ["connector", "c", "--vendor", "splunk", "--set", f"token={CANARY_SPLUNK}", "--set", "url=https://x"],
        ):
            result = runner.invoke(app, args, env=env)
            assert result.exit_code != 0, result.output
            assert_no_canary(result.output, str(result.exception or ""), where=f"`{' '.join(args[:4])}` output")


# -- keys in URLs (VictorOps): redacted wherever a request path may be echoed ------------------------
class EchoingVictorOps(VictorOpsReceiver):
    """Fails the next requests (``echo``: their statuses) with a message quoting the request path,
    as some gateways and error pages do."""

    def __init__(self) -> None:
        super().__init__()
        self.echo: list[int] = []

    def handle(self, path: str, headers: Any, body: bytes) -> Any:
        if self.echo:
            return self.echo.pop(0), {"result": "failure", "message": f"no route for POST {path}"}, {}
        return super().handle(path, headers, body)


class _Ledger:
    def __init__(self) -> None:
        self.entries: dict[str, Any] = {}

    def values(self) -> dict[str, Any]:
        return self.entries

    def record(self, entries: dict[str, Any]) -> None:
        self.entries.update(entries)

    def stop(self) -> None:
        pass


VO_KEYS = (VictorOpsReceiver.API_KEY, VictorOpsReceiver.ROUTING_KEY)
OFFLINE = Event(
    "0b7f4a52-33a4-4f7e-9a0e-2a3f8e3a9c11",
    EventType.PRINTER_OFFLINE,
    Severity.WARNING,
    1_795_800_000_123_456,
    {"printer_id": "p-1", "printer_name": "HQ FIN 1"},
)


def victorops_sink(url: str) -> VictorOpsSink:
    sink = VictorOpsSink(VictorOpsConfig(SecretStr(VO_KEYS[0]), SecretStr(VO_KEYS[1]), url=url))
    sink.ledger = _Ledger()  # type: ignore[assignment]
    return sink


def assert_no_key(*texts: str) -> None:
    for text in texts:
        assert not any(key in text for key in VO_KEYS), f"a VictorOps key in: {text[:300]}"


def test_victorops_answers_echoing_the_request_path_leave_no_key_in_errors() -> None:
    with EchoingVictorOps() as victorops:
        sink = victorops_sink(victorops.url)
        victorops.echo = [500, 400, 404]
        retried, rejected = sink.write([OFFLINE]), sink.write([OFFLINE])
        with pytest.raises(ConfigError) as refused:
            sink.write([OFFLINE])
        sink.close()
    assert retried.retry and rejected.rejected
    assert "no route for POST /integrations/generic/20131114/alert/**********/**********" in rejected.rejected[0]
    assert_no_key(*retried.retry.values(), *rejected.rejected.values(), str(refused.value))


def test_debug_logging_never_prints_the_victorops_keys(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    with VictorOpsReceiver() as victorops:
        sink = victorops_sink(victorops.url)
        result = sink.write([OFFLINE])
        sink.close()
    assert not result.rejected and not result.retry and victorops.open_entities()
    assert "/integrations/generic/20131114/alert/**********/**********" in caplog.text, "urllib3 logs the path"
    assert_no_key(caplog.text)


def test_the_runtime_redacts_url_secrets_from_status_dead_letters_and_logs(caplog: pytest.LogCaptureFixture) -> None:
    """Whatever a sink's error text holds: the status (health), dead-letter headers and log lines
    go through the same redaction."""
    key = VO_KEYS[0]

    class Leaky:
        limits = Limits()

        def __init__(self) -> None:
            self.client = HttpClient(1.0)
            self.client.conceal(SecretStr(key))
            self.answers = [
                BatchResult(rejected={0: f"refused at /alert/{key}/x"}),
                BatchResult(retry={0: f"HTTP 503 at /alert/{key}/x"}),
            ]
            self.stop = threading.Event()

        def write(self, events: Any) -> BatchResult:
            if self.answers:
                return self.answers.pop(0)
            self.stop.set()  # the runner gives up waiting for a fix at once
            raise ConfigError(f"HTTP 404 at /alert/{key}/x")

    class Producer:
        def __init__(self) -> None:
            self.headers: list[Any] = []

        def produce(self, topic: str, value: bytes, key: bytes, headers: Any) -> None:
            self.headers.extend(headers)

        def poll(self, timeout: float) -> int:
            return 0

        def flush(self, timeout: float) -> int:
            return 0

    caplog.set_level(logging.INFO)
    sink = Leaky()
    runner = IntegrationRunner(
        "vo", "alerting", sink, KafkaSettings(bootstrap_servers="127.0.0.1:9"), backoff=Backoff(base_s=0.0, cap_s=0.0)
    )
    runner._dlq = Producer()  # type: ignore[assignment]
    records = [_Record(Message(i, value=b"{}"), OFFLINE) for i in range(2)]
    runner._deliver(records[:1], sink.stop)  # rejected: dead-lettered
    runner._deliver(records[1:], sink.stop)  # retried, then a configuration error
    dead_letters = [v.decode() for _, v in runner._dlq.headers]
    assert any("/alert/**********/x" in v for v in dead_letters)
    assert runner.health.state == "unhealthy" and runner.health.last_error == "HTTP 404 at /alert/**********/x"
    assert_no_key(*dead_letters, runner.health.last_error, caplog.text)
    sink.client.close()
