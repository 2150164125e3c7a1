"""The admin API against the real broker and a strict Splunk receiver: every endpoint,
bad input, auth and cross-site refusals, and no secret in any response."""

from __future__ import annotations

import json
import stat
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask
from openapi_spec_validator import validate

from continuum_events.admin import AdminService, admin_blueprint, create_app
from continuum_events.broker import LocalBroker, local_broker
from continuum_events.connectors.host import ConnectorHost
from continuum_events.devtools.receivers import SplunkReceiver
from continuum_events.events import EventType
from continuum_events.producers.app import EventProducer
from continuum_events.settings import KafkaSettings
from continuum_events.topology import category_topic

pytestmark = pytest.mark.broker
TOKEN = "admin-token-" + uuid.uuid4().hex
WRITE = {"Authorization": f"Bearer {TOKEN}", "X-Requested-With": "continuum-admin"}
READ = {"Authorization": f"Bearer {TOKEN}"}
#: Host names the tests resolve (the service takes a resolver, as it takes the system's in production).
HOSTS = {"127.0.0.1": ["127.0.0.1"], "metadata.internal": ["169.254.169.254"], "mapped.example": ["::ffff:10.0.0.1"]}


class Responses:
    """Every response body the tests saw, to prove no secret was ever in one."""

    bodies: list[str] = []


@pytest.fixture(scope="module")
def broker() -> Iterator[LocalBroker]:
    """This module's own broker: replay by time needs timestamps in order per partition."""
    with local_broker() as b:
        yield b


@pytest.fixture(scope="module")
def service(broker, tmp_path_factory) -> Iterator[AdminService]:
    settings = KafkaSettings(bootstrap_servers=broker.bootstrap_servers)
    service = AdminService(
        settings, tmp_path_factory.mktemp("secrets"), status_ttl_s=0.2, resolver=lambda host: HOSTS[host]
    )
    yield service
    service.close()


@pytest.fixture(scope="module")
def client(service):
    app = create_app(service, token=TOKEN)
    app.testing = True
    client = app.test_client()
    original = client.open

    def recording(*args, **kwargs):
        response = original(*args, **kwargs)
        Responses.bodies.append(response.get_data(as_text=True))
        return response

    client.open = recording
    return client


@pytest.fixture(scope="module")
def splunk() -> Iterator[SplunkReceiver]:
    with SplunkReceiver() as receiver:
        yield receiver


@pytest.fixture(scope="module")
def host(broker) -> Iterator[ConnectorHost]:
    """The connectors, following what the API connects (only this module's integrations)."""
    stop = threading.Event()
    host = ConnectorHost(KafkaSettings(bootstrap_servers=broker.bootstrap_servers), only={"api-splunk", "api-replay"})
    thread = threading.Thread(target=host.run, args=(stop,), daemon=True)
    thread.start()
    yield host
    stop.set()
    thread.join(30)


def splunk_form(name: str, receiver: SplunkReceiver, **extra) -> dict:
    return {
        "name": name,
        "vendor": "splunk",
        "options": {"url": receiver.url, "index": "printers"},
        "secrets": {"token": SplunkReceiver.TOKEN},
        "allow_private_network": True,
        "allow_insecure_http": True,
        "filters": [{"where": {"printer_location": name}}],
        **extra,
    }


def produce(broker, location: str, n: int, tmp: Path) -> list[str]:
    settings = KafkaSettings(bootstrap_servers=broker.bootstrap_servers)
    with EventProducer(settings, topic=category_topic("logging"), spool_path=tmp / f"{uuid.uuid4().hex}.db") as p:
        ids = [
            p.dispatch(EventType.PRINTER_OFFLINE, {"printer_id": f"{location}-{i}", "printer_location": location})
            for i in range(n)
        ]
        assert p.flush(10) == 0
    return ids


