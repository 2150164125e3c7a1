"""Properties that hold for every input, checked with Hypothesis.

Decoders (the codec, the router's pure function, the dead-letter headers, the NSCA
greeting, the Pushgateway read-back) raise only the error they document, whatever the
bytes. Vendor encoders, given any event the schema allows (text with CR, LF, NUL,
quotes, brackets, any unicode, very long strings), raise only their connector's
declared errors and stay within the vendor's documented limits (../shared/VENDORS.md).
Nothing here opens a socket: HTTP sinks get a client that answers in memory, the
alerting sinks an in-memory incident ledger.
"""

from __future__ import annotations

import base64
import dataclasses
import gzip
import json
import math
import operator
import os
import re
import struct
import time
import zlib
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote, urlsplit

import orjson
import pytest
import requests
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from prometheus_client.parser import text_string_to_metric_families
from pydantic import SecretStr

from continuum_events.codec import SINGLE_OBJECT_MAGIC, DecodeError, EventCodec
from continuum_events.connectors.base import (
    MAX_RETRY_AFTER_S,
    BatchResult,
    ConfigError,
    Retry,
    Split,
    TooLarge,
    describe_event,
    parse_retry_after,
)
from continuum_events.connectors.datadog import MAX_LOG_BYTES, DatadogConfig, DatadogSink
from continuum_events.connectors.elasticsearch import ElasticsearchConfig, ElasticsearchSink
from continuum_events.connectors.grafana import GrafanaConfig, GrafanaSink
from continuum_events.connectors.http import HttpClient
from continuum_events.connectors.incidents import incidents_of
from continuum_events.connectors.newrelic import NewRelicConfig, NewRelicSink
from continuum_events.connectors.nsca import (
    OUTPUT_SIZE,
    build_packet,
    check_result,
    packet_size,
    parse_hello,
    xor_encrypt,
)
from continuum_events.connectors.opsgenie import OpsgenieConfig, OpsgenieSink
from continuum_events.connectors.pagerduty import PagerDutyConfig, PagerDutySink
from continuum_events.connectors.pushgateway import METRICS, PushgatewayConfig, PushgatewaySink
from continuum_events.connectors.splunk import SplunkConfig, SplunkHecSink
from continuum_events.connectors.syslog import SEVERITY, MessageTooLong, SyslogConfig, SyslogSink
from continuum_events.connectors.victorops import VictorOpsConfig, VictorOpsSink
from continuum_events.deadletter import REASON_LIMIT, dead_letter_headers, read_dead_letter_headers
from continuum_events.events import PAYLOAD_BRANCH, PAYLOAD_RECORDS, Event, EventType, Severity
from continuum_events.processors.routing import route_record
from continuum_events.rules import Rule, RuleError, RuleSet
from continuum_events.topology import CATEGORIES
from tests.samples import full_payload

TOPIC = "printer-events"
CODEC = EventCodec()
#: No example database: it would write .hypothesis/ into the working tree; a failure
#: prints its falsifying example, which is what a reader needs.
#: ``make properties`` multiplies every example count (and draws fresh examples, see conftest).
SCALE = max(1, int(os.environ.get("CONTINUUM_HYPOTHESIS_SCALE", "1")))
PROPERTY = settings(deadline=None, database=None, max_examples=80 * SCALE)
#: For the cheap properties (small inputs, no vendor encoding): more examples for the same time.
MANY = settings(PROPERTY, max_examples=250 * SCALE)

# -- strategies: text that breaks formats, events from the schema ----------------------------------
#: Characters with a meaning in some vendor format: framing, escaping, separators, paths, lines.
NASTY = "\r\n\0\t\x0b\x1b\x7f\"'\\][}{=;|/ .%@#?&:,~-_+$é€\u00a0\u2028\u2029\x85\ufeff😀"
SHORT = st.one_of(st.text(alphabet=NASTY + "ab0", max_size=24), st.text(max_size=24))  # st.text: any unicode
LONG = st.builds(operator.mul, st.text(alphabet=NASTY + "ab", min_size=1, max_size=4), st.integers(64, 5000))
#: Over every vendor's per-field limit and PagerDuty's per-event one, in one string.
HUGE = st.builds(operator.mul, st.text(alphabet='x"\0é\n', min_size=1, max_size=3), st.integers(120_000, 250_000))
TEXT = st.one_of(SHORT, LONG)
#: Ids from a small pool too, so a batch holds an incident's trigger and its resolve.
IDS = st.one_of(st.sampled_from(["p-1", "p-2", "HQ/3F", ".", ""]), TEXT)
ID_FIELDS = {"printer_id", "source_printer_id", "target_printer_id", "redirect_id", "job_id", "group_id", "component"}
#: Details the incident lifecycle reads (flapping, outage grouping), among arbitrary ones.
DETAIL_KEYS = st.one_of(st.sampled_from(["state", "changes", "window_s", "count", "dimension", "still_offline"]), SHORT)
DETAIL_VALUES = st.one_of(st.sampled_from(["stable", "resolved", "flapping", "3"]), TEXT)
DETAILS = st.one_of(
    st.dictionaries(DETAIL_KEYS, DETAIL_VALUES, max_size=5),
    st.builds(lambda n, v: {f"k{i}": v for i in range(n)}, st.integers(200, 400), SHORT),  # New Relic's 255
    st.builds(lambda v: {"dump": v}, HUGE),
)
YEAR_1_US = int((datetime(1, 1, 2, tzinfo=UTC).timestamp()) * 1_000_000)
YEAR_9999_US = int((datetime(9999, 12, 30, tzinfo=UTC).timestamp()) * 1_000_000)
NOW_US = time.time_ns() // 1000
#: Mostly recent (New Relic's 24 h window, Datadog's 18 h), and anywhere a datetime reaches.
TIMESTAMPS = st.one_of(
    st.integers(NOW_US - 2 * 86_400_000_000, NOW_US + 3_600_000_000), st.integers(YEAR_1_US, YEAR_9999_US)
)
FAMILY_FIELDS = {family: frozenset(f["name"] for f in record["fields"]) for family, record in PAYLOAD_RECORDS.items()}


