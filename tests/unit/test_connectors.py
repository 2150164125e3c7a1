"""Connector pieces without Kafka: offsets, backoff, vendor encodings, option parsing."""

from __future__ import annotations

import gzip
import json
import random

import pytest
from pydantic import SecretStr

from continuum_events.connectors.base import parse_retry_after
from continuum_events.connectors.datadog import DatadogConfig, DatadogSink
from continuum_events.connectors.elasticsearch import ElasticsearchConfig, ElasticsearchSink
from continuum_events.connectors.registry import build_sink
from continuum_events.connectors.runtime import Backoff, OffsetTracker
from continuum_events.connectors.splunk import SplunkConfig, SplunkHecSink
from continuum_events.connectors.syslog import SyslogConfig, SyslogSink
from continuum_events.events import Event, EventType, Severity

EVENT = Event(
    "0b7f4a52-33a4-4f7e-9a0e-2a3f8e3a9c11",
    EventType.PRINTER_OFFLINE,
    Severity.WARNING,
    1_795_800_000_123_456,
    {
        "printer_id": "p-1",
        "printer_name": "HQ FIN 1",
        "printer_ip": "10.0.0.9",
        "printer_location": "HQ-1F",
        "printer_department": "Finance",
        "consecutive_failures": 3,
        "protocols": ["ipp"],
    },
    details={"site": "x"},
)


def test_offsets_commit_only_the_contiguous_prefix() -> None:
    t = OffsetTracker()
    for o in range(10, 15):
        t.consumed("t", 0, o)
    t.consumed("t", 1, 7)
    for o in (10, 11, 13, 14):  # 12 still owed
        t.resolved("t", 0, o)
    assert t.committable() == {("t", 0): 12, ("t", 1): 7}
    t.resolved("t", 0, 12)
    t.resolved("t", 1, 7)
    assert t.committable() == {("t", 0): 15, ("t", 1): 8}
    t.forget([("t", 0)])
    assert t.committable() == {("t", 1): 8}


def test_backoff_is_jittered_capped_and_honours_retry_after() -> None:
    b = Backoff(base_s=0.1, cap_s=2.0, rng=random.Random(1))
    delays = [b.delay(a) for a in range(12)]
    assert all(0 <= d <= 2.0 for d in delays) and len(set(delays)) > 6
    # Retry-After is the wait, never less, and a deep backoff does not stretch it.
    assert all(5.0 <= b.delay(a, retry_after=5.0) <= 5.5 for a in range(12))


@pytest.mark.parametrize(("header", "seconds"), [("7", 7.0), ("0", 0.0), (None, None), ("soon", None)])
def test_retry_after(header, seconds) -> None:
    assert parse_retry_after(header) == seconds
    assert parse_retry_after("Wed, 21 Oct 2099 07:28:00 GMT") > 0


def test_splunk_batch_is_concatenated_event_objects_with_indexed_fields() -> None:
    sink = SplunkHecSink(SplunkConfig("http://x", SecretStr("t"), index="printers"))
    body = sink.encode([EVENT, EVENT]).decode()
    first, end = json.JSONDecoder().raw_decode(body)
    assert body[end:].startswith("{") and "\n" not in body
    assert first["time"] == 1_795_800_000.123456 and first["index"] == "printers" and first["host"] == "HQ FIN 1"
    assert first["fields"] == {
        "event_type": "printer.offline",
        "severity": "warning",
        "printer_id": "p-1",
        "printer_location": "HQ-1F",
        "printer_department": "Finance",
    }
    assert first["event"]["event_id"] == EVENT.event_id and first["event"]["consecutive_failures"] == 3


def test_elasticsearch_bulk_uses_create_with_the_event_id_and_daily_indices() -> None:
    lines = ElasticsearchSink(ElasticsearchConfig("http://x")).encode([EVENT]).decode()
    assert lines.endswith("\n")
    action, source = (json.loads(x) for x in lines.strip().split("\n"))
    assert action == {"create": {"_index": "continuum-events-2026.11.27", "_id": EVENT.event_id}}
    assert source["@timestamp"].startswith("2026-11-27T") and source["printer_id"] == "p-1"


def test_datadog_logs_carry_source_service_and_tags() -> None:
    log = DatadogSink(DatadogConfig(SecretStr("k"), site="datadoghq.eu")).log_of(EVENT, now=EVENT.timestamp_us / 1e6)
    assert log["ddsource"] == "continuum" and log["service"] == "continuum" and log["hostname"] == "HQ FIN 1"
    assert log["ddtags"] == "event_type:printer.offline,severity:warning,location:hq-1f,department:finance"
    with pytest.raises(ValueError, match="unknown Datadog site"):
        DatadogConfig(SecretStr("k"), site="datadoghq.moon")
    assert (
        DatadogConfig(SecretStr("k"), site="us5.datadoghq.com").intake == "https://http-intake.logs.us5.datadoghq.com"
    )
    assert gzip.decompress(gzip.compress(b"x")) == b"x"