def wait_until(predicate, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


# -- auth and cross-site refusals ----------------------------------------------------------
def test_it_is_never_open(service) -> None:
    with pytest.raises(ValueError, match="never open"):
        admin_blueprint(service)


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Basic {TOKEN}"}])
def test_calls_without_the_token_are_unauthorized(client, headers) -> None:
    for method, path in (
        ("GET", "/api/integrations"),
        ("GET", "/api/vendors"),
        ("POST", "/api/integrations"),
        ("DELETE", "/api/integrations/x"),
        ("GET", "/api/jobs/x"),
    ):
        response = client.open(path, method=method, headers={**headers, "X-Requested-With": "continuum-admin"})
        assert response.status_code == 401 and response.mimetype == "application/problem+json", (method, path)
        assert response.json["title"] == "Unauthorized" and "Bearer" in response.headers["WWW-Authenticate"]


def test_the_page_is_served_without_data_and_with_a_strict_policy(client) -> None:
    page = client.get("/")
    assert page.status_code == 200 and "Admin → Integrations" in page.get_data(as_text=True)
    assert "default-src 'self'" in page.headers["Content-Security-Policy"]
    assert client.get("/static/app.js").status_code == 200
    assert client.get("/static/../service.py").status_code == 404


def test_cross_site_and_form_posts_are_refused(client, splunk) -> None:
    body = json.dumps(splunk_form("api-csrf", splunk))
    no_header = client.post("/api/integrations", data=body, headers={**READ, "Content-Type": "application/json"})
    assert no_header.status_code == 403 and "X-Requested-With" in no_header.json["detail"]
    evil = client.post(
        "/api/integrations",
        data=body,
        headers={**WRITE, "Content-Type": "application/json", "Origin": "https://evil.example"},
    )
    assert evil.status_code == 403 and evil.json["detail"] == "cross-site request refused"
    form = client.post(
        "/api/integrations", data="name=x", headers={**WRITE, "Content-Type": "application/x-www-form-urlencoded"}
    )
    assert form.status_code == 415


def test_a_host_app_mounts_it_behind_its_own_auth(service) -> None:
    app = Flask("continuum")
    app.register_blueprint(
        admin_blueprint(service, authorize=lambda req: req.headers.get("X-User") == "admin"),
        url_prefix="/admin/integrations",
    )
    client = app.test_client()
    assert client.get("/admin/integrations/api/vendors").status_code == 401
    assert client.get("/admin/integrations/api/vendors", headers={"X-User": "admin"}).status_code == 200


SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-store",
}


def assert_secure(response) -> None:
    for name, value in SECURITY_HEADERS.items():
        assert value in response.headers.get(name, ""), (response.request.path, name)


def test_mounted_it_answers_as_standalone_does(service, monkeypatch, caplog) -> None:
    """In a host app: its session signs in (no token prompt), the same security headers,
    problem documents for every error (never the host's HTML page or an exception's text)."""
    from flask import session

    app = Flask("continuum")
    app.secret_key = uuid.uuid4().hex

    @app.post("/login")
    def login() -> str:
        session["user"] = "admin"
        return ""

    app.register_blueprint(
        admin_blueprint(service, authorize=lambda req: session.get("user") == "admin"), url_prefix="/admin/integrations"
    )
    client = app.test_client()
    refused = client.get("/admin/integrations/api/vendors")
    assert refused.status_code == 401 and refused.mimetype == "application/problem+json"
    assert_secure(refused)
    page = client.get("/admin/integrations/")
    assert_secure(page)
    html = page.get_data(as_text=True)
    assert 'data-auth="session"' in html and 'id="token"' not in html and 'id="login-error"' in html
    assert client.post("/login").status_code == 200
    assert_secure(client.get("/admin/integrations/api/vendors"))
    missing = client.get("/admin/integrations/api/integrations/nope")
    assert missing.status_code == 404 and missing.mimetype == "application/problem+json"

    def broken() -> None:
        raise RuntimeError("internal detail with a credential sk-live-123")

    monkeypatch.setattr(service, "vendors", broken)
    failed = client.get("/admin/integrations/api/vendors")
    assert failed.status_code == 500 and failed.mimetype == "application/problem+json"
    assert failed.json["detail"] == "RuntimeError; see the server log"
    assert_secure(failed)
    assert "sk-live-123" not in failed.get_data(as_text=True) + caplog.text