def _values(name: str, kind: Any) -> st.SearchStrategy[Any]:
    """Any value the schema allows for a field of type ``kind``."""
    if isinstance(kind, list):
        return st.one_of(*(_values(name, k) for k in kind))
    if isinstance(kind, dict):
        if kind["type"] == "array":
            return st.lists(_values(name, kind["items"]), max_size=4)
        if kind["type"] == "map":
            return st.dictionaries(SHORT, _values(name, kind["values"]), max_size=4)
        return _values(name, kind["type"])
    return {
        "null": st.none(),
        "string": IDS if name in ID_FIELDS else TEXT,
        "boolean": st.booleans(),
        "int": st.integers(-(2**31), 2**31 - 1),
        "long": st.integers(-(2**63), 2**63 - 1),
        "double": st.one_of(st.sampled_from([math.nan, math.inf, -math.inf]), st.floats()),
    }[kind]  # as Avro allows


PAYLOADS = {
    family: st.fixed_dictionaries({f["name"]: _values(f["name"], f["type"]) for f in record["fields"]})
    for family, record in PAYLOAD_RECORDS.items()
}


@st.composite
def events(
    draw: st.DrawFn,
    types: st.SearchStrategy[EventType] = st.sampled_from(list(EventType)),
    timestamps: st.SearchStrategy[int] = TIMESTAMPS,
) -> Event:
    """An event the schema allows; an unknown type (a newer writer's) carries any family's payload."""
    kind = draw(types)
    family = draw(st.sampled_from(sorted(PAYLOADS))) if kind is EventType.UNKNOWN else kind.family
    return Event(
        str(draw(st.uuids(version=4))),
        kind,
        draw(st.sampled_from(list(Severity))),
        draw(timestamps),
        draw(PAYLOADS[family]),
        draw(TEXT),
        draw(DETAILS),
    )


BATCHES = st.lists(events(), min_size=1, max_size=6)
#: Problem -> the event that clears it (incidents.py), with the details that say so.
CLEARS = {
    EventType.PRINTER_OFFLINE: (EventType.PRINTER_ONLINE, {}),
    EventType.PRINTER_ERROR: (EventType.PRINTER_ONLINE, {}),
    EventType.REDIRECT_FAILED: (EventType.REDIRECT_REMOVED, {}),
    EventType.SYSTEM_ERROR: (EventType.SYSTEM_INFO, {}),
    EventType.SYSTEM_CRITICAL: (EventType.SYSTEM_INFO, {}),
    EventType.PRINTER_FLAPPING: (EventType.PRINTER_FLAPPING, {"state": "stable"}),
    EventType.GROUP_OUTAGE: (EventType.GROUP_OUTAGE, {"state": "resolved"}),
}


@st.composite
def lifecycle_of(draw: st.DrawFn) -> list[Event]:
    """A problem and, later, the event that clears it: the resolve paths of the alerting sinks."""
    problem = draw(events(types=st.sampled_from(sorted(CLEARS))))
    kind, details = CLEARS[problem.event_type]
    payload = {**problem.payload, "conditions": []} if problem.family == "printer" else problem.payload
    clear = dataclasses.replace(
        problem,
        event_id=str(draw(st.uuids(version=4))),
        event_type=kind,
        payload=payload,
        timestamp_us=problem.timestamp_us + draw(st.integers(0, 10**9)),
        details={**problem.details, **details},
    )
    return [problem, clear]


#: What the alerting vendors receive: any events, or incidents opened and closed.
ALERT_BATCHES = st.one_of(BATCHES, st.lists(lifecycle_of(), min_size=1, max_size=3).map(lambda ls: sum(ls, [])))


def family_of(event: Event) -> str:
    return next(f for f, names in FAMILY_FIELDS.items() if names == set(event.payload))


def record_of(event: Event, **changes: Any) -> dict[str, Any]:
    """The Avro record of any event, unknown types included (``Event.to_record`` needs a known family)."""
    return {
        "event_id": event.event_id,
        "event_type": event.event_type.symbol,
        "severity": event.severity.value,
        "timestamp": event.timestamp_us,
        "source": event.source,
        "payload": (PAYLOAD_BRANCH[family_of(event)], dict(event.payload)),
        "details": dict(event.details),
        **changes,
    }


def encoded(event: Event) -> bytes:
    return CODEC.encode_record(record_of(event), TOPIC)


def one_line(text: str) -> bool:
    return not any(c in text for c in "\r\n\0")


# -- fakes: an HTTP client that answers in memory, an incident ledger without Kafka -------------------
class MemoryClient(HttpClient):
    """Answers each request with ``answer(method, url, body) -> (status, JSON or bytes)``; keeps what was
    sent, gunzipped."""

    def __init__(self, answer=lambda method, url, body: (200, {})) -> None:  # type: ignore[no-untyped-def]
        super().__init__(1.0)
        self.answer, self.sent = answer, []

    def request(self, method, url, body=None, headers=None, *, what="request"):  # type: ignore[no-untyped-def,override]
        headers = dict(headers or {})
        if body is not None and headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        self.sent.append((method, url, body, headers))
        status, content = self.answer(method, url, body)
        response = requests.Response()
        response.status_code = status
        response._content = content if isinstance(content, bytes) else json.dumps(content).encode()
        return response


