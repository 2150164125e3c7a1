"""One Kafka security configuration reaches every client, and PLAINTEXT is only the default.

SASL_SSL with SCRAM and mutual TLS come from ``CONTINUUM_KAFKA_*`` alone. Each component
is run up to the point where it hands its configuration to the client library, where a
recorder stands in for confluent-kafka's ``Producer``/``Consumer``/``AdminClient`` (or
aiokafka's, under Faust) and keeps what it was given; no broker is involved. What was
recorded is then checked key by key and handed to the real library: librdkafka must
accept it (it loads the CA, the certificate and the encrypted key at construction, so a
lost key password fails there), and the SSL context Faust gives aiokafka must trust the
CA and present the client certificate in a real (in-memory) TLS handshake.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import ssl
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import aiokafka
import confluent_kafka
import confluent_kafka.admin
import pytest
from pydantic import SecretStr, ValidationError
from typer.testing import CliRunner

from continuum_events.settings import KafkaSettings
from tests.pki import TestAuthority

PASSWORD = "canary-SCRAM-9f3c1e77-never-print"
KEY_PASSWORD = "canary-KEY-4be2d0aa-never-print"
USER = "continuum-svc"
#: Nothing listens there: a real client built from a recorded configuration connects nowhere.
BOOTSTRAP = "127.0.0.1:1,127.0.0.1:2"
BROKER_NAME = "broker.test"

REAL = {
    "Producer": confluent_kafka.Producer,
    "Consumer": confluent_kafka.Consumer,
    "AdminClient": confluent_kafka.admin.AdminClient,
}
ROOT = Path(__file__).resolve().parents[2]


# -- a throwaway PKI ----------------------------------------------------------------------
@dataclass(frozen=True)
class Pki:
    ca: Path
    client_cert: Path
    client_key: Path  # encrypted with KEY_PASSWORD
    server_cert: Path  # signed by the CA for BROKER_NAME; stands in for a broker in the handshake
    server_key: Path


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    ca = TestAuthority(tmp_path_factory.mktemp("pki"), "test-ca")
    server_cert, server_key = ca.issue("server", subject=BROKER_NAME, alt_names=f"DNS:{BROKER_NAME}")
    client_cert, client_key = ca.issue("client", subject=USER, client=True, key_password=KEY_PASSWORD)
    assert "ENCRYPTED" in client_key.read_text()
    return Pki(ca.pem, client_cert, client_key, server_cert, server_key)


@pytest.fixture
def secure_env(monkeypatch: pytest.MonkeyPatch, pki: Pki) -> dict[str, str]:
    """The one configuration: SASL_SSL with SCRAM-SHA-512, and mutual TLS."""
    env = {
        "CONTINUUM_KAFKA_BOOTSTRAP_SERVERS": BOOTSTRAP,
        "CONTINUUM_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
        "CONTINUUM_KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
        "CONTINUUM_KAFKA_SASL_USERNAME": USER,
        "CONTINUUM_KAFKA_SASL_PASSWORD": PASSWORD,
        "CONTINUUM_KAFKA_SSL_CA_LOCATION": str(pki.ca),
        "CONTINUUM_KAFKA_SSL_CERTIFICATE_LOCATION": str(pki.client_cert),
        "CONTINUUM_KAFKA_SSL_KEY_LOCATION": str(pki.client_key),
        "CONTINUUM_KAFKA_SSL_KEY_PASSWORD": KEY_PASSWORD,
    }
    _clear_kafka_env(monkeypatch)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return env


def _clear_kafka_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in list(os.environ):
        if key.startswith("CONTINUUM_KAFKA_"):
            monkeypatch.delenv(key)


def expected_librdkafka(pki: Pki) -> dict[str, str]:
    return {
        "bootstrap.servers": BOOTSTRAP,
        "security.protocol": "SASL_SSL",
        "sasl.mechanism": "SCRAM-SHA-512",
        "sasl.username": USER,
        "sasl.password": PASSWORD,
        "ssl.ca.location": str(pki.ca),
        "ssl.certificate.location": str(pki.client_cert),
        "ssl.key.location": str(pki.client_key),
        "ssl.key.password": KEY_PASSWORD,
    }


def assert_no_secret(text: str, where: str) -> None:
    # The message names the place, never the secret.
    assert PASSWORD not in text, f"the SASL password appears in {where}"
    assert KEY_PASSWORD not in text, f"the key password appears in {where}"


# -- recorders in place of the client libraries ---------------------------------------------
class Captured(Exception):
    """Raised by a recorded client when used: the test has what it came for."""


def _no_broker() -> Exception:
    return confluent_kafka.KafkaException(
        confluent_kafka.KafkaError(confluent_kafka.KafkaError._TRANSPORT, "no broker in this test")
    )


class _StandIn:
    """What a recorded constructor returns: closing is fine, anything else raises."""

    def __init__(self, error: Callable[[], Exception]) -> None:
        self._error = error

    def close(self, *args: Any, **kwargs: Any) -> None:
        return None

    def flush(self, *args: Any, **kwargs: Any) -> int:
        return 0

    def poll(self, *args: Any, **kwargs: Any) -> int:
        return 0

    def __getattr__(self, name: str) -> Any:
        def refuse(*args: Any, **kwargs: Any) -> Any:
            raise self._error()

        return refuse


@dataclass
class Construction:
    kind: str
    site: str  # file:line of the call, relative to the repository
    config: dict[str, Any]


class Clients:
    """Records every librdkafka client the code under test builds."""

    def __init__(self) -> None:
        self.made: list[Construction] = []
        self._lock = threading.Lock()
        #: Raise at construction (for callers that must not get as far as using it).
        self.raise_on_construct = False
        #: What using a stand-in raises: Captured, or a KafkaException like a missing broker.
        self.error: Callable[[], Exception] = Captured

    def factory(self, kind: str) -> Callable[..., Any]:
        def construct(config: dict[str, Any], *args: Any, **kwargs: Any) -> Any:
            caller = sys._getframe(1)
            path = Path(caller.f_code.co_filename).resolve()
            site = f"{path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}:{caller.f_lineno}"
            with self._lock:
                self.made.append(Construction(kind, site, dict(config)))
            if self.raise_on_construct:
                raise Captured(site)
            return _StandIn(self.error)

        return construct

    def sites(self) -> dict[str, int]:
        """{file: distinct call sites in it}."""
        return dict(Counter(site.rsplit(":", 1)[0] for site in {c.site for c in self.made}))

    def wait_for(self, count: int, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while len(self.made) < count and time.monotonic() < deadline:
            time.sleep(0.02)


#: Where each module finds its client classes: imported at module level, or from
#: ``confluent_kafka`` when a function runs (probe follower, hygiene writer, router
#: worker, CLI reachability check).
PATCH_POINTS = [
    ("confluent_kafka", "Producer"),
    ("confluent_kafka", "Consumer"),
    ("confluent_kafka.admin", "AdminClient"),
    ("continuum_events.follower", "Producer"),
    ("continuum_events.follower", "Consumer"),
    ("continuum_events.status", "Producer"),
    ("continuum_events.status", "Consumer"),
    ("continuum_events.history", "Consumer"),
    ("continuum_events.monitor", "Consumer"),
    ("continuum_events.operations", "Consumer"),
    ("continuum_events.operations", "AdminClient"),
    ("continuum_events.cli.broker", "AdminClient"),
    ("continuum_events.cli.run", "AdminClient"),
    ("continuum_events.cli.events", "Consumer"),
    ("continuum_events.connectors.runtime", "Producer"),
    ("continuum_events.connectors.runtime", "Consumer"),
    ("continuum_events.connectors.runtime", "AdminClient"),
    ("continuum_events.connectors.incidents", "Producer"),
    ("continuum_events.connectors.incidents", "AdminClient"),
]


@pytest.fixture
def clients(monkeypatch: pytest.MonkeyPatch, secure_env: dict[str, str]) -> Clients:
    import importlib

    recorder = Clients()
    # Every module imported before any is patched: one imported while confluent_kafka is
    # patched would bind the recorder as its original, and keep it after the test.
    modules = {module: importlib.import_module(module) for module, _ in PATCH_POINTS}
    for module, name in PATCH_POINTS:
        monkeypatch.setattr(modules[module], name, recorder.factory(name))
    return recorder


@pytest.fixture
def quiet_root_logger() -> Iterator[None]:
    """The CLI configures logging at its entry point (force=True); put the test run's back."""
    root, librdkafka = logging.getLogger(), logging.getLogger("librdkafka")
    handlers, levels = root.handlers[:], (root.level, librdkafka.level)
    yield
    root.handlers[:] = handlers
    root.setLevel(levels[0])
    librdkafka.setLevel(levels[1])


