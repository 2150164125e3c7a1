"""New Relic's flat event model: string and number values only, limits enforced, and
timestamps only within the 24 hours New Relic accepts."""

from __future__ import annotations

import time

import pytest
from pydantic import SecretStr

from continuum_events.connectors.base import TooLarge
from continuum_events.connectors.newrelic import MAX_ATTRIBUTES, MAX_VALUE, NewRelicConfig, NewRelicSink, flatten
from continuum_events.events import Event, EventType, Severity, new_event_id


def event(age_s: float = 0, **payload) -> Event:
    return Event(
        new_event_id(),
        EventType.PRINTER_ERROR,
        Severity.ERROR,
        int((time.time() - age_s) * 1e6),
        {"printer_id": "p-1", "conditions": ["jammed", "door_open"], **payload},
        details={f"k{i:03d}": "v" for i in range(300)},
    )


def test_values_are_flat_strings_or_numbers_and_details_are_prefixed() -> None:
    out = flatten(event(response_time_ms=12.5, error_message="x" * 5000), "ContinuumEvent")
    assert out["eventType"] == "ContinuumEvent" and out["conditions"] == "jammed, door_open"
    assert out["response_time_ms"] == 12.5 and len(out["error_message"]) == MAX_VALUE
    assert all(isinstance(v, (str, int, float)) and not isinstance(v, bool) for v in out.values())
    assert "details.k000" in out and len(out) == MAX_ATTRIBUTES


def test_recent_events_carry_their_timestamp_and_old_ones_keep_it_aside() -> None:
    fresh, old = flatten(event(), "E"), flatten(event(age_s=3 * 24 * 3600), "E")
    assert isinstance(fresh["timestamp"], int) and "eventTimestamp" not in fresh
    assert "timestamp" not in old and old["eventTimestamp"] < fresh["timestamp"] - 2 * 24 * 3600 * 1000


def test_a_request_over_one_megabyte_is_split_before_sending() -> None:
    sink = NewRelicSink(NewRelicConfig("1234567", SecretStr("k" * 40), url="http://127.0.0.1:9"))
    with pytest.raises(TooLarge):
        sink.write([event(error_message="y" * 4000) for _ in range(300)])


@pytest.mark.parametrize(("field", "value"), [("event_type", "Continuum Event"), ("account_id", "acme")])
def test_configuration_is_validated(field: str, value: str) -> None:
    options = {"account_id": "1234567", "license_key": SecretStr("k"), field: value}
    with pytest.raises(ValueError, match=field):
        NewRelicConfig(**options)


def test_values_are_cut_at_4096_bytes_of_utf8_never_inside_a_character() -> None:
    from continuum_events.devtools.receivers import NewRelicReceiver

    out = flatten(event(error_message="ab" + "€" * 2000, printer_name="é" * 3000), "ContinuumEvent")
    message, name = out["error_message"].encode(), out["printer_name"].encode()
    assert len(message) == 2 + 3 * 1364 and message.decode().endswith("€")  # the 1,365th € would end at byte 4097
    assert len(name) == MAX_VALUE and set(out["printer_name"]) == {"é"}
    with NewRelicReceiver() as newrelic:
        sink = NewRelicSink(
            NewRelicConfig(NewRelicReceiver.ACCOUNT_ID, SecretStr(NewRelicReceiver.LICENSE_KEY), url=newrelic.url)
        )
        sink.write([event(error_message="€" * 3000)])
        [sent] = newrelic.received.bodies
        sink.close()
    assert len(sent["error_message"].encode()) == 4095