class MemoryLedger:
    """The two calls the lifecycle sinks make of an IncidentLedger."""

    def __init__(self) -> None:
        self.entries: dict[str, Any] = {}

    def values(self) -> dict[str, Any]:
        return self.entries

    def record(self, entries: dict[str, Any]) -> None:
        self.entries.update(entries)


def alerting_sink(sink_class: type, config: Any, status: int, answer: Any) -> tuple[Any, MemoryClient]:
    client = MemoryClient(lambda method, url, body: (status, answer))
    sink = sink_class(config, client)
    sink.ledger = MemoryLedger()
    return sink, client


def delivered_everything(result: BatchResult) -> None:
    assert isinstance(result, BatchResult) and not result.rejected and not result.retry
    assert not getattr(result, "unsent", ())


# == 1. decoders =====================================================================================
def assert_usable(event: Event) -> None:
    """What every connector relies on in a decoded event: a time a datetime holds, the payload of its type's
    family (the alerting sinks read e.g. printer_id of a printer event)."""
    assert isinstance(event, Event)
    assert event.timestamp.tzinfo is not None
    if event.event_type is not EventType.UNKNOWN:
        assert set(event.payload) == FAMILY_FIELDS[event.family]
    describe_event(event)
    incidents_of(event)


@MANY
@given(
    st.one_of(
        st.binary(max_size=300),
        st.builds(operator.add, st.sampled_from([SINGLE_OBJECT_MAGIC, b"\0", b""]), st.binary(max_size=300)),
    )
)
def test_decoding_arbitrary_bytes_raises_only_decode_error(data: bytes) -> None:
    for decode in (CODEC.decode, CODEC.decode_record):
        try:
            decoded = decode(data, TOPIC, 3, 41)
        except DecodeError as exc:
            assert (exc.topic, exc.partition, exc.offset) == (TOPIC, 3, 41) and "printer-events[3]@41" in str(exc)
        else:
            if decode is CODEC.decode:
                assert_usable(decoded)


@PROPERTY
@given(events())
def test_every_event_round_trips_byte_for_byte(event: Event) -> None:
    data = encoded(event)
    decoded = CODEC.decode(data, TOPIC, 0, 0)
    assert_usable(decoded)
    assert encoded(decoded) == data  # byte equality also holds for NaN, where == on events does not
    assert (decoded.event_id, decoded.event_type, decoded.timestamp_us) == (
        event.event_id,
        event.event_type,
        event.timestamp_us,
    )


@PROPERTY
@given(events(timestamps=st.integers(-(2**63), 2**63 - 1)), st.sampled_from(list(PAYLOAD_BRANCH)))
def test_what_decodes_is_an_event_every_connector_can_read(event: Event, branch_family: str) -> None:
    """Avro allows any 64-bit time and any payload branch with any type: e.g. nanoseconds written as
    microseconds (year 55,000) or a system payload on a printer.offline. Either is refused as undecodable
    (the record is dead-lettered) or is an event the connectors can handle; otherwise every connector
    would fail the batch and retry it forever."""
    payload = dict(event.payload) if branch_family == family_of(event) else full_payload(branch_family)
    data = CODEC.encode_record(record_of(event, payload=(PAYLOAD_BRANCH[branch_family], payload)), TOPIC)
    try:
        decoded = CODEC.decode(data, TOPIC, 0, 7)
    except DecodeError:
        return
    assert_usable(decoded)


@MANY
@given(
    events(),
    st.lists(st.tuples(st.integers(0, 2**20), st.integers(0, 7)), min_size=1, max_size=4),
    st.one_of(st.none(), st.integers(0, 2**20)),
    st.booleans(),
)
def test_corrupted_records_raise_only_decode_error(
    event: Event, flips: list[tuple[int, int]], cut: int | None, header_only: bool
) -> None:
    data = bytearray(encoded(event))
    for position, bit in flips:
        data[position % (10 if header_only else len(data))] ^= 1 << bit
    if cut is not None:
        data = data[: cut % (len(data) + 1)]
    try:
        decoded = CODEC.decode(bytes(data), TOPIC, 0, 1)
    except DecodeError:
        return
    assert_usable(decoded)


@MANY
@given(events(), st.binary(min_size=8, max_size=8))
def test_an_unknown_fingerprint_is_named_in_the_decode_error(event: Event, fingerprint: bytes) -> None:
    assume(fingerprint not in CODEC._writers)
    data = SINGLE_OBJECT_MAGIC + fingerprint + encoded(event)[10:]
    with pytest.raises(DecodeError, match=f"unknown schema fingerprint {fingerprint.hex()}"):
        CODEC.decode(data, TOPIC, 0, 2)


#: Byte sequences UTF-8 forbids: a lone continuation, overlong forms, a surrogate, a cut sequence, 0xff.
INVALID_UTF8 = st.builds(
    lambda pieces: b"".join(pieces),
    st.lists(
        st.sampled_from(
            [
                b"\x80",
                b"\xc0\xaf",
                b"\xe0\x80\xaf",
                b"\xed\xa0\x80",
                b"\xe2\x82",
                b"\xff",
                b"\xf8\x88\x80\x80\x80",
                b"a",
            ]
        ),
        min_size=1,
        max_size=6,
    ),
).filter(lambda b: not _is_utf8(b))


def _is_utf8(data: bytes) -> bool:
    try:
        data.decode()
    except UnicodeDecodeError:
        return False
    return True


#: Where a string sits in the record: envelope, payload, an array item, a details key or value.
STRING_PLACES = ["event_id", "source", "printer_name", "protocols", "detail key", "detail value"]


