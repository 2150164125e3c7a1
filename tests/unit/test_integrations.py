"""The integrations file: validated with errors naming line and field; secrets by reference only."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import SecretStr

from continuum_events.connectors.splunk import SplunkHecSink
from continuum_events.integrations import IntegrationError, IntegrationSpec, SecretRef, load_integrations

EXAMPLE = Path(__file__).parents[2] / "integrations.example.yaml"


def test_the_example_file_is_valid_and_names_only_references() -> None:
    specs = {s.name: s for s in load_integrations(EXAMPLE)}
    assert {s.vendor for s in specs.values()} >= {"splunk", "pagerduty", "nsca"}
    splunk = specs["splunk-prod"]
    assert splunk.topic_category == "logging" and splunk.start_from == "earliest"
    assert [r.name for r in splunk.rules()] == ["splunk-prod.filter.0", "splunk-prod.filter.1"]
    assert all(r.integration == "splunk-prod" and r.category == "logging" for r in splunk.rules())
    assert splunk.model_dump(mode="json")["secrets"] == {"token": {"env": "SPLUNK_HEC_TOKEN", "file": None}}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "integrations:\n  - name: a\n    vendor: splunk\n    options:\n      url: http://x\n      tokn: x\n"
            "    secrets: {token: {env: T}}\n",
            "line 6, a.options.tokn: splunk has no option 'tokn'",
        ),
        ("integrations:\n  - name: a\n    vendor: fax\n", "line 3, a.vendor: unknown vendor 'fax'"),
        (
            "integrations:\n  - name: Not OK\n    vendor: pagerduty\n    secrets: {routing_key: {env: K}}\n",
            "line 2, Not OK.name: 'Not OK' cannot name an integration",
        ),
        (
            "integrations:\n  - name: a\n    vendor: datadog\n    options: {api_key: inline-value}\n",
            "line 4, a.options.api_key: a secret; give it under secrets",
        ),
        (
            "integrations:\n  - name: a\n    vendor: pagerduty\n    secrets:\n      routing_key: {env: K, file: /k}\n",
            "line 5, a.secrets.routing_key: give exactly one of env",
        ),
        ("integrations:\n  - name: a\n    vendor: pagerduty\n", "line 2, a.entry: pagerduty needs routing_key"),
        (
            "integrations:\n  - name: a\n    vendor: syslog\n    options: {host: h}\n    filters:\n"
            "      - {event_types: [printer.explode]}\n",
            "line 6, a.filters.0: event type pattern 'printer.explode' matches",
        ),
        (
            "integrations:\n  - name: a\n    vendor: syslog\n    options: {host: h}\n    start_from: yesterday\n",
            "line 5, a.start_from: Input should be 'latest' or 'earliest'",
        ),
        (
            "integrations:\n  - name: a\n    vendor: syslog\n    options: {host: h}\n  - name: a\n    vendor: syslog\n"
            "    options: {host: h}\n",
            "line 5, a: name already used at line 2",
        ),
        ("integrations: [\n", "line 2: not valid YAML"),
        ("integrations: 5\n", "expected `integrations:` with a list"),
    ],
)
def test_problems_name_the_line_and_field(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "i.yaml"
    path.write_text(text)
    with pytest.raises(IntegrationError) as caught:
        load_integrations(path)
    assert message in str(caught.value)
    assert str(path) in str(caught.value)


def test_every_problem_of_a_file_is_reported_at_once(tmp_path: Path) -> None:
    path = tmp_path / "i.yaml"
    path.write_text("integrations:\n  - name: a\n    vendor: fax\n  - name: b\n    vendor: splunk\n")
    with pytest.raises(IntegrationError) as caught:
        load_integrations(path)
    assert "line 3, a.vendor" in str(caught.value) and "b.entry: splunk needs url, token" in str(caught.value)


def test_a_missing_or_empty_file() -> None:
    with pytest.raises(IntegrationError, match="does not exist"):
        load_integrations("/nonexistent/integrations.yaml")


def test_secrets_resolve_from_env_or_a_private_file_and_never_show(tmp_path: Path) -> None:
    assert SecretRef(env="TOKEN").resolve({"TOKEN": "s3cr3t"}).get_secret_value() == "s3cr3t"
    with pytest.raises(IntegrationError, match="environment variable TOKEN is not set") as caught:
        SecretRef(env="TOKEN").resolve({})
    secret = tmp_path / "token"
    secret.write_text("fr0m-f1le\n")
    secret.chmod(0o644)
    with pytest.raises(IntegrationError, match="readable by others"):
        SecretRef(file=str(secret)).resolve()
    secret.chmod(0o600)
    assert SecretRef(file=str(secret)).resolve().get_secret_value() == "fr0m-f1le"
    with pytest.raises(IntegrationError, match="cannot read secret file"):
        SecretRef(file=str(tmp_path / "missing")).resolve()
    assert "fr0m-f1le" not in str(caught.value)


def test_a_spec_builds_its_sink_with_the_resolved_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    spec = IntegrationSpec.model_validate(
        {
            "name": "s",
            "vendor": "splunk",
            "options": {"url": "http://x", "use_ack": "true"},
            "secrets": {"token": {"env": "HEC"}},
        }
    )
    monkeypatch.setenv("HEC", "tok-123")
    sink = spec.build_sink()
    assert isinstance(sink, SplunkHecSink) and sink.config.use_ack is True
    assert sink.config.token == SecretStr("tok-123")
    assert "tok-123" not in json.dumps(spec.model_dump(mode="json"))
    monkeypatch.delenv("HEC")
    with pytest.raises(IntegrationError, match="s: secret token: environment variable HEC is not set"):
        spec.build_sink()