def test_syslog_5424_escapes_structured_data_and_maps_severity() -> None:
    event = Event(
        EVENT.event_id,
        EventType.PRINTER_ERROR,
        Severity.CRITICAL,
        EVENT.timestamp_us,
        {"printer_id": "p-1", "printer_name": "HQ FIN 1", "error_message": 'a "b" ] \\ c'},
    )
    line = SyslogSink(SyslogConfig("h")).format(event).decode()
    assert line.startswith("<130>1 2026-11-27T") and " HQFIN1 continuum - printer.error [continuum@32473 " in line
    assert 'error_message="a \\"b\\" \\] \\\\ c"' in line
    legacy = SyslogSink(SyslogConfig("h", format="rfc3164")).format(event).decode()
    assert legacy.startswith("<130>Nov 27 ") and legacy.endswith(f"event_id={EVENT.event_id}")
    framed = SyslogSink(SyslogConfig("h", transport="tcp")).frame(b"hello")
    assert framed == b"5 hello"


def test_build_sink_reads_secrets_from_the_environment_only() -> None:
    env = {"HEC": "s3cret-token"}
    sink = build_sink("splunk", {"url": "http://x", "use_ack": "true"}, {"token": "HEC"}, env)
    assert sink.config.use_ack is True and sink.config.token.get_secret_value() == "s3cret-token"
    with pytest.raises(ValueError, match="token is a secret"):
        build_sink("splunk", {"url": "http://x", "token": "inline"}, {}, env)
    with pytest.raises(ValueError, match="environment variable NOPE"):
        build_sink("splunk", {"url": "http://x"}, {"token": "NOPE"}, env)
    with pytest.raises(ValueError, match="missing token"):
        build_sink("splunk", {"url": "http://x"}, {}, env)
    with pytest.raises(ValueError, match="unknown vendor"):
        build_sink("fax", {}, {}, env)
    with pytest.raises(ValueError, match="expected a number"):
        build_sink("syslog", {"host": "h", "port": "five"}, {}, env)


def test_transport_errors_never_echo_the_url_which_may_hold_keys() -> None:
    import pytest
    import requests

    from continuum_events.connectors.base import Retry
    from continuum_events.connectors.http import HttpClient

    class Broken(requests.Session):
        def request(self, method, url, **kwargs):
            raise requests.exceptions.ChunkedEncodingError(f"connection broken while reading {url}")

    url = "https://alert.victorops.com/integrations/generic/20131114/alert/API-KEY-123/ROUTING-KEY-456"
    with pytest.raises(Retry) as caught:
        HttpClient(1.0, Broken()).post(url, b"{}", {}, what="VictorOps alert")
    assert "API-KEY-123" not in str(caught.value) and "ChunkedEncodingError" in str(caught.value)


# -- issue 17 §3: the vendors' limits and meanings, against the strict receivers ---------------
class MemoryLedger:
    """The two calls a lifecycle sink makes of its incident ledger, without Kafka."""

    def __init__(self) -> None:
        self.entries: dict[str, object] = {}

    def values(self) -> dict[str, object]:
        return self.entries

    def record(self, entries: dict[str, object]) -> None:
        self.entries.update(entries)


def lifecycle(sink):
    sink.ledger = MemoryLedger()
    return sink


def test_victorops_opens_an_incident_for_what_opens_one_elsewhere_and_keeps_the_details() -> None:
    from continuum_events.connectors.victorops import VictorOpsConfig, VictorOpsSink
    from continuum_events.devtools.receivers import VictorOpsReceiver

    assert EVENT.severity is Severity.WARNING  # printer.offline: a WARNING would open nothing at VictorOps
    with VictorOpsReceiver() as victorops:
        sink = lifecycle(
            VictorOpsSink(
                VictorOpsConfig(
                    SecretStr(VictorOpsReceiver.API_KEY), SecretStr(VictorOpsReceiver.ROUTING_KEY), url=victorops.url
                )
            )
        )
        result = sink.write([EVENT])
        assert not result.rejected and not result.retry
        assert victorops.open_entities() == {"printer/p-1/offline"}
        [alert] = victorops.received.bodies
    assert alert["message_type"] == "CRITICAL" and alert["severity"] == "warning" and alert["details.site"] == "x"


