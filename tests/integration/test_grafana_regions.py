"""Grafana: an outage is drawn as one region (offline to online), other events as
points; a replay does not redraw a region the ledger knows."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from pydantic import SecretStr

from continuum_events.broker import LocalBroker
from continuum_events.connectors.base import SinkContext
from continuum_events.connectors.grafana import GrafanaConfig, GrafanaSink
from continuum_events.devtools.receivers import GrafanaReceiver
from continuum_events.events import Event, EventType, Severity, new_event_id
from continuum_events.settings import KafkaSettings
from tests.integration.test_alerting import MINUTE, printer_event

pytestmark = pytest.mark.broker


@pytest.fixture
def grafana(broker: LocalBroker) -> Iterator[tuple[GrafanaReceiver, KafkaSettings]]:
    with GrafanaReceiver() as receiver:
        yield receiver, KafkaSettings(bootstrap_servers=broker.bootstrap_servers)


def sink_for(receiver: GrafanaReceiver, settings: KafkaSettings, name: str) -> GrafanaSink:
    sink = GrafanaSink(GrafanaConfig(receiver.url, SecretStr(GrafanaReceiver.TOKEN), dashboard_uid="printers"))
    sink.open(SinkContext(name, settings))
    return sink


def test_offline_then_online_becomes_one_region_and_a_replay_adds_nothing(grafana, request) -> None:
    receiver, settings = grafana
    name = f"grafana-{request.node.name[-20:]}-{time.time_ns()}"
    t0 = time.time_ns() // 1000 - 30 * MINUTE
    history = [
        printer_event("printer.offline", "p-1", t0, printer_ip="10.0.0.7"),
        printer_event("printer.online", "p-1", t0 + 12 * MINUTE),
        printer_event("printer.online", "p-2", t0 + 13 * MINUTE),  # nothing open: a point
        Event(
            new_event_id(),
            EventType.SYSTEM_WARNING,
            Severity.WARNING,
            t0 + 14 * MINUTE,
            {"component": "spooler", "message": "queue above 80 %"},
        ),
    ]
    sink = sink_for(receiver, settings, name)
    assert not sink.write(history).rejected
    sink.close()
    (region,) = receiver.regions()
    assert region["time"] == t0 // 1000 and region["timeEnd"] == (t0 + 12 * MINUTE) // 1000
    assert "offline" in region["text"] and "back online" in region["text"] and "resolved" in region["tags"]
    assert {"continuum", "printer.offline", "printer:Printer p-1", "location:Finance-3F"} <= set(region["tags"])
    assert region["dashboardUID"] == "printers"
    assert len(receiver.annotations) == 3, "one region and two points"

    again = sink_for(receiver, settings, name)  # a restarted connector replaying the same history
    again.write(history[:2])
    again.close()
    assert len(receiver.annotations) == 3 and len(receiver.regions()) == 1


def test_a_long_printer_name_is_cut_to_grafanas_tag_column_and_delivered(grafana, request) -> None:
    """Grafana on MySQL/Postgres answers 500 for a tag over its 100-character column; retried,
    that blocked every later event of the integration."""
    receiver, settings = grafana
    t0 = time.time_ns() // 1000
    long_name = "Finance floor 3 — colour laser by the north stairs " * 5
    event = printer_event("printer.jam", "p-9", t0, printer_name=long_name)
    sink = sink_for(receiver, settings, f"grafana-long-{time.time_ns()}")
    try:
        result = sink.write([event])
    finally:
        sink.close()
    assert not result.rejected and not result.retry, result
    (annotation,) = receiver.annotations.values()
    assert f"printer:{long_name[:100]}" in annotation["tags"]
