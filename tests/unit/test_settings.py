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
    config = settings.client_config(**{"acks": "all"})
    assert config == {
        "bootstrap.servers": "k1:9093,k2:9093", "security.protocol": "SASL_SSL", "client.id": "continuum-events",
        "sasl.mechanism": "SCRAM-SHA-512", "sasl.username": "continuum", "sasl.password": SECRET,
        "ssl.ca.location": "/etc/kafka/ca.pem", "acks": "all",
    }


def test_faust_gets_the_same_sasl_settings() -> None:
    settings = KafkaSettings(security_protocol="SASL_PLAINTEXT", sasl_mechanism="PLAIN", sasl_username="u",
                             sasl_password=SECRET)
    assert settings.aiokafka_kwargs() == {"security_protocol": "SASL_PLAINTEXT", "sasl_mechanism": "PLAIN",
                                          "sasl_plain_username": "u", "sasl_plain_password": SECRET}


def test_secrets_never_print(monkeypatch) -> None:
    settings = KafkaSettings(sasl_mechanism="PLAIN", sasl_username="u", sasl_password=SECRET,
                             ssl_key_password=SECRET, schema_registry_auth=f"u:{SECRET}")
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
