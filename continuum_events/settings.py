"""Kafka connection settings, shared by every component.

Deployment supplies them through the environment (``CONTINUUM_KAFKA_*``); the
defaults work on the embedded broker. Secrets are ``SecretStr``: they print as
``**********`` in reprs, logs and errors, and are revealed only when handed to the
client library::

    settings = KafkaSettings()                        # reads CONTINUUM_KAFKA_*
    Producer(settings.client_config())                # librdkafka dict
    settings.aiokafka_kwargs()                        # for Faust / aiokafka
"""

from __future__ import annotations

import ssl
from typing import Any, Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from continuum_events import kafkalog

DEFAULT_BOOTSTRAP = "127.0.0.1:9092"

SecurityProtocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
SaslMechanism = Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]


class KafkaSettings(BaseSettings):
    """Where the cluster is and how to authenticate to it."""

    model_config = SettingsConfigDict(env_prefix="CONTINUUM_KAFKA_", frozen=True, extra="forbid")

    bootstrap_servers: str = Field(DEFAULT_BOOTSTRAP, description="Comma-separated host:port list.")
    security_protocol: SecurityProtocol = Field("PLAINTEXT", description="PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL.")
    sasl_mechanism: SaslMechanism | None = Field(None, description="SASL mechanism when the protocol is SASL_*.")
    sasl_username: str | None = Field(None, description="SASL user name.")
    sasl_password: SecretStr | None = Field(None, description="SASL password; never logged.")
    ssl_ca_location: str | None = Field(None, description="PEM file of the CA that signed the brokers' certificates.")
    ssl_certificate_location: str | None = Field(None, description="Client certificate (mutual TLS).")
    ssl_key_location: str | None = Field(None, description="Client private key (mutual TLS).")
    ssl_key_password: SecretStr | None = Field(None, description="Password of the client key; never logged.")
    schema_registry_url: str | None = Field(
        None, description="Confluent-compatible registry; unset = single-object encoding."
    )
    schema_registry_auth: SecretStr | None = Field(
        None, description="Registry 'user:password' basic auth; never logged."
    )
    schema_registry_auto_register: bool = Field(True, description="Register the schema on first use.")
    client_id: str = Field("continuum-events", description="Client id prefix shown in broker logs and quotas.")
    group_instance_id: str | None = Field(
        None,
        pattern=r"^[A-Za-z0-9._-]{1,200}$",
        description="This instance's stable name (a StatefulSet pod's name): static group membership, so a "
        "restarted connector takes its partitions back at once instead of after the session timeout. "
        "Must differ between instances running at the same time.",
    )
    # Latency against broker load. The defaults favour latency, which costs Apache Kafka
    # little: it answers a waiting fetch as soon as data arrives and finds any offset by its
    # index. The embedded broker does neither: every fetch that returns data costs it CPU in
    # proportion to the record batches in the partition (README, "The embedded broker"), so a
    # long run there wants fewer, larger batches and fewer fetches (e.g. 50 and 200).
    linger_ms: int = Field(
        5,
        ge=0,
        le=1000,
        description="How long the event producer and the router gather "
        "records into one batch before sending (librdkafka linger.ms).",
    )
    fetch_wait_max_ms: int = Field(
        10,
        ge=1,
        le=5000,
        description="How long the router's and the connectors' "
        "fetches may wait on the broker for data (fetch.wait.max.ms).",
    )

    def client_config(self, **overrides: Any) -> dict[str, Any]:
        """The librdkafka (confluent-kafka) configuration, with ``overrides`` on top."""
        config: dict[str, Any] = {
            "bootstrap.servers": self.bootstrap_servers,
            "security.protocol": self.security_protocol,
            "client.id": self.client_id,
            # Through Python logging, rate-limited, instead of librdkafka's own stderr lines.
            "logger": kafkalog.LOGGER,
        }
        if self.sasl_mechanism:
            config["sasl.mechanism"] = self.sasl_mechanism
        if self.sasl_username:
            config["sasl.username"] = self.sasl_username
        if self.sasl_password:
            config["sasl.password"] = self.sasl_password.get_secret_value()
        for key, value in (
            ("ssl.ca.location", self.ssl_ca_location),
            ("ssl.certificate.location", self.ssl_certificate_location),
            ("ssl.key.location", self.ssl_key_location),
        ):
            if value:
                config[key] = value
        if self.ssl_key_password:
            config["ssl.key.password"] = self.ssl_key_password.get_secret_value()
        config.update(overrides)
        return config

    def aiokafka_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for aiokafka-based clients (Faust)."""
        kwargs: dict[str, Any] = {"security_protocol": self.security_protocol}
        if self.security_protocol in ("SSL", "SASL_SSL"):
            context = ssl.create_default_context(cafile=self.ssl_ca_location)
            if self.ssl_certificate_location:
                password = self.ssl_key_password.get_secret_value() if self.ssl_key_password else None
                context.load_cert_chain(self.ssl_certificate_location, self.ssl_key_location, password)
            kwargs["ssl_context"] = context
        if self.sasl_mechanism:
            kwargs["sasl_mechanism"] = self.sasl_mechanism
            kwargs["sasl_plain_username"] = self.sasl_username
            kwargs["sasl_plain_password"] = self.sasl_password.get_secret_value() if self.sasl_password else None
        return kwargs

    def schema_registry(self) -> Any:
        """A registry client when one is configured (``mock://`` for tests), else None."""
        if not self.schema_registry_url:
            return None
        from confluent_kafka.schema_registry import SchemaRegistryClient

        conf: dict[str, Any] = {"url": self.schema_registry_url}
        if self.schema_registry_auth:
            conf["basic.auth.user.info"] = self.schema_registry_auth.get_secret_value()
        return (
            SchemaRegistryClient.new_client(conf)
            if self.schema_registry_url.startswith("mock://")
            else SchemaRegistryClient(conf)
        )

    def describe(self) -> str:
        """A one-line, secret-free description for logs."""
        auth = f" {self.sasl_mechanism} as {self.sasl_username}" if self.sasl_mechanism else ""
        return f"{self.bootstrap_servers} ({self.security_protocol}{auth})"


#: Consumer settings that keep group joins fast on the embedded broker (its join waits
#: session.timeout / 2) and are sane on Apache Kafka too.
FAST_GROUP_SETTINGS = {"session.timeout.ms": 6000, "heartbeat.interval.ms": 1000}
