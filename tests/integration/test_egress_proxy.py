"""Vendor traffic through an enterprise egress proxy (continuum_events/egress.py): every
HTTP vendor delivers through a CONNECT proxy of the test's own (tests/egress_proxy.py)
to a receiver serving verified TLS as ``localhost``; the address rules still judge the
vendor's name; no_proxy and a per-integration ``proxy:`` override the global setting; a
proxy that refuses (407, 502) is a configuration problem with a clear message; no proxy
credential reaches a log or an error."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from continuum_events.connectors.base import ConfigError, Retry, SinkContext
from continuum_events.devtools.receivers import (
    DatadogReceiver,
    ElasticsearchReceiver,
    GrafanaReceiver,
    NewRelicReceiver,
    OpsgenieReceiver,
    PagerDutyReceiver,
    SplunkReceiver,
    VictorOpsReceiver,
)
from continuum_events.events import Event, EventType, Severity, now_micros
from continuum_events.integrations import IntegrationSpec
from tests.daemons import PushgatewayFront
from tests.egress_proxy import ConnectProxy, Pki, make_pki, serve_tls

PASSWORD = "proxy-pass-" + uuid.uuid4().hex
#: vendor -> (receiver, options beyond url, secrets: field -> value)
VENDORS: dict[str, tuple[Callable[[], object], dict, dict[str, str]]] = {
    "splunk": (SplunkReceiver, {"index": "printers"}, {"token": SplunkReceiver.TOKEN}),
    "elasticsearch": (ElasticsearchReceiver, {}, {"api_key": ElasticsearchReceiver.API_KEY}),
    "datadog": (DatadogReceiver, {}, {"api_key": DatadogReceiver.API_KEY}),
    "grafana": (GrafanaReceiver, {}, {"token": GrafanaReceiver.TOKEN}),
    "newrelic": (
        NewRelicReceiver,
        {"account_id": NewRelicReceiver.ACCOUNT_ID},
        {"license_key": NewRelicReceiver.LICENSE_KEY},
    ),
    "pagerduty": (PagerDutyReceiver, {}, {"routing_key": PagerDutyReceiver.ROUTING_KEY}),
    "opsgenie": (OpsgenieReceiver, {}, {"api_key": OpsgenieReceiver.API_KEY}),
    "victorops": (
        VictorOpsReceiver,
        {},
        {"api_key": VictorOpsReceiver.API_KEY, "routing_key": VictorOpsReceiver.ROUTING_KEY},
    ),
    "pushgateway": (PushgatewayFront, {"username": PushgatewayFront.USERNAME}, {"password": PushgatewayFront.PASSWORD}),
}


@pytest.fixture(scope="module")
def pki(tmp_path_factory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


def event() -> Event:
    return Event(
        str(uuid.uuid4()),
        EventType.PRINTER_OFFLINE,
        Severity.ERROR,
        now_micros(),
        {
            "printer_id": "px-1",
            "printer_name": "Proxy 1",
            "printer_ip": "10.1.0.9",
            "printer_location": "HQ",
            "consecutive_failures": 3,
        },
    )


def spec(vendor: str, url: str, env: dict[str, str], **extra) -> IntegrationSpec:
    _, options, secrets = VENDORS[vendor]
    refs = {}
    for name, value in secrets.items():
        env[f"PX_{vendor}_{name}".upper()] = value
        refs[name] = {"env": f"PX_{vendor}_{name}".upper()}
    return IntegrationSpec.model_validate(
        {
            "name": f"px-{vendor}",
            "vendor": vendor,
            "options": {"url": url, **options},
            "secrets": refs,
            "allow_private_network": True,
            **extra,
        }
    )


def environ(proxy: ConnectProxy, pki: Pki, tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {"CONTINUUM_EGRESS_HTTPS_PROXY": proxy.url, "CONTINUUM_EGRESS_CA_BUNDLE": str(pki.ca), **extra}
    if proxy.username:
        password = tmp_path / "proxy-password"
        password.write_text(PASSWORD + "\n")
        password.chmod(0o600)
        env |= {
            "CONTINUUM_EGRESS_PROXY_USERNAME": proxy.username,
            "CONTINUUM_EGRESS_PROXY_PASSWORD_FILE": str(password),
        }
    return env


@pytest.fixture
def logs(caplog) -> Iterator[pytest.LogCaptureFixture]:
    caplog.set_level(logging.DEBUG)  # urllib3's DEBUG lines name every connection and request
    yield caplog
    assert PASSWORD not in caplog.text


@pytest.mark.broker
@pytest.mark.parametrize("vendor", sorted(VENDORS))
def test_every_http_vendor_delivers_through_the_proxy_over_verified_tls(vendor, pki, tmp_path, logs, settings) -> None:
    with ConnectProxy(username="svc-continuum", password=PASSWORD) as proxy, VENDORS[vendor][0]() as receiver:
        serve_tls(receiver, pki)
        env = environ(proxy, pki, tmp_path)
        sink = spec(vendor, receiver.url, env).build_sink(env)
        if hasattr(sink, "open"):  # the alerting sinks and Grafana keep an incident ledger in Kafka
            sink.open(SinkContext(f"px-{vendor}-{uuid.uuid4().hex[:6]}", settings))
        try:
            e = event()
            receiver.expect({e.event_id: e.payload})
            result = sink.write([e])
            assert not result.rejected and not result.retry, result
        finally:
            sink.close()
        port = receiver.url.rsplit(":", 1)[1]
        assert proxy.connects() and set(proxy.connects()) == {f"localhost:{port}"}, proxy.seen
        assert receiver.received.requests >= 1
        if vendor != "pushgateway":  # a gateway shows printers, not events
            assert e.event_id in receiver.received.event_ids
        # The tunnel carried TLS: the proxy read only its own CONNECT header, never a request.
        assert all(h.startswith(b"CONNECT ") for h in proxy.raw)
        assert not any(VENDORS[vendor][2][k].encode() in b"".join(proxy.raw) for k in VENDORS[vendor][2])


def test_tls_through_the_tunnel_is_verified_for_the_vendors_name(pki, tmp_path, logs) -> None:
    with ConnectProxy() as proxy, SplunkReceiver() as receiver:
        serve_tls(receiver, pki)
        env = environ(proxy, pki, tmp_path)
        del env["CONTINUUM_EGRESS_CA_BUNDLE"]  # the system's CAs do not know the test CA
        sink = spec("splunk", receiver.url, env).build_sink(env)
        with pytest.raises(Retry, match="SSLError"):
            sink.write([event()])
        assert proxy.connects(), "the tunnel was opened; the certificate was refused at its end"
        assert receiver.received.requests == 0


def test_the_address_rules_judge_the_vendors_name_not_the_proxys(pki, tmp_path, logs) -> None:
    with ConnectProxy() as proxy, SplunkReceiver() as receiver:
        serve_tls(receiver, pki)
        env = environ(proxy, pki, tmp_path)
        # localhost is loopback: refused unless the integration allows a private target,
        # though the proxy (also on loopback) is the operator's and never judged.
        sink = spec("splunk", receiver.url, env, allow_private_network=False).build_sink(env)
        with pytest.raises(ConfigError, match="address refused.*loopback"):
            sink.write([event()])
        assert proxy.seen == [], "nothing reached the proxy"


def test_no_proxy_and_an_integrations_own_proxy_override_the_global_one(pki, tmp_path, logs) -> None:
    with ConnectProxy() as global_, ConnectProxy() as own, SplunkReceiver() as receiver:
        serve_tls(receiver, pki)
        env = environ(global_, pki, tmp_path, CONTINUUM_EGRESS_NO_PROXY="example.com, localhost")
        sink = spec("splunk", receiver.url, env).build_sink(env)
        assert not sink.write([event()]).retry and global_.seen == [], "no_proxy: direct"
        sink.close()

        env = environ(global_, pki, tmp_path)
        sink = spec("splunk", receiver.url, env, proxy={"https_proxy": own.url, "ca_bundle": str(pki.ca)}).build_sink(
            env
        )
        assert not sink.write([event()]).retry
        sink.close()
        assert own.connects() and global_.seen == [], "its own proxy, not the global one"

        sink = spec("splunk", receiver.url, env, proxy={"https_proxy": None, "ca_bundle": str(pki.ca)}).build_sink(env)
        assert not sink.write([event()]).retry
        sink.close()
        assert global_.seen == [] and len(own.seen) == 1, "https_proxy: null goes direct"
        assert receiver.received.requests == 3


@pytest.mark.parametrize(
    "refusal, expected",
    [
        (
            "credentials",
            r"the proxy at 127\.0\.0\.1:\d+ refused the tunnel to localhost \(HTTP 407 Proxy "
            r"Authentication Required\) — check the proxy credentials",
        ),
        (502, r"the proxy at 127\.0\.0\.1:\d+ refused the tunnel to localhost \(HTTP 502 Bad Gateway\)"),
    ],
)
def test_a_proxy_that_refuses_is_a_configuration_problem_named_clearly(refusal, expected, pki, tmp_path, logs) -> None:
    wrong = "wrong-" + PASSWORD
    proxy_kwargs = {"username": "svc", "password": PASSWORD} if refusal == "credentials" else {"refuse": refusal}
    with ConnectProxy(**proxy_kwargs) as proxy, SplunkReceiver() as receiver:
        serve_tls(receiver, pki)
        env = environ(proxy, pki, tmp_path)
        if refusal == "credentials":
            env |= {
                "CONTINUUM_EGRESS_PROXY_USERNAME": "svc",
                "CONTINUUM_EGRESS_PROXY_PASSWORD_ENV": "PX_WRONG",
                "PX_WRONG": wrong,
            }
            env.pop("CONTINUUM_EGRESS_PROXY_PASSWORD_FILE", None)
        sink = spec("splunk", receiver.url, env).build_sink(env)
        with pytest.raises(ConfigError, match=expected) as refused:
            sink.write([event()])
        assert wrong not in str(refused.value) and PASSWORD not in str(refused.value)
        assert receiver.received.requests == 0
        assert wrong not in logs.text


def test_a_bad_proxy_setting_is_an_error_naming_the_setting(tmp_path) -> None:
    from continuum_events.integrations import IntegrationError

    env = {"CONTINUUM_EGRESS_HTTPS_PROXY": f"http://svc:{PASSWORD}@proxy.corp.example:3128"}
    with pytest.raises(IntegrationError, match="credentials as username and password") as bad:
        spec("splunk", "https://localhost:1", env).build_sink(env)
    assert PASSWORD not in str(bad.value)
    env = {"CONTINUUM_EGRESS_HTTPS_PROXY": "socks5://proxy.corp.example:1080"}
    with pytest.raises(IntegrationError, match="http://host:port"):
        spec("splunk", "https://localhost:1", env).build_sink(env)
    with pytest.raises(ValueError, match="https_proxy"):
        spec("splunk", "https://localhost:1", {}, proxy={"https_proxy": "ftp://x"})


def test_a_plain_http_vendor_is_forwarded_and_a_407_there_is_named_too(pki, tmp_path, logs) -> None:
    with ConnectProxy(username="svc", password=PASSWORD) as proxy, SplunkReceiver() as receiver:
        env = environ(proxy, pki, tmp_path) | {"CONTINUUM_EGRESS_PROXY_USERNAME": "svc"}
        sink = spec("splunk", receiver.url, env, allow_insecure_http=True).build_sink(env)
        e = event()
        assert not sink.write([e]).retry
        assert e.event_id in receiver.received.event_ids
        assert [(t.method, t.target.startswith(receiver.url)) for t in proxy.seen] == [("POST", True)]
        sink.close()
        env["CONTINUUM_EGRESS_PROXY_USERNAME"] = "someone-else"
        sink = spec("splunk", receiver.url, env, allow_insecure_http=True).build_sink(env)
        with pytest.raises(ConfigError, match=r"the proxy at 127\.0\.0\.1:\d+ asks for credentials \(HTTP 407\)"):
            sink.write([event()])
        sink.close()