def test_standalone_the_page_asks_for_the_token(client) -> None:
    html = client.get("/").get_data(as_text=True)
    assert 'id="token"' in html and "data-auth" not in html


def test_a_method_not_allowed_says_which_are(client, service) -> None:
    for method, path, allow in (
        ("PUT", "/api/vendors", "GET, HEAD, OPTIONS"),
        ("GET", "/api/integrations/x/test", "OPTIONS, POST"),
        ("PATCH", "/api/rules/x", "DELETE, OPTIONS, PUT"),
        ("DELETE", "/api/integrations", "GET, HEAD, OPTIONS, POST"),
    ):
        response = client.open(path, method=method, headers=WRITE)
        assert response.status_code == 405 and response.mimetype == "application/problem+json", (method, path)
        assert response.headers["Allow"] == allow, (method, path)
    app = Flask("continuum")
    app.register_blueprint(admin_blueprint(service, authorize=lambda req: True), url_prefix="/admin/integrations")
    mounted = app.test_client()
    response = mounted.put("/admin/integrations/api/vendors", headers=WRITE)
    assert response.status_code == 405 and response.headers["Allow"] == "GET, HEAD, OPTIONS"
    assert response.mimetype == "application/problem+json"
    assert_secure(response)
    unknown = mounted.get("/admin/integrations/api/nothing-here")
    assert unknown.status_code == 404 and unknown.mimetype == "application/problem+json"
    assert_secure(unknown)


def test_rules_include_the_built_in_defaults(client) -> None:
    def listed() -> dict[str, dict]:
        return {r["name"]: r for r in client.get("/api/rules", headers=READ).json}

    rules = listed()
    assert rules["monitoring-default"]["built_in"] is True and rules["monitoring-default"]["priority"] == 1000
    assert "printer.offline" in rules["monitoring-default"]["event_types"]
    assert all(r["built_in"] is False for name, r in rules.items() if name.startswith("api-"))
    # A category's own routing rule replaces the built-in one.
    own = {"category": "monitoring", "event_types": ["printer.offline"], "priority": 5}
    assert client.put("/api/rules/api-monitoring-own", json=own, headers=WRITE).status_code == 200
    try:
        rules = listed()
        assert rules["api-monitoring-own"]["built_in"] is False and "monitoring-default" not in rules
    finally:
        assert client.delete("/api/rules/api-monitoring-own", headers=WRITE).status_code == 204
    assert listed()["monitoring-default"]["built_in"] is True


# -- reading ----------------------------------------------------------------------------------
def test_vendors_describe_every_form(client) -> None:
    vendors = {v["vendor"]: v for v in client.get("/api/vendors", headers=READ).json}
    assert len(vendors) == 11 and {v["category"] for v in vendors.values()} == {"logging", "monitoring", "alerting"}
    fields = {f["name"]: f for f in vendors["splunk"]["fields"]}
    assert fields["url"]["required"] and fields["token"]["secret"] and not fields["index"]["required"]
    assert {f["name"] for f in vendors["datadog"]["fields"]} >= {"site", "api_key"}
    assert [f["name"] for f in vendors["pagerduty"]["fields"] if f["secret"]] == ["routing_key", "heartbeat_url"]


def test_the_openapi_description_is_valid(client) -> None:
    document = client.get("/api/openapi.json").json
    validate(document)
    assert "/api/integrations/{name}/dead-letters/redrive" in document["paths"]