def test_opsgenie_cuts_long_tags_and_details_to_its_limits_and_still_alerts() -> None:
    from continuum_events.connectors.opsgenie import OpsgenieConfig, OpsgenieSink
    from continuum_events.devtools.receivers import OpsgenieReceiver

    event = Event(
        EVENT.event_id,
        EventType.PRINTER_ERROR,
        Severity.ERROR,
        EVENT.timestamp_us,
        {
            **EVENT.payload,
            "printer_location": "Headquarters, building C, third floor, east wing, room 3.114",
            "error_message": "paper path: " + "jam sensor 4 " * 800,
        },
        details={f"counter_{i:03}": "x" * 100 for i in range(60)},
    )
    with OpsgenieReceiver() as opsgenie:
        sink = lifecycle(OpsgenieSink(OpsgenieConfig(SecretStr(OpsgenieReceiver.API_KEY), url=opsgenie.url)))
        result = sink.write([event])
        assert not result.rejected and not result.retry, result
        assert opsgenie.open_aliases() == {"printer/p-1/error"}
        [alert] = opsgenie.received.bodies
    assert all(len(t) <= 50 for t in alert["tags"]) and alert["tags"][2].startswith("Headquarters, building C")
    assert sum(len(k) + len(v) for k, v in alert["details"].items()) <= 8000
    assert alert["details"]["event_id"] == EVENT.event_id and alert["details"]["error_message"].startswith("paper")


def test_datadog_sends_an_event_older_than_18_hours_at_now_keeping_its_own_time() -> None:
    import time

    from continuum_events.devtools.receivers import DatadogReceiver

    old = Event(
        "6e1c0d55-93a2-4c1b-8f0e-1d2c3b4a5f60",
        EVENT.event_type,
        EVENT.severity,
        int((time.time() - 20 * 3600) * 1e6),
        EVENT.payload,
    )
    fresh = Event(
        "7f2d1e66-a4b3-4d2c-9a1f-2e3d4c5b6a71", EVENT.event_type, EVENT.severity, int(time.time() * 1e6), EVENT.payload
    )
    with DatadogReceiver() as datadog:
        sink = DatadogSink(DatadogConfig(SecretStr(DatadogReceiver.API_KEY), url=datadog.url))
        assert sink.write([old, fresh]).rejected == {}
        sink.close()
        assert set(datadog.received.event_ids) == {old.event_id, fresh.event_id} and datadog.unindexed == 0
        late, on_time = sorted(datadog.received.bodies, key=lambda log: log["event_id"])
    assert "timestamp" not in late and late["event_timestamp"] == old.timestamp.isoformat().replace("+00:00", "Z")
    assert late["ddtags"].endswith(",late:true")
    assert on_time["timestamp"].startswith(fresh.timestamp.isoformat()[:19]) and "late" not in on_time["ddtags"]


@pytest.mark.parametrize(
    "pattern",
    [
        "Continuum-%Y.%m.%d",
        "continuum-%b",
        "continuum events",
        "continuum/%Y",
        "continuum-*",
        "-continuum",
        "_continuum",
        "+c",
        ".",
        "..",
        "c,d",
        "c#%d",
        "c" * 250 + "-%Y.%m",
        "",
    ],
)
def test_elasticsearch_index_pattern_is_checked_when_connected(pattern: str) -> None:
    from continuum_events.integrations import IntegrationSpec

    with pytest.raises(ValueError, match="index"):
        ElasticsearchConfig("http://x", index_pattern=pattern)
    with pytest.raises(ValueError, match="index"):
        IntegrationSpec(
            name="es", vendor="elasticsearch", options={"url": "https://es.example.com", "index_pattern": pattern}
        )


def test_an_index_elasticsearch_refuses_is_a_configuration_error_never_a_dead_letter() -> None:
    from continuum_events.connectors.base import ConfigError
    from continuum_events.devtools.receivers import ElasticsearchReceiver

    for pattern in ("continuum-%Y", "continuum-.-%Y", "logs-printers.2026"):
        ElasticsearchConfig("http://x", index_pattern=pattern)  # valid names pass
    with ElasticsearchReceiver() as es:
        config = ElasticsearchConfig(es.url, api_key=SecretStr(ElasticsearchReceiver.API_KEY))
        sink = ElasticsearchSink(config)
        es.closed_indices.add(sink.index_of(EVENT))
        with pytest.raises(ConfigError, match="index_closed_exception"):
            sink.write([EVENT])
        object.__setattr__(config, "index_pattern", "Continuum-%Y")  # a name the cluster will not take
        with pytest.raises(ConfigError, match="invalid_index_name_exception"):
            sink.write([EVENT])
        object.__setattr__(config, "index_pattern", "continuum-events-%Y.%m.%d")
        es.closed_indices.clear()
        assert sink.write([EVENT]).rejected == {} and set(es.received.event_ids) == {EVENT.event_id}
        sink.close()
