"""The compiled encoder must write exactly what the reference implementation writes."""

from __future__ import annotations

import io
from datetime import UTC, datetime

import fastavro
import pytest

from continuum_events.avro import SchemaViolation, compile_encoder
from continuum_events.events import PARSED_EVENT_SCHEMA, PAYLOAD_BRANCH, EventType
from tests.samples import ALL_TYPES, full_payload, minimal_payload

ENCODE = compile_encoder(PARSED_EVENT_SCHEMA)


def _record(event_type: EventType, payload: dict, **over) -> dict:
    return {
        "event_id": "0b7f4a52-33a4-4f7e-9a0e-2a3f8e3a9c11",
        "event_type": event_type.symbol,
        "severity": "error",
        "timestamp": 1_767_000_000_123_456,
        "source": "continuum",
        "payload": (PAYLOAD_BRANCH[event_type.family], payload),
        "details": {"site": "HQ", "ünï": "cødé"},
        **over,
    }


def _reference(record: dict) -> bytes:
    out = io.BytesIO()
    fastavro.schemaless_writer(out, PARSED_EVENT_SCHEMA, record)
    return out.getvalue()


@pytest.mark.parametrize("event_type", ALL_TYPES, ids=str)
@pytest.mark.parametrize("fill", [full_payload, minimal_payload], ids=["full", "minimal"])
def test_bytes_match_fastavro(event_type: EventType, fill) -> None:
    record = _record(event_type, fill(event_type.family, 7))
    assert ENCODE(record) == _reference(record)


@pytest.mark.parametrize("value", [0, -1, 63, 64, -65, 2**31 - 1, -(2**31), 2**40, -(2**62)])
def test_varints_match_fastavro_at_the_edges(value: int) -> None:
    record = _record(
        EventType.JOB_COMPLETED, {"job_id": "j", "pages": max(min(value, 2**31 - 1), -(2**31))}, timestamp=value
    )
    assert ENCODE(record) == _reference(record)


def test_aware_datetimes_encode_as_micros() -> None:
    when = datetime(2026, 11, 27, 12, 0, 0, 123456, tzinfo=UTC)
    assert ENCODE(_record(EventType.SYSTEM_INFO, {}, timestamp=when)) == ENCODE(
        _record(EventType.SYSTEM_INFO, {}, timestamp=int(when.timestamp()) * 1_000_000 + 123456)
    )


@pytest.mark.parametrize(
    ("payload", "path", "problem"),
    [
        ({"printer_id": 17}, "payload.printer_id", "expected string, got int (17)"),
        ({"printer_id": "p", "consecutive_failures": "3"}, "payload.consecutive_failures", "expected int"),
        ({"printer_id": "p", "consecutive_failures": True}, "payload.consecutive_failures", "expected int"),
        ({"printer_id": "p", "consecutive_failures": 2**31}, "payload.consecutive_failures", "expected int (32-bit)"),
        ({"printer_id": "p", "response_time_ms": "fast"}, "payload.response_time_ms", "expected double"),
        ({"printer_id": "p", "protocols": "ipp"}, "payload.protocols", "expected a list"),
        ({"printer_id": "p", "protocols": ["ipp", 9100]}, "payload.protocols[]", "expected string"),
        ({"printer_id": "p", "colour": "red"}, "payload.colour", "unknown field"),
        ({"printer_name": "no id"}, "payload.printer_id", "required field is missing"),
    ],
)
def test_violations_name_the_field(payload: dict, path: str, problem: str) -> None:
    with pytest.raises(SchemaViolation) as caught:
        ENCODE(_record(EventType.PRINTER_OFFLINE, payload))
    assert caught.value.path == path
    assert problem in caught.value.problem


def test_naive_datetime_and_bad_enum_are_refused() -> None:
    with pytest.raises(SchemaViolation, match="naive datetime"):
        ENCODE(_record(EventType.SYSTEM_INFO, {}, timestamp=datetime(2026, 1, 1)))
    with pytest.raises(SchemaViolation, match="'loud' is not a Severity"):
        ENCODE(_record(EventType.SYSTEM_INFO, {}, severity="loud"))
    with pytest.raises(SchemaViolation, match=r"details\[\]: expected string"):
        ENCODE(_record(EventType.SYSTEM_INFO, {}, details={"n": 1}))