# -- connecting -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("change", "field", "message"),
    [
        ({"vendor": "fax"}, "vendor", "unknown vendor"),
        ({"name": "Bad Name"}, "name", "cannot name an integration"),
        ({"options": {"index": "printers"}}, "integration", "splunk needs url"),
        ({"options": {"url": "http://127.0.0.1:1", "tokn": "x"}}, "options.tokn", "no option 'tokn'"),
        ({"allow_insecure_http": False}, "options.url", "plain http"),
        ({"allow_private_network": False}, "options.url", "loopback"),
        (
            {"options": {"url": "https://metadata.internal"}, "allow_private_network": False},
            "options.url",
            "link-local",
        ),
        (
            {"options": {"url": "https://mapped.example"}, "allow_private_network": False},
            "options.url",
            "inside an IPv6 address",
        ),
        ({"start_from": "yesterday"}, "start_from", "'latest' or 'earliest'"),
        ({"filters": [{"event_types": ["printer.explode"]}]}, "filters.0", "matches no event type"),
        # The way out is the operator's: a proxy of a user's choosing could read every request.
        ({"proxy": {"https_proxy": "http://attacker.example:3128"}}, "proxy", "set by the operator"),
    ],
)
def test_bad_forms_get_field_level_messages(client, splunk, service, change, field, message) -> None:
    form = {**splunk_form("api-bad", splunk), **change}
    response = client.post("/api/integrations", json=form, headers=WRITE)
    assert response.status_code == 422 and response.mimetype == "application/problem+json"
    errors = {e["field"]: e["message"] for e in response.json["errors"]}
    assert field in errors and message in errors[field], errors
    assert not (service.secrets_dir / "api-bad").exists(), "no secret stored for a refused form"


def test_connect_stores_the_secret_and_delivers(client, service, splunk, host, broker, tmp_path) -> None:
    response = client.post("/api/integrations", json=splunk_form("api-splunk", splunk), headers=WRITE)
    assert response.status_code == 201, response.json
    assert response.json["secrets"]["token"]["set"] is True
    stored = Path(response.json["secrets"]["token"]["reference"].removeprefix("file "))
    assert stored.read_text() == SplunkReceiver.TOKEN and stat.S_IMODE(stored.stat().st_mode) == 0o600

    ids = produce(broker, "api-splunk", 20, tmp_path)
    wait_until(lambda: set(ids) <= set(splunk.received.event_ids))

    def status() -> dict:
        return client.get("/api/integrations/api-splunk", headers=READ).json

    wait_until(lambda: status()["status"].get("delivered", 0) >= 20)
    # The last hour, per minute, from the status topic: the 20 delivered show as a rate.
    wait_until(
        lambda: (
            sum(r or 0 for r in client.get("/api/integrations/api-splunk/history", headers=READ).json["rate"]) * 60
            >= 20
        )
    )
    history = client.get("/api/integrations/api-splunk/history", headers=READ).json
    assert len(history["rate"]) == len(history["lag"]) == 60 and history["lag"][-1] == 0
    assert client.get("/api/integrations/api-none/history", headers=READ).status_code == 404
    row = status()
    assert row["badge"] == "Connected" and row["status"]["state"] == "healthy" and row["status"]["lag"] == 0
    assert any(i["name"] == "api-splunk" for i in client.get("/api/integrations", headers=READ).json)

    verdict = client.post("/api/integrations/api-splunk/test", headers=WRITE).json
    assert verdict["ok"] is True and abs(verdict["checked_at"] - time.time()) < 30
    splunk.auth_broken = True
    try:
        verdict = client.post("/api/integrations/api-splunk/test", headers=WRITE).json
        assert verdict == {
            "ok": False,
            "kind": "configuration",
            "verdict": verdict["verdict"],
            "checked_at": verdict["checked_at"],
        }
    finally:
        splunk.auth_broken = False

    # Connecting a name already connected asks first: 409, nothing changed, unless replace is said.
    taken = client.post(
        "/api/integrations",
        json={**splunk_form("api-splunk", splunk), "options": {"url": splunk.url, "index": "other"}},
        headers=WRITE,
    )
    assert taken.status_code == 409 and taken.json["errors"] == [{"field": "name", "message": "already connected"}]
    assert client.get("/api/integrations/api-splunk", headers=READ).json["options"]["index"] == "printers"
    # Editing (PUT, the whole form) without retyping the secret keeps the stored one.
    again = client.put(
        "/api/integrations/api-splunk",
        json={
            **splunk_form("api-splunk", splunk),
            "secrets": {"token": ""},
            "options": {"url": splunk.url, "index": "edited"},
        },
        headers=WRITE,
    )
    assert again.status_code == 200 and again.json["secrets"]["token"]["reference"] == f"file {stored}"
    assert again.json["options"]["index"] == "edited"
    for change, field in (({"name": "api-other"}, "name"), ({"vendor": "datadog"}, "vendor")):
        refused = client.put(
            "/api/integrations/api-splunk", json={**splunk_form("api-splunk", splunk), **change}, headers=WRITE
        )
        assert refused.status_code == 422 and refused.json["errors"][0]["field"] == field, refused.json
    assert (
        client.put("/api/integrations/api-none", json=splunk_form("api-none", splunk), headers=WRITE).status_code == 404
    )
    replaced = client.post(
        "/api/integrations", json={**splunk_form("api-splunk", splunk), "replace": True}, headers=WRITE
    )
    assert replaced.status_code == 201 and replaced.json["options"]["index"] == "printers"


