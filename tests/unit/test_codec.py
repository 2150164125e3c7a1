from __future__ import annotations

import pytest
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
from confluent_kafka.serialization import MessageField, SerializationContext

from continuum_events.codec import SINGLE_OBJECT_MAGIC, DecodeError, EventCodec, schema_fingerprint
from continuum_events.events import EVENT_SCHEMA, Event, EventType, Severity, new_event_id, now_micros
from tests.samples import ALL_TYPES, full_payload, minimal_payload

TOPIC = "printer-events"


def _event(event_type: EventType, payload: dict) -> Event:
    return Event(
        new_event_id(), event_type, Severity.ERROR, now_micros(), payload, source="health-probe", details={"note": "x"}
    )


def _same(a: Event, b: Event) -> None:
    assert (a.event_id, a.event_type, a.severity, a.timestamp_us, a.source, dict(a.details)) == (
        b.event_id,
        b.event_type,
        b.severity,
        b.timestamp_us,
        b.source,
        dict(b.details),
    )
    assert {k: v for k, v in b.payload.items() if k in a.payload} == dict(a.payload)


@pytest.fixture
def registry() -> SchemaRegistryClient:
    return SchemaRegistryClient.new_client({"url": "mock://continuum-tests"})


@pytest.mark.parametrize("event_type", ALL_TYPES, ids=str)
@pytest.mark.parametrize("fill", [full_payload, minimal_payload], ids=["full", "minimal"])
def test_every_type_round_trips_single_object(event_type: EventType, fill) -> None:
    codec, event = EventCodec(), _event(event_type, fill(event_type.family, 3))
    data = codec.encode(event, TOPIC)
    assert data[:2] == SINGLE_OBJECT_MAGIC and data[2:10] == schema_fingerprint(EVENT_SCHEMA)
    _same(event, codec.decode(data, TOPIC, 0, 0))


@pytest.mark.parametrize("event_type", ALL_TYPES, ids=str)
def test_every_type_round_trips_confluent_and_matches_the_official_serde(event_type: EventType, registry) -> None:
    codec, event = EventCodec(registry), _event(event_type, full_payload(event_type.family, 5))
    data = codec.encode(event, TOPIC)
    assert data[0] == 0
    _same(event, codec.decode(data, TOPIC, 1, 2))
    # confluent-kafka's own deserializer reads our bytes, and we read its bytes.
    ctx = SerializationContext(TOPIC, MessageField.VALUE)
    official = AvroDeserializer(registry)(data, ctx)
    assert str(official["event_id"]) == event.event_id and official["event_type"] == event_type.symbol
    theirs = AvroSerializer(registry, EventCodecSchema(), conf={"auto.register.schemas": True})(
        {**event.to_record(), "payload": event.to_record()["payload"]}, ctx
    )
    _same(event, codec.decode(theirs, TOPIC, 1, 3))


def EventCodecSchema() -> str:
    import json

    return json.dumps(EVENT_SCHEMA)


def test_a_registry_reader_also_reads_single_object_records(registry) -> None:
    event = _event(EventType.PRINTER_JAM, minimal_payload("printer"))
    _same(event, EventCodec(registry).decode(EventCodec().encode(event, TOPIC), TOPIC, 0, 0))


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "empty value"),
        (None, "empty value"),
        (b"\x7bnot avro", "unknown framing: first byte 0x7b"),
        (SINGLE_OBJECT_MAGIC + b"\x01\x02", "truncated single-object header"),
        (SINGLE_OBJECT_MAGIC + bytes(8) + b"\x00", "unknown schema fingerprint 0000000000000000"),
        (b"\x00\x00\x00\x00\x07rest", "no schema registry is configured"),
    ],
)
def test_bad_bytes_raise_one_typed_error_naming_where(data: bytes | None, reason: str) -> None:
    with pytest.raises(DecodeError) as caught:
        EventCodec().decode(data, TOPIC, 4, 1234)
    assert reason in str(caught.value)
    assert str(caught.value).startswith("cannot decode printer-events[4]@1234: ")
    assert (caught.value.topic, caught.value.partition, caught.value.offset) == (TOPIC, 4, 1234)


def test_corrupt_and_truncated_bodies_are_decode_errors() -> None:
    codec = EventCodec()
    good = codec.encode(_event(EventType.PRINTER_OFFLINE, full_payload("printer")), TOPIC)
    for bad in (good[:-5], good[:12], good + b"\x00\x01", good[:10] + b"\xff" * 40):
        with pytest.raises(DecodeError, match="corrupt Avro body|not an event envelope"):
            codec.decode(bad, TOPIC, 0, 9)


def test_unknown_registry_id_is_a_decode_error(registry) -> None:
    with pytest.raises(DecodeError, match="schema id 4242 not found in the registry"):
        EventCodec(registry).decode(b"\x00\x00\x00\x10\x92body", TOPIC, 0, 0)
