"""Which vendors exist, their default category, and how a sink is built from plain
options and secrets held in environment variables (never passed as values)::

    sink = build_sink("splunk", {"url": "https://splunk:8088", "index": "printers"}, {"token": "SPLUNK_HEC_TOKEN"})

A sink built here — from what a user configured — sends under a
:class:`~continuum_events.netguard.TargetPolicy`: public https addresses only, unless
private targets or plain http are allowed explicitly, checked at every connection.
"""

from __future__ import annotations

import dataclasses
import os
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import SecretStr

from continuum_events.connectors.base import Limits, Sink
from continuum_events.connectors.datadog import DatadogConfig, DatadogSink
from continuum_events.connectors.elasticsearch import ElasticsearchConfig, ElasticsearchSink
from continuum_events.connectors.grafana import GrafanaConfig, GrafanaSink
from continuum_events.connectors.http import HttpClient
from continuum_events.connectors.newrelic import NewRelicConfig, NewRelicSink
from continuum_events.connectors.nsca import NscaConfig, NscaSink
from continuum_events.connectors.opsgenie import OpsgenieConfig, OpsgenieSink
from continuum_events.connectors.pagerduty import PagerDutyConfig, PagerDutySink
from continuum_events.connectors.pushgateway import PushgatewayConfig, PushgatewaySink
from continuum_events.connectors.splunk import SplunkConfig, SplunkHecSink
from continuum_events.connectors.syslog import SyslogConfig, SyslogSink
from continuum_events.connectors.victorops import VictorOpsConfig, VictorOpsSink
from continuum_events.egress import EgressProxy, global_proxy
from continuum_events.netguard import TargetPolicy


@dataclass(frozen=True)
class VendorSpec:
    category: str
    config: type
    sink: Callable[..., Sink]
    #: "http": the sink takes an HttpClient (``client=``); "tcp": its own sockets (``policy=``).
    transport: str = "http"


VENDORS: dict[str, VendorSpec] = {
    "splunk": VendorSpec("logging", SplunkConfig, SplunkHecSink),
    "datadog": VendorSpec("logging", DatadogConfig, DatadogSink),
    "elasticsearch": VendorSpec("logging", ElasticsearchConfig, ElasticsearchSink),
    "syslog": VendorSpec("logging", SyslogConfig, SyslogSink, "tcp"),
    "pushgateway": VendorSpec("monitoring", PushgatewayConfig, PushgatewaySink),
    "grafana": VendorSpec("monitoring", GrafanaConfig, GrafanaSink),
    "newrelic": VendorSpec("monitoring", NewRelicConfig, NewRelicSink),
    "nsca": VendorSpec("monitoring", NscaConfig, NscaSink, "tcp"),
    "pagerduty": VendorSpec("alerting", PagerDutyConfig, PagerDutySink),
    "opsgenie": VendorSpec("alerting", OpsgenieConfig, OpsgenieSink),
    "victorops": VendorSpec("alerting", VictorOpsConfig, VictorOpsSink),
}


def _convert(name: str, kind: Any, text: str) -> Any:
    base = [a for a in typing.get_args(kind) if a is not type(None)] or [kind]
    target = base[0]
    if target is bool:
        if text.lower() in ("1", "true", "yes", "on"):
            return True
        if text.lower() in ("0", "false", "no", "off"):
            return False
        raise ValueError(f"{name}: expected true or false, got {text!r}")
    if target in (int, float):
        try:
            return target(text)
        except ValueError:
            raise ValueError(f"{name}: expected a number, got {text!r}") from None
    return text


def build_sink(
    vendor: str,
    options: Mapping[str, str],
    secrets: Mapping[str, str],
    environ: Mapping[str, str] = os.environ,
    *,
    policy: TargetPolicy = TargetPolicy(),
) -> Sink:
    """``secrets`` maps a config field to the environment variable holding its value."""
    spec = _spec(vendor)
    hints = typing.get_type_hints(spec.config)
    for name in options:
        if name in hints and "SecretStr" in str(hints[name]):
            raise ValueError(f"{vendor}: {name} is a secret: give the environment variable that holds it")
    values: dict[str, Any] = dict(options)
    for name, variable in secrets.items():
        if name not in hints or "SecretStr" not in str(hints[name]):
            raise ValueError(f"{vendor}: {name!r} is not a secret field of {vendor}")
        if variable not in environ:
            raise ValueError(f"{vendor}: environment variable {variable} (for {name}) is not set")
        values[name] = SecretStr(environ[variable])
    return make_sink(vendor, values, policy=policy, proxy=global_proxy(environ))


def make_sink(
    vendor: str,
    values: Mapping[str, Any],
    *,
    policy: TargetPolicy = TargetPolicy(),
    timeout_s: float | None = None,
    proxy: EgressProxy | None = None,
) -> Sink:
    """The sink from its config values; text values are converted to the field's type
    (options given on a command line), secrets must already be ``SecretStr``. Its sends
    follow ``policy``; ``timeout_s`` bounds each HTTP request (default: the vendor's); an
    HTTP vendor is reached through ``proxy`` when one is given (a TCP one never is)."""
    spec = _spec(vendor)
    hints = typing.get_type_hints(spec.config)
    fields = {f.name: f for f in dataclasses.fields(spec.config)}
    converted: dict[str, Any] = {}
    for name, value in values.items():
        if name not in fields:
            raise ValueError(f"{vendor}: unknown option {name!r}; options: {', '.join(fields)}")
        converted[name] = _convert(name, hints[name], value) if isinstance(value, str) else value
    missing = [
        n
        for n, f in fields.items()
        if n not in converted and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    ]
    if missing:
        raise ValueError(f"{vendor}: missing {', '.join(missing)}")
    config = spec.config(**converted)
    if spec.transport == "tcp":
        return spec.sink(config, policy=policy)
    limits: Limits = getattr(spec.sink, "limits")  # noqa: B009 - every sink class declares its limits
    return spec.sink(config, client=HttpClient(timeout_s or limits.timeout_s, policy=policy, proxy=proxy))


def _spec(vendor: str) -> VendorSpec:
    spec = VENDORS.get(vendor)
    if spec is None:
        raise ValueError(f"unknown vendor {vendor!r}; one of {', '.join(sorted(VENDORS))}")
    return spec