@MANY
@given(st.sampled_from(STRING_PLACES), INVALID_UTF8, st.uuids(version=4))
def test_strings_holding_invalid_utf8_raise_decode_error(place: str, bad: bytes, event_id: Any) -> None:
    """The bad bytes replace a marker of their length, so every length prefix stays right."""
    marker = f"<{'Z' * len(bad)}>"
    payload = {
        **full_payload("printer"),
        "printer_name": marker if place == "printer_name" else None,
        "protocols": ["ipp", marker] if place == "protocols" else [],
    }
    details = {marker: "x"} if place == "detail key" else {"x": marker} if place == "detail value" else {}
    record = {
        "event_id": marker if place == "event_id" else str(event_id),
        "event_type": "printer_online",
        "severity": "info",
        "timestamp": NOW_US,
        "source": marker if place == "source" else "probe",
        "payload": (PAYLOAD_BRANCH["printer"], payload),
        "details": details,
    }
    data = CODEC.encode_record(record, TOPIC)
    assert data.count(marker.encode()) == 1
    with pytest.raises(DecodeError, match="corrupt Avro body"):
        CODEC.decode(data.replace(marker.encode(), b"<" + bad + b">"), TOPIC, 0, 5)


class StubRegistry:
    """A schema registry that returns whatever schema text it holds for any id (or fails)."""

    def __init__(self, schema_str: str | None) -> None:
        self.schema_str = schema_str

    def get_schema(self, schema_id: int) -> Any:
        if self.schema_str is None:
            raise RuntimeError(f"schema {schema_id} not found")
        return type("Schema", (), {"schema_str": self.schema_str, "schema_type": "AVRO"})()


JSON_VALUES = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), SHORT),
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=8), inner, max_size=3)),
    max_leaves=12,
)
#: What a registry may hold under an id: another Avro schema, a JSON Schema, Protobuf, nothing.
SCHEMA_TEXTS = st.one_of(
    st.none(),
    st.just(json.dumps({"$schema": "http://json-schema.org/draft-07/schema#", "type": "object"})),
    st.just('syntax = "proto3"; message Event { string id = 1; }'),
    st.just(json.dumps({"type": "record", "name": "Other", "fields": [{"name": "x", "type": "long"}]})),
    st.just(json.dumps("string")),
    JSON_VALUES.map(json.dumps),
    SHORT,
)


@PROPERTY
@given(
    SCHEMA_TEXTS, st.integers(0, 2**32 - 1), st.one_of(st.binary(max_size=80), events().map(lambda e: encoded(e)[10:]))
)
def test_confluent_framed_records_raise_only_decode_error_whatever_the_registry_holds(
    schema_str: str | None, schema_id: int, body: bytes
) -> None:
    codec = EventCodec(StubRegistry(schema_str))
    try:
        decoded = codec.decode(b"\0" + struct.pack(">I", schema_id) + body, TOPIC, 2, 9)
    except DecodeError:
        return
    assert_usable(decoded)


# -- the router: its pure function, its dead-letter headers ------------------------------------------
_FIELDS = {f["name"] for r in PAYLOAD_RECORDS.values() for f in r["fields"]}
_REQUIRED = {f["name"] for r in PAYLOAD_RECORDS.values() for f in r["fields"] if "default" not in f}
_DROPPABLE = sorted(_FIELDS - _REQUIRED | {"details.state", "details.k0"})
_MASKABLE = sorted(_FIELDS | {"details.state"})
_WHERE_FIELDS = ["event_type", "severity", "source", "printer_department", "printer_id", "details.state"]
RULES = st.lists(
    st.builds(
        Rule,
        name=st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,12}", fullmatch=True),
        category=st.sampled_from(CATEGORIES),
        event_types=st.lists(
            st.sampled_from(["*", "printer.*", "system.*", "printer.offline", "redirect.failed"]),
            min_size=1,
            max_size=2,
        ).map(tuple),
        min_severity=st.sampled_from([s.value for s in Severity]),
        where=st.dictionaries(
            st.sampled_from(_WHERE_FIELDS), st.lists(IDS, min_size=1, max_size=2).map(tuple), max_size=1
        ),
        drop=st.lists(st.sampled_from(_DROPPABLE), max_size=2).map(tuple),
        mask=st.lists(st.sampled_from(_MASKABLE), max_size=2).map(tuple),
        priority=st.integers(0, 200),
    ),
    max_size=4,
    unique_by=lambda r: r.name,
).map(RuleSet.of)


def route_or_dead_letter(value: bytes, rules: RuleSet) -> list[Any]:
    """What the router's agent does with one record: route it, or build the dead letter's headers."""
    try:
        return route_record(value, TOPIC, 4, 1041, rules, CODEC)
    except (DecodeError, RuleError) as exc:  # route_record's documented errors
        headers = dead_letter_headers("router", exc, TOPIC, 4, 1041)
        read = read_dead_letter_headers(headers)
        assert read["dlq.exception"] == type(exc).__name__ and read["dlq.offset"] == "1041"
        assert read["dlq.topic"] == TOPIC and len(read["dlq.reason"]) <= REASON_LIMIT
        return []


def flipped(data: bytes, position: int, bit: int) -> bytes:
    at = position % len(data)
    return data[:at] + bytes([data[at] ^ 1 << bit]) + data[at + 1 :]


