"""One codec for events on the wire, in either of the two Avro framings.

* **Single-object encoding** (the Avro specification's; the default when no schema
  registry is configured): ``C3 01`` + the writer schema's 8-byte CRC-64-AVRO
  fingerprint + the Avro body. Fingerprints resolve against ``schemas/`` — the
  current schema and every frozen version in ``schemas/history/``.
* **Confluent wire format** (when a schema-registry URL is configured): ``00`` + the
  4-byte registry id + the Avro body, registered under ``<topic>-value``.

Decoding looks at the first byte, so a consumer reads both framings (useful while a
deployment moves to a registry). Every failure is a :class:`DecodeError` naming the
topic, partition and offset::

    codec = EventCodec()
    data = codec.encode(event, "printer-events")
    codec.decode(data, "printer-events", partition=0, offset=41)  # -> Event
"""

from __future__ import annotations

import io
import json
import struct
import threading
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import fastavro
from fastavro.schema import fingerprint, to_parsing_canonical_form

from continuum_events.avro import compile_encoder
from continuum_events.events import EVENT_SCHEMA, PAYLOAD_FIELDS, Event, EventType
from continuum_events.schemas import history

if TYPE_CHECKING:
    from confluent_kafka.schema_registry import SchemaRegistryClient

SINGLE_OBJECT_MAGIC = b"\xc3\x01"
CONFLUENT_MAGIC = 0
_REGISTRY_ID = struct.Struct(">I")
#: Times a datetime holds (years 1 to 9999, a day inside each end): every consumer formats them,
#: and Avro's long would also take nanoseconds written as microseconds (year 55,000).
TIMESTAMP_MIN_US, TIMESTAMP_MAX_US = -62_135_510_400_000_000, 253_402_214_400_000_000


class DecodeError(ValueError):
    """Bytes that are not a readable event; says where they came from and why."""

    def __init__(
        self, reason: str, *, topic: str | None = None, partition: int | None = None, offset: int | None = None
    ) -> None:
        self.reason = reason
        self.topic, self.partition, self.offset = topic, partition, offset
        where = f"{topic or '<unknown topic>'}[{'?' if partition is None else partition}]@{'?' if offset is None else offset}"
        super().__init__(f"cannot decode {where}: {reason}")


def schema_fingerprint(schema: Any) -> bytes:
    """The 8 bytes the single-object header carries (little-endian CRC-64-AVRO)."""
    return bytes.fromhex(fingerprint(to_parsing_canonical_form(fastavro.parse_schema(schema)), "CRC-64-AVRO"))