def test_secrets_through_the_api_are_values_never_references(
    client, service, splunk, tmp_path, monkeypatch, caplog
) -> None:
    """An admin must not make the server read another integration's secret file or its own
    admin token and send it to a vendor address of the admin's choosing."""
    other = tmp_path / "other-integration-token"
    other.write_text("other-integrations-secret")
    other.chmod(0o600)
    monkeypatch.setenv("CONTINUUM_ADMIN_TOKEN", TOKEN)
    for reference in ({"file": str(other)}, {"env": "CONTINUUM_ADMIN_TOKEN"}):
        form = {**splunk_form("api-ref", splunk), "secrets": {"token": reference}}
        response = client.post("/api/integrations", json=form, headers=WRITE)
        assert response.status_code == 422, response.json
        errors = {e["field"]: e["message"] for e in response.json["errors"]}
        assert "secret's value" in errors["secrets.token"] and "integrations file" in errors["secrets.token"]
    assert client.get("/api/integrations/api-ref", headers=READ).status_code == 404
    assert not (service.secrets_dir / "api-ref").exists()

    # The operator's file still names references; the API keeps them while the address stays.
    from continuum_events import operations
    from continuum_events.integrations import IntegrationSpec

    spec = IntegrationSpec.model_validate(
        {**splunk_form("api-yaml", splunk), "secrets": {"token": {"file": str(other)}}}
    )
    operations.connect(service.settings, spec)
    service._wait_for(lambda: "integration/api-yaml" in service.store.values())
    kept = client.put(
        "/api/integrations/api-yaml", json={**splunk_form("api-yaml", splunk), "secrets": {"token": ""}}, headers=WRITE
    )
    assert kept.status_code == 200 and kept.json["secrets"]["token"]["reference"] == f"file {other}"
    assert client.delete("/api/integrations/api-yaml", headers=WRITE).status_code == 204
    everything = caplog.text + "".join(Responses.bodies)
    assert "other-integrations-secret" not in everything and TOKEN not in everything.replace(f"Bearer {TOKEN}", "")


def test_changing_the_address_needs_the_secrets_again(client, service, splunk) -> None:
    assert client.post("/api/integrations", json=splunk_form("api-move", splunk), headers=WRITE).status_code == 201
    try:
        moved = {
            **splunk_form("api-move", splunk),
            "options": {"url": "http://127.0.0.1:9/", "index": "printers"},
            "secrets": {"token": ""},
        }
        response = client.put("/api/integrations/api-move", json=moved, headers=WRITE)
        assert response.status_code == 422, response.json
        errors = {e["field"]: e["message"] for e in response.json["errors"]}
        assert "options.url changed" in errors["secrets.token"]
        stored = client.get("/api/integrations/api-move", headers=READ).json
        assert stored["options"]["url"] == splunk.url, "nothing changed"
        retyped = client.put(
            "/api/integrations/api-move", json={**moved, "secrets": {"token": SplunkReceiver.TOKEN}}, headers=WRITE
        )
        assert retyped.status_code == 200 and retyped.json["options"]["url"] == "http://127.0.0.1:9/"
    finally:
        assert client.delete("/api/integrations/api-move", headers=WRITE).status_code == 204


def integration_topics_left(service, name: str) -> list[str]:
    from confluent_kafka.admin import AdminClient

    from continuum_events.topology import Topology

    existing = AdminClient(service.settings.client_config()).list_topics(timeout=10).topics
    return [t.name for t in Topology().integration_topics(name) if t.name in existing]


