"""Canary secrets never leave the process: not in exception text, a runner's health or
metrics, dead-letter headers, or the CLI's output — whatever fails. (The fault tests
check their own logs for the same canaries.)"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from continuum_events.connectors.base import ConfigError, Retry
from continuum_events.connectors.http import HttpClient
from continuum_events.connectors.registry import make_sink
from continuum_events.connectors.runtime import Metrics
from prometheus_client import generate_latest
from pydantic import SecretStr
from typer.testing import CliRunner

from continuum_events.cli.main import app
from continuum_events.deadletter import dead_letter_headers
from continuum_events.integrations import IntegrationSpec
from continuum_events.netguard import TargetPolicy
from continuum_events.receivers import SplunkReceiver
from tests.faults import CANARY_PAGERDUTY, CANARY_SPLUNK, assert_no_canary


def test_a_failing_request_never_names_a_key_carried_in_its_url() -> None:
    for url in (f"http://127.0.0.1:1/integrations/generic/20131114/alert/{CANARY_PAGERDUTY}/printers",
                f"http://{CANARY_PAGERDUTY}.invalid/alert"):
        with pytest.raises(Retry) as failed:
            HttpClient(2.0).post(url, b"{}", {}, what="VictorOps alert")
        assert_no_canary(str(failed.value), repr(failed.value), where="exception text")


def test_a_refused_token_leaves_no_trace_in_health_metrics_or_dead_letters() -> None:
    with SplunkReceiver() as splunk:  # expects its own token: ours is refused (403)
        sink = make_sink("splunk", {"url": splunk.url, "token": SecretStr(CANARY_SPLUNK)},
                         policy=TargetPolicy(allow_private=True, allow_http=True))
        with pytest.raises(ConfigError) as refused:
            sink.check()
    metrics = Metrics()
    metrics.healthy.labels("splunk-canary").set(0)
    headers = dead_letter_headers("connector:splunk-canary", refused.value, "printer-events.logging", 0, 1)
    assert_no_canary(str(refused.value), repr(sink.config), generate_latest(metrics.registry),
                     *(v for _, v in headers), where="errors, config reprs, metrics or dead-letter headers")
    assert "**********" in repr(sink.config), "the secret prints redacted"


def test_secrets_from_env_or_a_private_file_print_redacted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    secret = tmp_path / "token"
    secret.write_text(CANARY_SPLUNK + "\n")
    secret.chmod(0o600)
    monkeypatch.setenv("CANARY_TOKEN", CANARY_SPLUNK)
    for ref in ({"file": str(secret)}, {"env": "CANARY_TOKEN"}):
        spec = IntegrationSpec(name="canary", vendor="splunk", options={"url": "https://splunk.example.com"},
                               secrets={"token": ref})
        sink = spec.build_sink()
        assert sink.config.token.get_secret_value() == CANARY_SPLUNK
        assert_no_canary(repr(sink.config), str(sink.config), spec.model_dump_json(), where="a printed config")
    secret.chmod(0o644)
    with pytest.raises(Exception, match="readable by others") as loose:
        IntegrationSpec(name="canary", vendor="splunk", options={"url": "https://splunk.example.com"},
                        secrets={"token": {"file": str(secret)}}).build_sink()
    assert_no_canary(str(loose.value), where="the refusal")


def test_the_cli_never_prints_a_secret_whatever_fails() -> None:
    runner = CliRunner()
    env = {**os.environ, "CANARY_TOKEN": CANARY_SPLUNK}
    with SplunkReceiver() as splunk:
        for args in (
            ["connector", "c", "--vendor", "splunk", "--set", f"url={splunk.url}", "--secret", "token=CANARY_TOKEN",
             "--check", "--allow-private-network", "--allow-insecure-http"],  # refused token
            ["connector", "c", "--vendor", "splunk", "--set", "url=http://127.0.0.1:1", "--secret",
             "token=CANARY_TOKEN", "--check", "--allow-private-network", "--allow-insecure-http"],  # unreachable
            ["connector", "c", "--vendor", "splunk", "--set", f"url={splunk.url}", "--secret", "token=CANARY_TOKEN",
             "--check"],  # loopback refused by the address rules
            ["connector", "c", "--vendor", "splunk", "--set", f"token={CANARY_SPLUNK}", "--set", "url=https://x"],
        ):
            result = runner.invoke(app, args, env=env)
            assert result.exit_code != 0, result.output
            assert_no_canary(result.output, str(result.exception or ""), where=f"`{' '.join(args[:4])}` output")
