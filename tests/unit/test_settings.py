from __future__ import annotations

import pytest

from continuum_events.settings import KafkaSettings

SECRET = "hunter2-do-not-print"


def test_env_configures_tls_and_sasl(monkeypatch) -> None:
    monkeypatch.setenv("CONTINUUM_KAFKA_BOOTSTRAP_SERVERS", "k1:9093,k2:9093")
    monkeypatch.setenv("CONTINUUM_KAFKA_SECURITY_PROTOCOL", "SASL_SSL")
    monkeypatch.setenv("CONTINUUM_KAFKA_SASL_MECHANISM", "SCRAM-SHA-512")
    monkeypatch.setenv("CONTINUUM_KAFKA_SASL_USERNAME", "continuum")
    monkeypatch.setenv("CONTINUUM_KAFKA_SASL_PASSWORD", SECRET)
    monkeypatch.setenv("CONTINUUM_KAFKA_SSL_CA_LOCATION", "/etc/kafka/ca.pem")
    settings = KafkaSettings()
    config = settings.client_config(acks="all")
    assert config.pop("logger").name == "librdkafka"
    assert config == {
        "bootstrap.servers": "k1:9093,k2:9093",
        "security.protocol": "SASL_SSL",
        "client.id": "continuum-events",
        "sasl.mechanism": "SCRAM-SHA-512",
        "sasl.username": "continuum",
        "sasl.password": SECRET,
        "ssl.ca.location": "/etc/kafka/ca.pem",
        "acks": "all",
    }


def test_faust_gets_the_same_sasl_settings() -> None:
    settings = KafkaSettings(
        security_protocol="SASL_PLAINTEXT", sasl_mechanism="PLAIN", sasl_username="u", sasl_password=SECRET
    )
    assert settings.aiokafka_kwargs() == {
        "security_protocol": "SASL_PLAINTEXT",
        "sasl_mechanism": "PLAIN",
        "sasl_plain_username": "u",
        "sasl_plain_password": SECRET,
    }


def test_secrets_never_print(monkeypatch) -> None:
    settings = KafkaSettings(
        sasl_mechanism="PLAIN",
        sasl_username="u",
        sasl_password=SECRET,
        ssl_key_password=SECRET,
        schema_registry_auth=f"u:{SECRET}",
    )
    for text in (repr(settings), str(settings), settings.describe(), str(settings.model_dump())):
        assert SECRET not in text


def test_unknown_settings_and_protocols_are_refused() -> None:
    with pytest.raises(ValueError, match="security_protocol"):
        KafkaSettings(security_protocol="TLS")
    with pytest.raises(ValueError):
        KafkaSettings(bootstrap="x")


def test_defaults_work_on_the_embedded_broker() -> None:
    config = KafkaSettings().client_config()
    assert config["bootstrap.servers"] == "127.0.0.1:9092" and config["security.protocol"] == "PLAINTEXT"
    assert KafkaSettings().schema_registry() is None
    assert KafkaSettings(schema_registry_url="mock://x").schema_registry() is not None


def test_linger_and_fetch_wait_reach_the_producer_the_router_and_the_connectors(monkeypatch, tmp_path) -> None:
    """The latency/broker-load knobs (README, "The embedded broker") from the environment to every client."""
    from continuum_events.connectors.runtime import IntegrationRunner
    from continuum_events.processors.app import create_app
    from continuum_events.producers import EventProducer

    monkeypatch.setenv("CONTINUUM_KAFKA_LINGER_MS", "50")
    monkeypatch.setenv("CONTINUUM_KAFKA_FETCH_WAIT_MAX_MS", "200")
    settings = KafkaSettings()
    made: list[dict] = []

    class Recorded:
        def __init__(self, config: dict) -> None:
            made.append(config)

        def __len__(self) -> int:
            return 0

        def __getattr__(self, name: str):
            return lambda *a, **k: 0

    producer = EventProducer(settings, spool_path=tmp_path / "spool.db", producer_factory=Recorded)
    producer.close()
    assert made[0]["linger.ms"] == 50
    app = create_app(settings, datadir=tmp_path / "router")
    assert app.conf.producer_linger == 0.05 and app.continuum_fetch_wait_max_ms == 200
    runner = IntegrationRunner("x", "logging", sink=None, settings=settings)  # type: ignore[arg-type]
    assert runner.consumer_config()["fetch.wait.max.ms"] == 200


def test_linger_and_fetch_wait_defaults_favour_latency() -> None:
    settings = KafkaSettings()
    assert (settings.linger_ms, settings.fetch_wait_max_ms) == (5, 10)
    with pytest.raises(ValueError, match="fetch_wait_max_ms"):
        KafkaSettings(fetch_wait_max_ms=0)