@MANY
@given(
    st.one_of(
        st.binary(max_size=200),
        events().map(encoded),
        st.builds(flipped, events().map(encoded), st.integers(0, 2**16), st.integers(0, 7)),
    ),
    RULES,
)
def test_routing_any_record_raises_only_its_documented_errors(value: bytes, rules: RuleSet) -> None:
    try:
        event = CODEC.decode(value, TOPIC, 4, 1041)
    except DecodeError:
        event = None
    for out in route_or_dead_letter(value, rules):
        assert out.topic == f"printer-events.{out.category}"
        assert dict(out.headers)["continuum.source"] == b"printer-events[4]@1041"
        if out.value is not value and event is not None:  # transformed: re-encoded, still the same event
            again = CODEC.decode(out.value, out.topic, 0, 0)
            assert_usable(again)
            assert (again.event_id, again.event_type, again.payload_family) == (
                event.event_id,
                event.event_type,
                event.payload_family,
            )


@pytest.mark.parametrize("family", sorted(PAYLOAD_BRANCH))
def test_an_unknown_type_keeps_its_payload_through_a_masking_rule(family: str) -> None:
    """A newer writer's type reads as ``unknown``; a transform re-encodes it with its payload's own branch."""
    payload = full_payload(family)
    record = {
        "event_id": "0b7f4a52-33a4-4f7e-9a0e-2a3f8e3a9c11",
        "event_type": "unknown",
        "severity": "info",
        "timestamp": NOW_US,
        "source": "x",
        "payload": (PAYLOAD_BRANCH[family], payload),
        "details": {},
    }
    masked = next(iter(payload))
    rules = RuleSet.of([Rule(name="mask", category="logging", mask=(masked,))])
    [out] = [
        o
        for o in route_record(CODEC.encode_record(record, TOPIC), TOPIC, 0, 0, rules, CODEC)
        if o.category == "logging"
    ]
    event = CODEC.decode(out.value, out.topic, 0, 0)
    assert event.event_type is EventType.UNKNOWN and event.payload_family == family
    assert event.payload[masked] != payload[masked]
    assert {k: v for k, v in event.payload.items() if k != masked} == {k: v for k, v in payload.items() if k != masked}


@MANY
@given(st.lists(st.tuples(st.text(max_size=12), st.binary(max_size=40)), max_size=6))
def test_reading_dead_letter_headers_never_raises(headers: list[tuple[str, bytes]]) -> None:
    read = read_dead_letter_headers(headers)
    assert all(k.startswith("dlq.") and isinstance(v, str) for k, v in read.items())


# -- other decoders: the NSCA greeting, a Retry-After header, the Pushgateway's read-back ------------
@MANY
@given(st.one_of(st.binary(max_size=200), st.binary(min_size=132, max_size=132)))
def test_parsing_an_nsca_greeting_raises_only_value_error(data: bytes) -> None:
    try:
        iv, timestamp = parse_hello(data)
    except ValueError:
        assert len(data) != 132
    else:
        assert len(iv) == 128 and 0 <= timestamp < 2**32 and iv + struct.pack(">I", timestamp) == data


RETRY_AFTER = st.one_of(
    st.none(),
    SHORT,
    st.integers(-(10**6), 10**12).map(str),
    st.floats().map(str),
    st.datetimes(timezones=st.just(UTC)).map(lambda d: d.strftime("%a, %d %b %Y %H:%M:%S GMT")),
)


@MANY
@given(RETRY_AFTER)
def test_a_retry_after_header_never_raises(value: str | None) -> None:
    seconds = parse_retry_after(value)
    assert seconds is None or seconds >= 0


@pytest.mark.parametrize("value", ["inf", "1e999", "Fri, 31 Dec 9999 23:59:59 GMT"])
def test_a_retry_after_header_is_a_bounded_wait(value: str) -> None:
    seconds = parse_retry_after(value)
    assert seconds is None or (math.isfinite(seconds) and seconds <= MAX_RETRY_AFTER_S)


#: Sample values as the gateway writes them (text), the odd ones included.
NUMBERS_AS_TEXT = st.sampled_from(["1", "0", "42.5", "+Inf", "-Inf", "NaN", "1e999", "-1e999"])


