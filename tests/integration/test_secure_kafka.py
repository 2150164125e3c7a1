"""Security against a real broker: an Apache Kafka node with a SASL_SSL listener (SCRAM-SHA-512)
and a mutual-TLS listener, certificates made here with openssl. The pipeline (app producer ->
router -> Splunk connector) delivers through each; a wrong password and an untrusted
certificate give an error that names the listener and never the secret."""

from __future__ import annotations

import os
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from typer.testing import CliRunner

from continuum_events.broker import KafkaBroker, Listener, default_engine, free_port
from continuum_events.cli.main import app
from continuum_events.devtools.receivers import SplunkReceiver
from continuum_events.events import EventType
from continuum_events.producers import EventProducer
from continuum_events.settings import KafkaSettings
from tests.faults import Completeness, ConnectorProcess, wait_until
from tests.pki import TestAuthority
from tests.router_helpers import RouterProcess

pytestmark = [
    pytest.mark.broker,
    pytest.mark.slow,
    pytest.mark.skipif(default_engine() != "kafka", reason="TLS and SCRAM listeners of Apache Kafka"),
]

USER = "continuum-svc"
PASSWORD = "canary-SCRAM-3d9a51c0-never-print"
KEY_PASSWORD = "canary-KEY-77e1b2f4-never-print"


@dataclass(frozen=True)
class Pki:
    ca: Path
    broker_keystore: Path  # the broker's key (PKCS#8) and certificate, one PEM file
    client_cert: Path
    client_key: Path  # encrypted with KEY_PASSWORD
    other_ca: Path  # a CA that signed nothing here


def make_pki(d: Path) -> Pki:
    ca, other = TestAuthority(d, "ca"), TestAuthority(d, "other-ca")
    broker_cert, broker_key = ca.issue("broker", subject="localhost", alt_names="IP:127.0.0.1,DNS:localhost")
    client_cert, client_key = ca.issue("client", subject=USER, client=True, key_password=KEY_PASSWORD)
    keystore = d / "broker-keystore.pem"
    keystore.write_text(broker_key.read_text() + broker_cert.read_text())
    return Pki(ca.pem, keystore, client_cert, client_key, other.pem)


def _tls(name: str, pki: Pki) -> dict[str, str]:
    prefix = f"listener.name.{name.lower()}"
    return {
        f"{prefix}.ssl.keystore.type": "PEM",
        f"{prefix}.ssl.keystore.location": str(pki.broker_keystore),
        f"{prefix}.ssl.truststore.type": "PEM",
        f"{prefix}.ssl.truststore.location": str(pki.ca),
    }


@dataclass
class SecureNode:
    broker: KafkaBroker
    pki: Pki
    sasl_port: int
    mtls_port: int

    def env(self, listener: str, **change: str) -> dict[str, str]:
        """The CONTINUUM_KAFKA_* settings of a client of ``listener`` (``sasl`` or ``mtls``)."""
        if listener == "sasl":
            env = {
                "CONTINUUM_KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{self.sasl_port}",
                "CONTINUUM_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
                "CONTINUUM_KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
                "CONTINUUM_KAFKA_SASL_USERNAME": USER,
                "CONTINUUM_KAFKA_SASL_PASSWORD": PASSWORD,
                "CONTINUUM_KAFKA_SSL_CA_LOCATION": str(self.pki.ca),
            }
        else:
            env = {
                "CONTINUUM_KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{self.mtls_port}",
                "CONTINUUM_KAFKA_SECURITY_PROTOCOL": "SSL",
                "CONTINUUM_KAFKA_SSL_CA_LOCATION": str(self.pki.ca),
                "CONTINUUM_KAFKA_SSL_CERTIFICATE_LOCATION": str(self.pki.client_cert),
                "CONTINUUM_KAFKA_SSL_KEY_LOCATION": str(self.pki.client_key),
                "CONTINUUM_KAFKA_SSL_KEY_PASSWORD": KEY_PASSWORD,
            }
        return {**env, **change}


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecureNode]:
    pki = make_pki(tmp_path_factory.mktemp("pki"))
    sasl, mtls = free_port(), free_port()
    listeners = [
        Listener(
            "SASL_SSL",
            "SASL_SSL",
            sasl,
            {
                **_tls("SASL_SSL", pki),
                "listener.name.sasl_ssl.sasl.enabled.mechanisms": "SCRAM-SHA-512",
                "listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config": "org.apache.kafka.common.security.scram.ScramLoginModule required;",
            },
        ),
        Listener("MTLS", "SSL", mtls, {**_tls("MTLS", pki), "listener.name.mtls.ssl.client.auth": "required"}),
    ]
    with KafkaBroker(listeners=listeners, scram_users={USER: PASSWORD}) as broker:
        yield SecureNode(broker, pki, sasl, mtls)
    log = broker.log_path.read_text(errors="replace") if broker.log_path.exists() else ""
    assert PASSWORD not in log, "the broker's log holds the SCRAM password"