class EventCodec:
    """Encode and decode event envelopes; thread-safe.

    ``registry`` switches encoding to the Confluent wire format; without it, the
    single-object encoding is used. ``auto_register`` off means the schema must
    already be registered (production registries often forbid registration).
    """

    def __init__(
        self,
        registry: SchemaRegistryClient | None = None,
        *,
        auto_register: bool = True,
        schema: Mapping[str, Any] = EVENT_SCHEMA,
        versions: list[tuple[str, dict[str, Any]]] | None = None,
    ) -> None:
        self.registry = registry
        self.auto_register = auto_register
        self.schema = dict(schema)
        self.parsed = fastavro.parse_schema(self.schema)
        # Reading without logical types hands back the event id as text and the timestamp
        # as integer microseconds, which is what Event keeps: ~25 % faster decoding.
        self._reader = fastavro.parse_schema(_plain(self.schema))
        self._encode_body = compile_encoder(self.parsed)
        self._fingerprint = schema_fingerprint(self.schema)
        # Writer schemas by fingerprint: the current one reads without resolution.
        self._writers: dict[bytes, Any] = {self._fingerprint: None}
        for _, old in history("event") if versions is None else versions:
            fp = schema_fingerprint(old)
            if fp != self._fingerprint:
                self._writers[fp] = fastavro.parse_schema(_plain(old))
        self._prefixes: dict[str, bytes] = {}
        self._registry_writers: dict[int, Any] = {}
        self._lock = threading.Lock()

    @property
    def framing(self) -> str:
        return "confluent" if self.registry is not None else "single-object"

    # -- encoding -----------------------------------------------------------------
    def prefix(self, topic: str) -> bytes:
        """The framing header for records written to ``topic`` (cached)."""
        prefix = self._prefixes.get(topic)
        if prefix is None:
            prefix = (
                self._registry_prefix(topic) if self.registry is not None else SINGLE_OBJECT_MAGIC + self._fingerprint
            )
            self._prefixes[topic] = prefix
        return prefix

    def _registry_prefix(self, topic: str) -> bytes:
        from confluent_kafka.schema_registry import Schema

        assert self.registry is not None
        subject, schema = f"{topic}-value", Schema(json.dumps(self.schema), "AVRO")
        if self.auto_register:
            schema_id: int | None = self.registry.register_schema(subject, schema)
        else:
            schema_id = self.registry.lookup_schema(subject, schema).schema_id
        if schema_id is None:
            raise ValueError(f"the schema registry gave no id for {subject}")
        return bytes([CONFLUENT_MAGIC]) + _REGISTRY_ID.pack(schema_id)

    def body_encoder(self) -> Callable[..., bytes]:
        """``encode(record, prefix=b"") -> bytes``: the Avro body after ``prefix`` (pass
        :meth:`prefix` for a framed record); raises SchemaViolation naming the field."""
        return self._encode_body

    def encode_record(self, record: Mapping[str, Any], topic: str) -> bytes:
        return self._encode_body(record, self.prefix(topic))

    def encode(self, event: Event, topic: str) -> bytes:
        return self.encode_record(event.to_record(), topic)

    # -- decoding -----------------------------------------------------------------
    def decode(
        self, data: bytes | None, topic: str | None = None, partition: int | None = None, offset: int | None = None
    ) -> Event:
        record = self.decode_record(data, topic, partition, offset)
        try:
            event = Event.from_record(record)
        except (KeyError, ValueError) as exc:
            raise DecodeError(f"not an event envelope: {exc}", topic=topic, partition=partition, offset=offset) from exc
        # Avro cannot say either; a consumer that trusted them would fail on this event at every retry.
        if not TIMESTAMP_MIN_US <= event.timestamp_us <= TIMESTAMP_MAX_US:
            raise DecodeError(
                f"timestamp {event.timestamp_us} is not microseconds between years 1 and 9999",
                topic=topic,
                partition=partition,
                offset=offset,
            )
        # A reader fills in every field of the branch it read, so other fields mean another family's payload.
        if event.event_type is not EventType.UNKNOWN and event.payload.keys() != PAYLOAD_FIELDS[event.family]:
            raise DecodeError(
                f"a {event.event_type.value} event with another family's payload",
                topic=topic,
                partition=partition,
                offset=offset,
            )
        return event

    def decode_record(
        self, data: bytes | None, topic: str | None = None, partition: int | None = None, offset: int | None = None
    ) -> dict[str, Any]:
        where: dict[str, Any] = {"topic": topic, "partition": partition, "offset": offset}
        if not data:
            raise DecodeError("empty value (tombstone or missing payload)", **where)
        if data[:2] == SINGLE_OBJECT_MAGIC:
            if len(data) < 10:
                raise DecodeError("truncated single-object header", **where)
            fp = bytes(data[2:10])
            if fp not in self._writers:
                raise DecodeError(
                    f"unknown schema fingerprint {fp.hex()} (not in schemas/ or schemas/history/)", **where
                )
            writer, body = self._writers[fp], memoryview(data)[10:]
        elif data[0] == CONFLUENT_MAGIC:
            if len(data) < 5:
                raise DecodeError("truncated Confluent header", **where)
            schema_id = _REGISTRY_ID.unpack_from(data, 1)[0]
            writer, body = self._registry_writer(schema_id, where), memoryview(data)[5:]
        else:
            raise DecodeError(
                f"unknown framing: first byte 0x{data[0]:02x} is neither single-object nor Confluent", **where
            )
        stream = io.BytesIO(body)
        try:
            if writer is None:
                record = fastavro.schemaless_reader(stream, self._reader, None)
            else:
                record = fastavro.schemaless_reader(stream, writer, self._reader)
        except Exception as exc:  # fastavro raises many types on corrupt input
            raise DecodeError(f"corrupt Avro body ({type(exc).__name__}: {exc})", **where) from exc
        if stream.tell() != len(body):
            raise DecodeError(f"corrupt Avro body ({len(body) - stream.tell()} trailing bytes)", **where)
        return record  # type: ignore[return-value]

    def _registry_writer(self, schema_id: int, where: dict[str, Any]) -> Any:
        writer = self._registry_writers.get(schema_id)
        if writer is not None:
            return writer
        if self.registry is None:
            raise DecodeError(
                f"Confluent-framed record (schema id {schema_id}) but no schema registry is configured", **where
            )
        try:
            schema = json.loads(self.registry.get_schema(schema_id).schema_str or "")
        except Exception as exc:
            raise DecodeError(f"schema id {schema_id} not found in the registry ({exc})", **where) from exc
        try:
            parsed = fastavro.parse_schema(_plain(schema))
        except Exception as exc:  # a JSON Schema (the registry holds those too), or not a schema at all
            raise DecodeError(
                f"schema id {schema_id} is not an Avro schema ({type(exc).__name__}: {exc})", **where
            ) from exc
        with self._lock:
            self._registry_writers[schema_id] = parsed
        return parsed


def _plain(schema: Any) -> Any:
    """The schema without logicalType annotations (same binary encoding)."""
    if isinstance(schema, dict):
        return {k: _plain(v) for k, v in schema.items() if k != "logicalType"}
    if isinstance(schema, list):
        return [_plain(x) for x in schema]
    return schema