def test_a_body_nested_too_deep_is_refused_by_field(client) -> None:
    deep = "[" * 100_000 + "]" * 100_000
    response = client.post(
        "/api/integrations",
        data='{"name": "api-deep", "options": ' + deep + "}",
        headers={**WRITE, "Content-Type": "application/json"},
    )
    assert response.status_code == 400 and response.mimetype == "application/problem+json"
    assert response.json["errors"] == [{"field": "options", "message": "nested deeper than 32 levels"}]
    response = client.put("/api/rules/api-deep", data=deep, headers={**WRITE, "Content-Type": "application/json"})
    assert response.status_code == 400 and response.json["errors"][0]["field"] == "body"


def test_a_huge_value_is_refused_before_anything_is_made(client, service, splunk) -> None:
    form = splunk_form("api-huge", splunk)
    response = client.post(
        "/api/integrations", headers=WRITE, json={**form, "options": {**form["options"], "index": "x" * 1_000_000}}
    )
    assert response.status_code == 422, response.json
    assert response.json["errors"] == [{"field": "options.index", "message": "at most 2048 characters"}]
    many = [{"where": {"printer_location": [f"{i}-{'x' * 500}" for i in range(200)]}}]
    response = client.post("/api/integrations", json={**form, "filters": many}, headers=WRITE)
    assert response.status_code == 422 and response.json["errors"][0]["field"] == "filters"
    response = client.post("/api/integrations", json={**form, "secrets": {"token": "t" * 100_000}}, headers=WRITE)
    assert response.status_code == 422 and response.json["errors"][0]["field"] == "secrets.token"
    assert not integration_topics_left(service, "api-huge") and not (service.secrets_dir / "api-huge").exists()
    assert client.get("/api/integrations/api-huge", headers=READ).status_code == 404


def test_a_connect_kafka_refuses_is_undone(client, service, splunk, monkeypatch) -> None:
    from confluent_kafka import KafkaError, KafkaException

    from continuum_events import operations

    assert client.post("/api/integrations", json=splunk_form("api-keep", splunk), headers=WRITE).status_code == 201
    before = sorted((service.secrets_dir / "api-keep").iterdir())

    def refuse(*args, **kwargs):
        raise KafkaException(KafkaError(KafkaError.MSG_SIZE_TOO_LARGE))

    monkeypatch.setattr(operations, "write_config", refuse)
    response = client.post("/api/integrations", json=splunk_form("api-undo", splunk), headers=WRITE)
    assert response.status_code == 503 and response.mimetype == "application/problem+json"
    wait_until(lambda: not integration_topics_left(service, "api-undo"), 20)
    assert not (service.secrets_dir / "api-undo").exists()
    # A failed edit leaves the running integration's secret as it was.
    edit = client.put(
        "/api/integrations/api-keep",
        json={**splunk_form("api-keep", splunk), "secrets": {"token": "new-one"}},
        headers=WRITE,
    )
    assert edit.status_code == 503
    assert sorted((service.secrets_dir / "api-keep").iterdir()) == before
    assert before[0].read_text() == SplunkReceiver.TOKEN
    monkeypatch.undo()
    assert client.delete("/api/integrations/api-keep", headers=WRITE).status_code == 204


def test_a_secret_an_http_header_cannot_carry_is_refused(client, service, splunk, tmp_path, caplog) -> None:
    from continuum_events import operations
    from continuum_events.integrations import IntegrationSpec

    secret = "t\u00f6k\u00e9n\u2013\u20ac-" + uuid.uuid4().hex
    response = client.post(
        "/api/integrations", json={**splunk_form("api-latin", splunk), "secrets": {"token": secret}}, headers=WRITE
    )
    assert response.status_code == 422 and response.json["errors"][0]["field"] == "secrets.token"
    assert not (service.secrets_dir / "api-latin").exists()
    # One the operator's file refers to, found at Test Connection.
    path = tmp_path / "latin-token"
    path.write_text(secret, encoding="utf-8")
    path.chmod(0o600)
    spec = IntegrationSpec.model_validate(
        {**splunk_form("api-latin", splunk), "secrets": {"token": {"file": str(path)}}}
    )
    operations.connect(service.settings, spec)
    service._wait_for(lambda: "integration/api-latin" in service.store.values())
    try:
        response = client.post("/api/integrations/api-latin/test", headers=WRITE)
        assert response.status_code == 422 and response.mimetype == "application/problem+json", response.data[:300]
        assert response.json["errors"][0]["field"] == "secrets.token"
    finally:
        assert client.delete("/api/integrations/api-latin", headers=WRITE).status_code == 204
    for text in (caplog.text, *Responses.bodies):
        assert secret not in text and secret[:6] not in text