@pytest.mark.parametrize("listener", ["sasl", "mtls"])
def test_the_pipeline_delivers_through_a_secured_listener(
    node: SecureNode, listener: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = node.env(listener)
    for key in [k for k in os.environ if k.startswith("CONTINUUM_KAFKA_")]:
        monkeypatch.delenv(key)
    for key, value in env.items():
        monkeypatch.setenv(key, value)  # the router and the connector read them too
    settings = KafkaSettings()
    bootstrap = env["CONTINUUM_KAFKA_BOOTSTRAP_SERVERS"]
    with SplunkReceiver() as splunk:
        router = RouterProcess(bootstrap, f"secure-router-{listener}").start()
        connector = ConnectorProcess(
            bootstrap,
            f"secure-splunk-{listener}",
            ["--vendor", "splunk", "--set", f"url={splunk.url}", "--secret", "token=HEC"],
            {"HEC": SplunkReceiver.TOKEN},
        ).start()
        try:
            with EventProducer(settings, spool_path=tmp_path / "spool.db") as producer:
                ids = [
                    producer.dispatch(
                        EventType.PRINTER_ONLINE, {"printer_id": f"{listener}-{i % 7}", "printer_name": "P"}
                    )
                    for i in range(300)
                ]
                assert producer.flush(30) == 0 and producer.stats().spooled_total == 0
            wait_until(
                lambda: set(ids) <= set(splunk.received.event_ids),
                120,
                f"every event through the {listener} listener\n{router.tail()}\n{connector.output()[-2000:]}",
            )
        finally:
            connector.stop()
            router.stop()
        # The other listener's run is in the topic too (this connector's new group reads from the start).
        ours = Counter({i: n for i, n in splunk.received.event_ids.items() if i in set(ids)})
        Completeness.judge(ids, ours).check(max_duplicates=0)
        for text, where in ((connector.output(), "the connector's log"), (router.tail(400), "the router's log")):
            assert PASSWORD not in text and KEY_PASSWORD not in text, where


@pytest.mark.parametrize(
    ("listener", "change", "reason"),
    [
        ("sasl", {"CONTINUUM_KAFKA_SASL_PASSWORD": "wrong-" + PASSWORD[::-1]}, "authentication"),
        ("sasl", {"CONTINUUM_KAFKA_SSL_CA_LOCATION": "OTHER_CA"}, "certificate verify failed"),
        ("mtls", {"CONTINUUM_KAFKA_SSL_CA_LOCATION": "OTHER_CA"}, "certificate verify failed"),
    ],
)
def test_a_refused_connection_names_the_listener_and_never_the_secret(
    node: SecureNode, listener: str, change: dict[str, str], reason: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    change = {k: str(node.pki.other_ca) if v == "OTHER_CA" else v for k, v in change.items()}
    env = node.env(listener, **change)
    for key in [k for k in os.environ if k.startswith("CONTINUUM_KAFKA_")]:
        monkeypatch.delenv(key)
    started = time.monotonic()
    result = CliRunner().invoke(app, ["status"], env=env)
    output = " ".join(result.output.split())
    assert result.exit_code == 1, output
    assert env["CONTINUUM_KAFKA_BOOTSTRAP_SERVERS"] in output, "the message names the listener"
    assert reason in output.lower(), output
    for secret in (PASSWORD, KEY_PASSWORD, change.get("CONTINUUM_KAFKA_SASL_PASSWORD", PASSWORD)):
        assert secret not in output
    assert time.monotonic() - started < 20, "a refused connection is reported, not waited out"