def _gateway_answer(values: st.SearchStrategy[Any], labels: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    metric = st.fixed_dictionaries({"value": values, "labels": labels})
    group = st.fixed_dictionaries(
        {
            "labels": st.one_of(
                st.fixed_dictionaries({"job": st.just("continuum"), "printer": st.sampled_from(["p-1", "p-2"])}),
                st.just({"job": "continuum", "instance": "continuum-events"}),
            )
        },
        optional={
            name: st.fixed_dictionaries({"metrics": st.lists(metric, min_size=1, max_size=2)}) for name in METRICS
        },
    )
    return st.fixed_dictionaries({"status": st.just("success"), "data": st.lists(group, min_size=1, max_size=3)})


#: A GET /api/v1/metrics answer: the gateway's shape with odd numbers and label values, the same shape
#: with any JSON in its places, or any JSON at all.
PUSHGATEWAY_ANSWERS = st.one_of(
    _gateway_answer(
        NUMBERS_AS_TEXT,
        st.fixed_dictionaries(
            {"event_type": st.one_of(SHORT, JSON_VALUES), "severity": st.just("warning")},
            optional={"name": st.one_of(SHORT, JSON_VALUES), "ip": st.one_of(SHORT, JSON_VALUES)},
        ),
    ),
    _gateway_answer(st.one_of(NUMBERS_AS_TEXT, JSON_VALUES), JSON_VALUES),
    JSON_VALUES,
)


#: Printer events of the printers the answers hold, so what was read back is pushed again.
KNOWN_PRINTERS = st.tuples(
    events(types=st.sampled_from([EventType.PRINTER_OFFLINE, EventType.PRINTER_ONLINE])),
    st.sampled_from(["p-1", "p-2"]),
).map(lambda t: dataclasses.replace(t[0], payload={**t[0].payload, "printer_id": t[1]}))


@settings(PROPERTY, max_examples=200 * SCALE)
@given(PUSHGATEWAY_ANSWERS, st.lists(KNOWN_PRINTERS, min_size=1, max_size=3))
def test_reading_back_any_pushgateway_answer_raises_only_declared_errors(answer: Any, batch: list[Event]) -> None:
    client = MemoryClient(lambda method, url, body: (200, answer) if method == "GET" else (202, b""))
    sink = PushgatewaySink(PushgatewayConfig("http://gw:9091"), client)
    try:
        delivered_everything(sink.write(batch))
    except (Retry, ConfigError, Split):  # the sink's declared outcomes
        return
    for _method, _, body, _ in client.sent:
        if body:
            list(text_string_to_metric_families(body.decode()))


# == 2. vendor encoders ==============================================================================
@PROPERTY
@given(BATCHES)
def test_splunk_sends_one_json_event_object_per_event(batch: list[Event]) -> None:
    client = MemoryClient(lambda method, url, body: (200, {"text": "Success", "code": 0}))
    delivered_everything(
        SplunkHecSink(SplunkConfig("http://splunk:8088", SecretStr("t"), index="printers"), client).write(batch)
    )
    [(_, _url, body, _)] = client.sent
    text, objects, decoder = body.decode(), [], json.JSONDecoder()
    while text:
        obj, end = decoder.raw_decode(text)
        objects.append(obj)
        text = text[end:]
    assert len(objects) == len(batch)
    for obj, event in zip(objects, batch, strict=False):
        assert obj["event"]["event_id"] == event.event_id and obj["index"] == "printers"
        assert obj["time"] == round(event.timestamp_us / 1e6, 6)
        assert all(isinstance(v, str) for v in obj["fields"].values()) and isinstance(obj["host"], str)


def _tags(ddtags: str) -> dict[str, str]:
    return dict(tag.split(":", 1) for tag in ddtags.split(","))


@PROPERTY
@given(BATCHES)
def test_datadog_logs_stay_within_its_limits(batch: list[Event]) -> None:
    client = MemoryClient(lambda method, url, body: (202, {}))
    result = DatadogSink(DatadogConfig(SecretStr("k")), client).write(batch)
    assert not result.retry
    logs = orjson.loads(client.sent[0][2]) if client.sent else []
    assert len(logs) + len(result.rejected) == len(batch) <= 1000
    assert all(len(orjson.dumps(log)) <= MAX_LOG_BYTES for log in logs)
    assert all(
        len(orjson.dumps(DatadogSink(DatadogConfig(SecretStr("k"))).log_of(batch[i]))) > MAX_LOG_BYTES
        for i in result.rejected
    )
    kept = [e for i, e in enumerate(batch) if i not in result.rejected]
    for log, event in zip(logs, kept, strict=False):
        tags = _tags(log["ddtags"])  # one tag per fact, whatever the location's text
        assert tags["event_type"] == event.event_type.value and tags["severity"] == event.severity.value
        assert set(tags) <= {"event_type", "severity", "location", "department", "late"}


@PROPERTY
@given(BATCHES)
def test_elasticsearch_bulk_body_is_one_action_and_one_source_line_per_event(batch: list[Event]) -> None:
    client = MemoryClient(lambda method, url, body: (200, {"errors": False, "items": []}))
    delivered_everything(ElasticsearchSink(ElasticsearchConfig("http://es:9200"), client).write(batch))
    body = client.sent[0][2]
    assert body.endswith(b"\n")
    lines = body[:-1].split(b"\n")
    assert len(lines) == 2 * len(batch)
    for action, source, event in zip(lines[::2], lines[1::2], batch, strict=False):
        assert orjson.loads(action)["create"]["_id"] == event.event_id
        source = orjson.loads(source)
        assert source["@timestamp"] == source["timestamp"] and source["event_id"] == event.event_id


# -- syslog --------------------------------------------------------------------------------------------
RFC5424_HEADER = re.compile(r"<(\d{1,3})>1 (\S+) (\S+) (\S+) (\S+) (\S+) ")
RFC3164_HEADER = re.compile(r"<(\d{1,3})>([A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d) ([!-~]+) ([!-~]+): ")
PRINTUSASCII = re.compile(r"[!-~]+")
SYSLOG_CONFIGS = st.builds(
    SyslogConfig,
    host=st.just("syslog"),
    transport=st.sampled_from(["udp", "tcp", "tls"]),
    framing=st.sampled_from(["octet-counting", "lf"]),
    format=st.sampled_from(["rfc5424", "rfc3164"]),
    facility=st.integers(0, 23),
    app_name=TEXT,
    max_message_bytes=st.one_of(st.none(), st.integers(200, 3000)),
).filter(lambda c: not (c.transport == "tls" and c.framing == "lf"))


def parse_structured_data(text: str) -> tuple[str, list[tuple[str, str]], str]:
    """SD-ID, the (name, unescaped value) pairs, and what follows the element; asserts RFC 5424 syntax."""
    assert text[0] == "[", text[:80]
    end_id = min(i for i in (text.find(" "), text.find("]")) if i > 0)
    sd_id, i, params = text[1:end_id], end_id, []
    while text[i] == " ":
        eq = text.index("=", i)
        name = text[i + 1 : eq]
        assert 1 <= len(name) <= 32 and PRINTUSASCII.fullmatch(name) and not set(name) & set('= ]"'), name
        assert text[eq + 1] == '"'
        i, value = eq + 2, []
        while text[i] != '"':
            if text[i] == "\\":
                assert text[i + 1] in '"\\]', f"a lone backslash in {name}"  # every backslash is escaped
                value.append(text[i + 1])
                i += 2
            else:
                assert text[i] != "]", f"an unescaped ']' in {name}"
                value.append(text[i])
                i += 1
        params.append((name, "".join(value)))
        i += 1
    assert text[i] == "]"
    return sd_id, params, text[i + 1 :]


@PROPERTY
@given(SYSLOG_CONFIGS, events())
def test_a_syslog_message_is_one_line_within_its_rfc_limits(config: SyslogConfig, event: Event) -> None:
    sink = SyslogSink(config)
    try:
        message = sink.format(event)
    except MessageTooLong:  # only its envelope and lists are left, and they are too long
        return
    frame = sink.frame(message)
    assert len(message) <= config.max_bytes
    shaped = len(sink._render(event)) > config.max_bytes
    text = message.decode("utf-8")  # strict: a cut never splits a character
    assert one_line(text), "CR, LF or NUL in a syslog message"
    pri = config.facility * 8 + SEVERITY[event.severity.value]
    if config.format == "rfc3164":
        header = RFC3164_HEADER.match(text)
        assert header and int(header[1]) == pri and text.endswith(f" event_id={event.event_id}"), text[:200]
        assert len(header[3]) <= 255 and len(header[4]) <= 32
    else:
        header = RFC5424_HEADER.match(text)
        assert header, text[:200]
        _, stamp, host, app, procid, msgid = header.groups()
        assert int(header[1]) == pri and datetime.fromisoformat(stamp) == event.timestamp
        for value, limit in ((host, 255), (app, 48), (procid, 128), (msgid, 32)):
            assert PRINTUSASCII.fullmatch(value) and len(value) <= limit
        sd_id, params, rest = parse_structured_data(text[header.end() :])
        assert sd_id == config.sd_id and (rest.startswith(" ") or (shaped and rest == ""))
        values = dict(reversed(params))  # first occurrence wins
        assert values["event_id"] == event.event_id
        for name, value in event.payload.items():
            if isinstance(value, str) and value and one_line(value):
                if not shaped:
                    assert values[name] == value, name  # escaped and unescaped back to the same text
                elif name in values:  # cut: a prefix of whole characters and a mark
                    assert values[name] == value or value.startswith(values[name].removesuffix("…")), name
    if config.transport == "udp":
        assert frame == message
    elif config.framing == "lf":
        assert frame.endswith(b"\n") and frame.count(b"\n") == 1
    else:
        count, _, rest = frame.partition(b" ")
        assert count.isdigit() and int(count) == len(rest) and rest == message


# -- the Pushgateway ------------------------------------------------------------------------------------
SEGMENT = re.compile(r"[A-Za-z0-9._~=-]+")


def grouping_key(path: str) -> list[tuple[str, str]]:
    """The (label, value) pairs of a /metrics/... path, base64 values decoded; asserts safe segments."""
    segments = path.removeprefix("/metrics/").split("/")
    assert len(segments) % 2 == 0 and all(SEGMENT.fullmatch(s) and s not in (".", "..") for s in segments[1::2])
    pairs = []
    for name, value in zip(segments[::2], segments[1::2], strict=False):
        if name.endswith("@base64"):
            name, value = name.removesuffix("@base64"), base64.urlsafe_b64decode(value + "==").decode()
        assert re.fullmatch(r"[a-z_]+", name)
        pairs.append((name, value))
    return pairs


@PROPERTY
@given(BATCHES, st.one_of(st.just("continuum"), IDS))
def test_pushgateway_paths_are_safe_and_label_values_escaped(batch: list[Event], job: str) -> None:
    client = MemoryClient(
        lambda method, url, body: (200, {"status": "success", "data": []}) if method == "GET" else (202, b"")
    )
    delivered_everything(PushgatewaySink(PushgatewayConfig("http://gw:9091", job=job), client).write(batch))
    pushed = {}
    for method, url, body, _ in client.sent[1:]:
        key = grouping_key(urlsplit(url).path)
        assert key[0] == ("job", job) and key[1][0] in ("printer", "instance")
        if method != "DELETE":
            families = list(text_string_to_metric_families(body.decode()))  # the Prometheus parser reads it
            pushed[key[1]] = {s.name: s for f in families for s in f.samples}
    info, last_us = {}, {}
    for event in batch:
        printer_id = event.payload.get("printer_id")
        if event.family == "printer" and isinstance(printer_id, str):  # a printer's older events are skipped
            if event.timestamp_us <= last_us.get(printer_id, -math.inf):
                continue
            last_us[printer_id] = event.timestamp_us
        if event.family == "printer" and event.event_type is not EventType.PRINTER_REMOVED:
            facts = {
                k: str(event.payload[n])
                for k, n in (("name", "printer_name"), ("location", "printer_location"))
                if event.payload.get(n) not in (None, "")
            }
            info[printer_id] = {**info.get(printer_id, {}), **facts}
        elif event.event_type is EventType.PRINTER_REMOVED:
            info.pop(printer_id, None)
    for printer_id, facts in info.items():
        sample = pushed[("printer", printer_id)].get("continuum_printer_info")
        for label, value in facts.items():  # the label value reads back exactly as the event held it
            assert sample.labels[label] == value


# -- Grafana, New Relic ---------------------------------------------------------------------------------
@PROPERTY
@given(ALERT_BATCHES)
def test_grafana_annotations_are_json_with_text_and_string_tags(batch: list[Event]) -> None:
    sink, client = alerting_sink(
        GrafanaSink,
        GrafanaConfig("http://grafana:3000", SecretStr("t"), "dash", 2),
        200,
        {"id": 7, "message": "Annotation added"},
    )
    delivered_everything(sink.write(batch))
    for method, _url, body, _ in client.sent:
        annotation = orjson.loads(body)
        assert method in ("POST", "PATCH") and isinstance(annotation["text"], str) and annotation["text"]
        assert all(isinstance(tag, str) for tag in annotation["tags"])


@PROPERTY
@given(BATCHES)
def test_new_relic_events_are_flat_with_at_most_255_attributes_of_4096_chars(batch: list[Event]) -> None:
    client = MemoryClient(lambda method, url, body: (200, {"success": True}))
    try:
        delivered_everything(NewRelicSink(NewRelicConfig("1234567", SecretStr("k")), client).write(batch))
    except TooLarge:  # over 1 MB of JSON: the runtime splits the batch
        return
    for obj in orjson.loads(client.sent[0][2]):
        assert len(obj) <= 255 and re.fullmatch(r"[A-Za-z0-9_:]+", obj["eventType"])
        for name, value in obj.items():
            assert isinstance(name, str) and len(name) <= 255
            assert (isinstance(value, str) and len(value) <= 4096) or (
                isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
            ), (name, value)


# -- NSCA -------------------------------------------------------------------------------------------------
def packet_fields(packet: bytes, output_size: int) -> tuple[int, str, str, str]:
    """Return code, host, service and output; asserts the layout, the CRC and NUL-terminated UTF-8 fields."""
    assert len(packet) == packet_size(output_size)
    version, crc, _, code = struct.unpack_from(">h2xIIh", packet)
    assert version == 3 and crc == zlib.crc32(packet[:4] + b"\0" * 4 + packet[8:])
    strings = struct.unpack_from(f">64s128s{output_size}s", packet, 14)
    assert all(b"\0" in s for s in strings), "a field without its NUL"
    return code, *(s[: s.index(b"\0")].decode("utf-8") for s in strings)


@PROPERTY
@given(
    events(),
    st.sampled_from(list(OUTPUT_SIZE)),
    st.booleans(),
    st.binary(min_size=128, max_size=128),
    st.binary(max_size=20),
)
def test_an_nsca_packet_holds_each_field_whole_and_clean(
    event: Event, packet: str, escape: bool, iv: bytes, password: bytes
) -> None:
    output_size = OUTPUT_SIZE[packet]
    data = build_packet(check_result(event, output_size, escape), 1_795_800_123, output_size)
    data = xor_encrypt(xor_encrypt(data, iv, password), iv, password)  # what the server decrypts
    code, host, service, output = packet_fields(data, output_size)
    assert code in (0, 1, 2, 3)
    assert host and len(host.encode()) <= 63 and len(service.encode()) <= 127
    assert len(output.encode()) <= output_size - 1
    for name in (host, service):  # fields of the command line nsca writes: no ';', nothing unprintable
        assert ";" not in name and name.isprintable(), name
    assert "\r" not in output and "\0" not in output
    # Newlines pass only when the server escapes them itself (nsca 2.10.1+, ``escape`` off).
    assert not escape or "\n" not in output
    assert f"[event {event.event_id}]" in output  # operators trace results by it: never cut


# -- the alerting vendors -----------------------------------------------------------------------------------
@PROPERTY
@given(ALERT_BATCHES)
def test_pagerduty_events_stay_within_its_limits(batch: list[Event]) -> None:
    sink, client = alerting_sink(PagerDutySink, PagerDutyConfig(SecretStr("r" * 32)), 202, {"status": "success"})
    delivered_everything(sink.write(batch))
    for _, _url, body, _ in client.sent:
        assert len(body) <= 512_000
        sent = orjson.loads(body)
        assert sent["event_action"] in ("trigger", "resolve") and 1 <= len(sent["dedup_key"]) <= 255
        if sent["event_action"] == "trigger":
            payload = sent["payload"]
            assert 1 <= len(payload["summary"]) <= 1024 and payload["severity"] in {s.value for s in Severity}
            assert isinstance(payload["source"], str) and payload["source"]


@PROPERTY
@given(ALERT_BATCHES)
def test_opsgenie_alerts_stay_within_its_limits(batch: list[Event]) -> None:
    config = OpsgenieConfig(SecretStr("k"), url="https://api.opsgenie.com")
    sink, client = alerting_sink(OpsgenieSink, config, 202, {"result": "Request will be processed"})
    delivered_everything(sink.write(batch))
    for _, url, body, _ in client.sent:
        sent, path = orjson.loads(body), urlsplit(url).path
        if path == "/v2/alerts":
            assert 1 <= len(sent["message"]) <= 130 and 1 <= len(sent["alias"]) <= 512
            assert len(sent["description"]) <= 15_000
            assert all(isinstance(k, str) and isinstance(v, str) for k, v in sent["details"].items())
            assert sent["priority"] in ("P1", "P2", "P3", "P5")
        else:  # close by alias: the alias is one path segment, whatever it holds
            segments = path.split("/")
            assert segments[:3] == ["", "v2", "alerts"] and segments[4:] == ["close"] and len(segments) == 5
            assert segments[3] not in (".", "..")  # a dot segment would be resolved away on the way
            assert 1 <= len(unquote(segments[3])) <= 512 and urlsplit(url).query == "identifierType=alias"


@PROPERTY
@given(ALERT_BATCHES)
def test_victorops_alerts_carry_a_valid_message_type(batch: list[Event]) -> None:
    config = VictorOpsConfig(SecretStr("api"), SecretStr("routing"))
    sink, client = alerting_sink(VictorOpsSink, config, 200, {"result": "success", "entity_id": "x"})
    delivered_everything(sink.write(batch))
    for _, _, body, _ in client.sent:
        sent = orjson.loads(body)
        assert sent["message_type"] in ("CRITICAL", "WARNING", "INFO", "RECOVERY")
        assert isinstance(sent["entity_id"], str) and len(sent["entity_display_name"]) <= 500
        assert isinstance(sent["timestamp"], int) and sent["state_start_time"] == sent["timestamp"]