def test_the_badge_says_whether_a_connector_runs_it(client, splunk) -> None:
    """Configured is not running: no connector follows api-idle (the host runs only its own)."""
    assert client.post("/api/integrations", json=splunk_form("api-idle", splunk), headers=WRITE).status_code == 201
    try:
        row = client.get("/api/integrations/api-idle", headers=READ).json
        assert row["status"]["state"] == "not running" and row["badge"] == "Not running"
    finally:
        assert client.delete("/api/integrations/api-idle", headers=WRITE).status_code == 204


def test_errors_are_counted_over_connector_restarts_and_a_recovery_clears_the_last(client, broker, tmp_path) -> None:
    settings = KafkaSettings(bootstrap_servers=broker.bootstrap_servers)

    def status() -> dict:
        return client.get("/api/integrations/api-errors", headers=READ).json["status"]

    def run(until) -> None:
        """One run of a connector host for this integration, stopped once ``until`` holds."""
        stop = threading.Event()
        thread = threading.Thread(target=ConnectorHost(settings, only={"api-errors"}).run, args=(stop,), daemon=True)
        thread.start()
        try:
            wait_until(until, 90)
        finally:
            stop.set()
            thread.join(30)

    with SplunkReceiver() as vendor:
        assert (
            client.post("/api/integrations", json=splunk_form("api-errors", vendor), headers=WRITE).status_code == 201
        )
        try:
            vendor.down = True
            first = produce(broker, "api-errors", 5, tmp_path)
            seen: dict = {}

            def failing_then_recovered() -> bool:
                now = status()
                if now.get("errors", 0) >= 2 and now.get("last_error") and vendor.down:
                    seen.update(now)
                    vendor.down = False  # the vendor is back: the next delivery supersedes the error
                return (
                    not vendor.down
                    and set(first) <= set(vendor.received.event_ids)
                    and now.get("last_error") is None
                    and now.get("delivered", 0) >= 5
                )

            run(failing_then_recovered)
            assert "503" in seen["last_error"] and abs(seen["last_error_at"] - time.time()) < 120, seen
            wait_until(lambda: status()["state"] == "not running")
            total = status()["errors"]
            assert total >= seen["errors"]

            # A new run counts from zero; the integration's total keeps the earlier run's.
            second = produce(broker, "api-errors", 3, tmp_path)
            run(lambda: set(second) <= set(vendor.received.event_ids) and status().get("delivered", 0) >= 3)
            after = status()
            assert after["errors"] == total and after["last_error"] is None, after
        finally:
            assert client.delete("/api/integrations/api-errors", headers=WRITE).status_code == 204