# -- every place a librdkafka client is built ----------------------------------------------
def _app_producer(clients: Clients, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from continuum_events.producers.app import EventProducer

    clients.raise_on_construct = True  # its poll and drain threads would start next
    with pytest.raises(Captured):
        EventProducer(spool_path=tmp_path / "spool.db", producer_factory=clients.factory("Producer"))


def _probe_follower(clients: Clients, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from continuum_events.producers.probe import follow_printer_changes

    with pytest.raises(Captured):
        follow_printer_changes(KafkaSettings(), None, threading.Event(), "continuum-health-probe-0-of-1")


def _router_worker(clients: Clients, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from continuum_events.processors.worker import build

    clients.error = _no_broker  # the hygiene topic's metadata cannot be read: hygiene off, the app is built
    _app, store, state = build(KafkaSettings(), datadir=tmp_path / "router")
    assert state is None and store.settings == KafkaSettings()


def _hygiene_state(clients: Clients, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from continuum_events.processors.hygiene import HygieneState

    state = HygieneState(KafkaSettings())
    with pytest.raises(Captured):
        state._follow()
    with pytest.raises(Captured):
        state.write({"printer:p-1": {"held": []}})


def _config_store(clients: Clients, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from continuum_events.config import ConfigStore, write_rule
    from continuum_events.rules import default_rule

    with pytest.raises(Captured):
        ConfigStore(KafkaSettings())._follow()
    with pytest.raises(Captured):
        write_rule(KafkaSettings(), default_rule("logging"))


def _status(clients: Clients, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from continuum_events import history
    from continuum_events.integrations import load_integrations
    from continuum_events.status import StatusBoard, StatusReporter, integration_status

    StatusReporter(KafkaSettings(), dict)
    board = StatusBoard(KafkaSettings())
    with pytest.raises(Captured):
        board._follow()
    spec = load_integrations(ROOT / "integrations.example.yaml")[0]
    monkeypatch.setattr(history, "watermarks", lambda consumer, topic, *a, **k: {})
    with pytest.raises(Captured):
        integration_status(KafkaSettings(), {spec.key: spec.model_dump(mode="json")}, board)


def _history_and_monitor(clients: Clients, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from continuum_events.history import history_consumer
    from continuum_events.monitor import FlowMonitor

    history_consumer(KafkaSettings(), "replay")
    with pytest.raises(Captured):
        FlowMonitor(KafkaSettings(), "printer-events")._run()


def _operations(clients: Clients, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from continuum_events import operations
    from continuum_events.integrations import load_integrations

    spec = load_integrations(ROOT / "integrations.example.yaml")[0]
    monkeypatch.setattr(operations, "ensure_topics", lambda admin, specs, *a, **k: [])
    with pytest.raises(Captured):  # the admin client, then the group's placement
        operations.connect(KafkaSettings(), spec, config={})
    with pytest.raises(Captured):
        operations.list_dead_letters(KafkaSettings(), spec.name)


def _connector_runtime(clients: Clients, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from continuum_events.connectors import runtime
    from continuum_events.connectors.splunk import SplunkConfig, SplunkHecSink

    sink = SplunkHecSink(SplunkConfig("http://x", SecretStr("t")))
    runner = runtime.IntegrationRunner("splunk-prod", "logging", sink, KafkaSettings())  # its dead-letter producer
    monkeypatch.setattr(runtime, "ensure_topics", lambda admin, specs, *a, **k: [])
    with pytest.raises(Captured):  # admin client, then the group consumer
        runner._run(threading.Event())  # one pass: run() would report the failure and start again


def _incident_ledger(clients: Clients, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from continuum_events.connectors.base import SinkContext
    from continuum_events.connectors.incidents import IncidentLedger, LifecycleSink

    IncidentLedger(KafkaSettings(), "pagerduty-oncall")
    with pytest.raises(Captured):
        LifecycleSink(config=None).open(SinkContext("pagerduty-oncall", KafkaSettings()))


def _admin_service(clients: Clients, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from continuum_events.admin import AdminService

    clients.error = _no_broker  # its followers retry in their threads until closed
    service = AdminService(KafkaSettings(), tmp_path / "secrets")
    try:
        clients.wait_for(2)
    finally:
        service.close()
    assert len(clients.made) == 2, "the config and status followers"


def _connector_host(clients: Clients, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from continuum_events.connectors.host import ConnectorHost

    with pytest.raises(Captured):  # its config follower; its runners and reporter are the sites above
        ConnectorHost(KafkaSettings()).store._follow()


#: Per component: how it is driven, and the files (with how many distinct call sites in
#: each) where it builds clients. Line numbers are left out: other work moves them.
SITES: dict[str, tuple[Callable[[Clients, Path, pytest.MonkeyPatch], None], dict[str, int]]] = {
    "app producer": (_app_producer, {"producers/app.py": 1}),
    "probe follower": (_probe_follower, {"producers/probe.py": 1}),
    "router worker": (_router_worker, {"processors/worker.py": 1}),
    "hygiene state": (_hygiene_state, {"continuum_events/follower.py": 1, "processors/hygiene.py": 1}),
    "config store": (_config_store, {"continuum_events/follower.py": 2}),
    "status": (
        _status,
        {"continuum_events/status.py": 2, "continuum_events/follower.py": 1, "continuum_events/history.py": 1},
    ),
    "history and monitor": (_history_and_monitor, {"continuum_events/history.py": 1, "continuum_events/monitor.py": 1}),
    "operations": (_operations, {"continuum_events/operations.py": 2, "continuum_events/history.py": 1}),
    "connector runtime": (_connector_runtime, {"connectors/runtime.py": 3}),
    "incident ledger": (_incident_ledger, {"connectors/incidents.py": 2}),
    "connector host": (_connector_host, {"continuum_events/follower.py": 1}),
    "admin service": (_admin_service, {"continuum_events/follower.py": 1}),
}


@pytest.mark.parametrize("site", SITES)
def test_every_librdkafka_client_gets_sasl_ssl_and_mutual_tls(
    site: str,
    clients: Clients,
    pki: Pki,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    build, sites = SITES[site]
    build(clients, tmp_path, monkeypatch)
    assert clients.made, f"{site}: no client was built"
    assert clients.sites() == sites, f"{site}: clients built at {sorted(c.site for c in clients.made)}"
    expected = expected_librdkafka(pki)
    for made in clients.made:
        wrong = sorted(k for k, v in expected.items() if made.config.get(k) != v)
        assert not wrong, f"{made.kind} at {made.site} lacks or changes {wrong}"
    assert_no_secret(caplog.text, f"the logs of {site}")
    # The library accepts it: librdkafka loads the CA, the certificate and the encrypted
    # key (with its password) when the client is created.
    monkeypatch.undo()  # the real classes back (AdminClient's own __init__ looks itself up by name)
    for made in clients.made:
        client = REAL[made.kind]({**made.config, "log_level": 0})
        if made.kind == "Consumer":
            client.close()
        del client


def test_a_lost_key_password_is_caught_by_librdkafka(pki: Pki, secure_env: dict[str, str]) -> None:
    """Why handing the recorded configuration to the real library is worth it."""
    config = KafkaSettings().client_config(log_level=0)
    del config["ssl.key.password"]
    with pytest.raises(confluent_kafka.KafkaException, match="ssl.key"):
        confluent_kafka.Producer(config)


# -- the Faust router (aiokafka) -----------------------------------------------------------
def _handshake(client: ssl.SSLContext, pki: Pki) -> dict[str, Any]:
    """A TLS handshake in memory against a server that requires a client certificate
    signed by the CA; returns the certificate the client presented."""
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(pki.server_cert, pki.server_key)
    server.load_verify_locations(pki.ca)
    server.verify_mode = ssl.CERT_REQUIRED
    c_in, c_out, s_in, s_out = ssl.MemoryBIO(), ssl.MemoryBIO(), ssl.MemoryBIO(), ssl.MemoryBIO()
    c = client.wrap_bio(c_in, c_out, server_hostname=BROKER_NAME)
    s = server.wrap_bio(s_in, s_out, server_side=True)
    done = {"client": False, "server": False}
    for _ in range(20):
        for side, obj in (("client", c), ("server", s)):
            if not done[side]:
                try:
                    obj.do_handshake()
                    done[side] = True
                except ssl.SSLWantReadError:
                    pass
        s_in.write(c_out.read())
        c_in.write(s_out.read())
        if all(done.values()):
            break
    # TLS 1.3 sends the client's certificate after the server's Finished: let the server read it.
    s_in.write(c_out.read())
    assert all(done.values()), f"handshake incomplete: {done}"
    return s.getpeercert()


def _subject_cn(cert: dict[str, Any]) -> str:
    return dict(item for rdn in cert["subject"] for item in rdn)["commonName"]


def test_the_faust_router_gets_scram_and_mutual_tls(
    monkeypatch: pytest.MonkeyPatch, clients: Clients, pki: Pki, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from faust.transport.drivers import aiokafka as driver

    from continuum_events.processors.worker import build

    caplog.set_level(logging.DEBUG)
    made: dict[str, dict[str, Any]] = {}

    def recorder(kind: str) -> Callable[..., Any]:
        def construct(**kwargs: Any) -> Any:
            made[kind] = kwargs
            return SimpleNamespace()

        return construct

    monkeypatch.setattr(driver.aiokafka, "AIOKafkaProducer", recorder("producer"))
    clients.error = _no_broker
    app, _, _ = build(KafkaSettings(), datadir=tmp_path / "router")
    app.producer._new_producer()
    thread = app.consumer._thread
    monkeypatch.setattr(driver.aiokafka, "AIOKafkaConsumer", recorder("worker consumer"))
    thread._create_consumer(None)
    monkeypatch.setattr(driver.aiokafka, "AIOKafkaConsumer", recorder("client consumer"))
    thread._create_client_consumer(thread.transport)

    assert set(made) == {"producer", "worker consumer", "client consumer"}
    settings = KafkaSettings()
    for kind, kwargs in made.items():
        assert kwargs["bootstrap_servers"] == BOOTSTRAP.split(","), kind
        assert (kwargs["security_protocol"], kwargs["sasl_mechanism"]) == ("SASL_SSL", "SCRAM-SHA-512"), kind
        assert (kwargs["sasl_plain_username"], kwargs["sasl_plain_password"]) == (USER, PASSWORD), kind
        # The same as the settings' own aiokafka translation, so the two cannot drift apart.
        ours = settings.aiokafka_kwargs()
        assert {k: kwargs[k] for k in ours if k != "ssl_context"} == {
            k: v for k, v in ours.items() if k != "ssl_context"
        }, kind
        context = kwargs["ssl_context"]
        assert isinstance(context, ssl.SSLContext), kind
        assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname, kind
        assert [_subject_cn(ca) for ca in context.get_ca_certs()] == ["continuum-test-ca"], kind
        assert _subject_cn(_handshake(context, pki)) == USER, kind
    assert_no_secret(caplog.text + repr(app.conf.broker_credentials), "the router's logs or credentials")

    async def construct_for_real() -> None:
        # aiokafka checks its security arguments in the constructor (nothing connects before start()).
        aiokafka.AIOKafkaProducer(**made["producer"])
        for kind in ("worker consumer", "client consumer"):
            aiokafka.AIOKafkaConsumer(**made[kind])

    asyncio.run(construct_for_real())


def test_faust_tls_without_sasl_and_plaintext_by_default(monkeypatch: pytest.MonkeyPatch, pki: Pki) -> None:
    from faust.transport.drivers.aiokafka import credentials_to_aiokafka_auth

    from continuum_events.processors.app import broker_credentials

    _clear_kafka_env(monkeypatch)
    assert credentials_to_aiokafka_auth(broker_credentials(KafkaSettings())) == {"security_protocol": "PLAINTEXT"}
    monkeypatch.setenv("CONTINUUM_KAFKA_SECURITY_PROTOCOL", "SSL")
    monkeypatch.setenv("CONTINUUM_KAFKA_SSL_CA_LOCATION", str(pki.ca))
    monkeypatch.setenv("CONTINUUM_KAFKA_SSL_CERTIFICATE_LOCATION", str(pki.client_cert))
    monkeypatch.setenv("CONTINUUM_KAFKA_SSL_KEY_LOCATION", str(pki.client_key))
    monkeypatch.setenv("CONTINUUM_KAFKA_SSL_KEY_PASSWORD", KEY_PASSWORD)
    auth = credentials_to_aiokafka_auth(broker_credentials(KafkaSettings()))
    assert auth["security_protocol"] == "SSL" and "sasl_mechanism" not in auth
    assert _subject_cn(_handshake(auth["ssl_context"], pki)) == USER
    config = KafkaSettings().client_config()
    assert config["security.protocol"] == "SSL" and not any(k.startswith("sasl.") for k in config)


# -- PLAINTEXT is the local default only; bad values are refused ----------------------------
def test_plaintext_is_only_the_default(monkeypatch: pytest.MonkeyPatch) -> None:
    _clear_kafka_env(monkeypatch)
    settings = KafkaSettings()
    assert settings.security_protocol == "PLAINTEXT"
    config = settings.client_config()
    assert config.pop("logger").name == "librdkafka"
    assert config == {
        "bootstrap.servers": "127.0.0.1:9092",
        "security.protocol": "PLAINTEXT",
        "client.id": "continuum-events",
    }
    assert settings.aiokafka_kwargs() == {"security_protocol": "PLAINTEXT"}
    monkeypatch.setenv("CONTINUUM_KAFKA_SECURITY_PROTOCOL", "SASL_SSL")
    assert KafkaSettings().client_config()["security.protocol"] == "SASL_SSL"


@pytest.mark.parametrize(
    ("variable", "value", "field"),
    [
        ("CONTINUUM_KAFKA_SECURITY_PROTOCOL", "TLS", "security_protocol"),
        ("CONTINUUM_KAFKA_SECURITY_PROTOCOL", "sasl_ssl", "security_protocol"),  # librdkafka's spelling only
        ("CONTINUUM_KAFKA_SASL_MECHANISM", "SCRAM-SHA-1", "sasl_mechanism"),
    ],
)
def test_a_bad_value_is_refused_clearly(
    monkeypatch: pytest.MonkeyPatch, secure_env: dict[str, str], variable: str, value: str, field: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ValidationError) as caught:
        KafkaSettings()
    text = str(caught.value)
    assert field in text and repr(value) in text
    if field == "security_protocol":
        assert "'PLAINTEXT', 'SSL', 'SASL_PLAINTEXT' or 'SASL_SSL'" in text
    assert_no_secret(text, "the validation error")


# -- secrets never print -------------------------------------------------------------------
def test_secrets_never_print_from_the_settings(secure_env: dict[str, str]) -> None:
    settings = KafkaSettings()
    assert settings.sasl_password.get_secret_value() == PASSWORD  # it was read, and is hidden
    assert settings.describe() == f"{BOOTSTRAP} (SASL_SSL SCRAM-SHA-512 as {USER})"
    for where, text in {
        "repr": repr(settings),
        "str": str(settings),
        "describe()": settings.describe(),
        "model_dump()": str(settings.model_dump()),
        "JSON": settings.model_dump_json(),
    }.items():
        assert_no_secret(text, f"the settings' {where}")


def _cli(*args: str) -> Any:
    from continuum_events.cli.main import app

    result = CliRunner().invoke(app, ["--log-level", "debug", *args])
    return result, " ".join(result.output.split())  # as one line: the console wraps at its width


@pytest.mark.usefixtures("quiet_root_logger")
def test_cli_commands_use_the_configuration_and_never_print_secrets(
    clients: Clients, pki: Pki, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from continuum_events.cli import events as events_cli
    from continuum_events.producers.app import EventProducer

    for args in (["--help"], ["status", "--help"], ["topics", "--help"], ["router", "--help"]):
        result, output = _cli(*args)
        assert result.exit_code == 0, output
        assert_no_secret(output, f"`continuum-events {' '.join(args)}`")

    # `status` checks the cluster first and, when it cannot be reached, says where and how it tried.
    clients.error = _no_broker
    result, output = _cli("status")
    assert result.exit_code == 1 and f"cannot reach Kafka at {BOOTSTRAP} (SASL_SSL SCRAM-SHA-512 as {USER})" in output
    assert_no_secret(output, "`continuum-events status`")

    clients.error = Captured
    for args in (["topics"], ["tail"]):
        result, output = _cli(*args)
        assert isinstance(result.exception, Captured), output
        assert_no_secret(output, f"`continuum-events {' '.join(args)}`")
    monkeypatch.setattr(
        events_cli, "EventProducer", functools.partial(EventProducer, producer_factory=clients.factory("Producer"))
    )
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # where `send` makes its private spool
    clients.raise_on_construct = True
    result, output = _cli("send", "printer.offline", '{"printer_id": "p-1"}')
    assert isinstance(result.exception, Captured), output
    assert_no_secret(output, "`continuum-events send`")

    assert clients.sites() == {
        "continuum_events/cli/common.py": 1,
        "continuum_events/cli/broker.py": 1,
        "continuum_events/cli/events.py": 1,
        "producers/app.py": 1,
    }
    expected = expected_librdkafka(pki)
    for made in clients.made:
        wrong = sorted(k for k, v in expected.items() if made.config.get(k) != v)
        assert not wrong, f"{made.kind} at {made.site} lacks or changes {wrong}"


@pytest.mark.usefixtures("quiet_root_logger")
def test_cli_refuses_a_bad_protocol_clearly(secure_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONTINUUM_KAFKA_SECURITY_PROTOCOL", "TLS")
    result, output = _cli("status")
    assert result.exit_code == 2 and "invalid Kafka settings" in output and "security_protocol" in output, output
    assert_no_secret(output, "the CLI's refusal")


def test_run_starts_its_parts_with_the_same_configuration(
    secure_env: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`continuum-events run` passes -b and leaves the environment to its parts (router,
    connectors, probe), so each reads the same CONTINUUM_KAFKA_* settings."""
    from continuum_events.cli import run

    launched: list[tuple[list[str], dict[str, Any]]] = []
    monkeypatch.setattr(run.subprocess, "Popen", lambda argv, **kwargs: launched.append((argv, kwargs)))
    supervisor = run.Supervisor(KafkaSettings(), tmp_path)
    supervisor.add("router", ["router"])
    supervisor.start()
    ((argv, kwargs),) = launched
    assert argv[-2:] == ["-b", BOOTSTRAP] and kwargs.get("env") is None