def test_filters_and_rules_are_viewed_and_edited(client, splunk) -> None:
    assert client.post("/api/integrations", json=splunk_form("api-rules", splunk), headers=WRITE).status_code == 201
    bad = client.put("/api/integrations/api-rules/filters", json={"filters": [{"drop": ["nope"]}]}, headers=WRITE)
    assert bad.status_code == 422 and "unknown field 'nope'" in bad.json["errors"][0]["message"]
    ok = client.put(
        "/api/integrations/api-rules/filters",
        json={"filters": [{"event_types": ["printer.*"], "mask": ["printer_ip"]}]},
        headers=WRITE,
    )
    assert ok.status_code == 200 and ok.json["filters"][0]["mask"] == ["printer_ip"]
    rules = client.get("/api/rules", headers=READ).json
    assert any(r["name"] == "api-rules.filter.0" and r["mask"] == ["printer_ip"] for r in rules)

    rule = client.put(
        "/api/rules/api-alerting-finance",
        headers=WRITE,
        json={
            "category": "alerting",
            "event_types": ["printer.offline"],
            "priority": 5,
            "where": {"printer_department": "Finance-API"},
        },
    )
    assert rule.status_code == 200
    assert client.put("/api/rules/x", json={"category": "nowhere"}, headers=WRITE).status_code == 422
    assert client.delete("/api/rules/api-alerting-finance", headers=WRITE).status_code == 204
    assert client.delete("/api/rules/api-alerting-finance", headers=WRITE).status_code == 404
    assert client.delete("/api/integrations/api-rules", headers=WRITE).status_code == 204
    assert client.get("/api/integrations/api-rules", headers=READ).status_code == 404
    assert client.delete("/api/integrations/api-rules", headers=WRITE).status_code == 404


def test_dead_letters_redrive_and_replay_as_jobs(client, splunk, host, broker, tmp_path) -> None:
    form = splunk_form("api-replay", splunk, start_from="earliest")
    assert client.post("/api/integrations", json=form, headers=WRITE).status_code == 201
    ids = produce(broker, "api-replay", 12, tmp_path)
    refused = set(ids[:3])
    splunk.refuse_ids |= refused
    wait_until(lambda: set(ids) - refused <= set(splunk.received.event_ids))
    wait_until(lambda: client.get("/api/integrations/api-replay/dead-letters", headers=READ).json["waiting"] == 3)
    letters = client.get("/api/integrations/api-replay/dead-letters", headers=READ).json
    assert letters["groups"][0]["event_types"] == {"printer.offline": 3}

    splunk.refuse_ids -= refused
    job = client.post("/api/integrations/api-replay/dead-letters/redrive", json={}, headers=WRITE)
    assert job.status_code == 202
    done = _finish(client, job.json["id"])
    assert done["state"] == "done" and done["result"]["delivered"] == 3
    assert {i: splunk.received.event_ids[i] for i in ids} == dict.fromkeys(ids, 1)

    bad = client.post("/api/integrations/api-replay/replay", json={"from": "last tuesday"}, headers=WRITE)
    assert bad.status_code == 422 and bad.json["errors"][0]["field"] == "from/to"
    replay = client.post("/api/integrations/api-replay/replay", json={"from": "1h"}, headers=WRITE)
    done = _finish(client, replay.json["id"])
    assert done["state"] == "done" and done["result"]["delivered"] == len(ids)
    assert all(splunk.received.event_ids[i] == 2 for i in ids)
    assert client.get("/api/jobs/nope", headers=READ).status_code == 404
    assert client.post("/api/integrations/nope/replay", json={"from": "1h"}, headers=WRITE).status_code == 404


def _finish(client, job_id: str) -> dict:
    deadline = time.monotonic() + 60
    while True:
        job = client.get(f"/api/jobs/{job_id}", headers=READ).json
        if job["state"] != "running" or time.monotonic() > deadline:
            return job
        time.sleep(0.2)


def test_no_response_ever_held_a_secret() -> None:
    assert Responses.bodies, "the other tests ran first"
    leaked = [b for b in Responses.bodies if SplunkReceiver.TOKEN in b]
    assert not leaked


def test_the_standalone_command_refuses_to_run_open_or_without_kafka(monkeypatch) -> None:
    from typer.testing import CliRunner

    from continuum_events.cli.main import app

    monkeypatch.delenv("CONTINUUM_ADMIN_TOKEN", raising=False)
    result = CliRunner().invoke(app, ["admin", "-b", "127.0.0.1:1"])
    assert result.exit_code == 2 and "never open" in " ".join(result.output.split())
    monkeypatch.setenv("CONTINUUM_ADMIN_TOKEN", TOKEN)
    result = CliRunner().invoke(app, ["admin", "-b", "127.0.0.1:1"])
    assert result.exit_code == 1 and "cannot reach Kafka" in " ".join(result.output.split())
    assert TOKEN not in result.output
