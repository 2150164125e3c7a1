"""The probe's judgement, without a network: decoding answers and the state machine's
hysteresis, change-only events, and a state that survives a restart."""

from __future__ import annotations

import pytest

from continuum_events.producers.health import Policy, PrinterHealth, Reading, decode, error_bits, toner_percent

UP = Reading(True, 3.0)
DOWN = Reading(False)
MISCONFIGURED = Reading(False, present=True)


def feed(health: PrinterHealth, *readings: Reading, policy: Policy = Policy()) -> list[str]:
    return [kind for r in readings for kind, _ in health.observe(r, policy)]


@pytest.mark.parametrize(
    ("octets", "names"),
    [
        (b"\x20\x00", {"lowToner"}),
        (b"\x04\x00", {"jammed"}),
        (b"\x02\x00", {"offline"}),
        (b"\x04", {"jammed"}),
        (b"\x00\x02", {"overduePreventMaint"}),
        (b"", set()),
        (b"\x84\x80\xff", {"lowPaper", "jammed", "inputTrayMissing"}),
    ],
)
def test_error_state_bits_follow_rfc_2790(octets: bytes, names: set[str]) -> None:
    assert error_bits(octets) == names


@pytest.mark.parametrize(
    ("level", "capacity", "percent"), [(8, 100, 8), (500, 2000, 25), (-3, 100, None), (50, 0, None), (120, 100, 100)]
)
def test_toner_percent_only_when_the_printer_says(level: int, capacity: int, percent: int | None) -> None:
    assert toner_percent(level, capacity) == percent


def test_malformed_values_are_noted_and_ignored() -> None:
    reading = decode(
        {
            "device_status": b"running",
            "error_state": 7,
            "toner_level": "abc",
            "toner_capacity": 100,
            "alert_codes": ["x", 8],
        },
        4.2,
    )
    assert reading.answered and reading.conditions == {"jammed"}
    assert set(reading.malformed) == {"device_status", "error_state", "toner_level", "alert_codes"}


def test_first_contact_is_silent_and_offline_needs_three_failures() -> None:
    health = PrinterHealth()
    assert feed(health, UP) == []
    assert feed(health, DOWN, DOWN) == []
    assert feed(health, DOWN) == ["printer.offline"]
    assert feed(health, DOWN, DOWN) == [], "offline is announced once"


def test_online_needs_two_good_polls_and_a_short_flap_says_nothing() -> None:
    health = PrinterHealth()
    feed(health, UP)
    assert feed(health, DOWN, UP, DOWN, DOWN, UP) == [], "never three failures in a row"
    feed(health, DOWN, DOWN, DOWN)
    assert feed(health, UP) == []
    assert feed(health, UP) == ["printer.online"]


def test_a_silent_snmp_with_an_open_print_port_is_a_probe_problem_not_an_outage() -> None:
    health = PrinterHealth()
    feed(health, UP)
    assert feed(health, MISCONFIGURED, MISCONFIGURED, UP, MISCONFIGURED, MISCONFIGURED) == [], (
        "as patient as for outages"
    )
    assert feed(health, *[MISCONFIGURED] * 10) == ["probe.misconfigured"]
    assert health.status == "online" and health.failures == 0


def test_conditions_are_reported_on_change_only() -> None:
    health = PrinterHealth()
    jam = decode({"error_state": b"\x04\x00", "device_status": 3}, 2)
    door = decode({"error_state": b"\x08\x00", "device_status": 3}, 2)
    assert feed(health, UP, jam, jam) == ["printer.jam"]
    assert feed(health, door, door) == ["printer.error"]
    ((kind, fields),) = health.observe(UP)
    assert kind == "printer.online" and fields["conditions"] == [], "a cleared error says healthy again"


def test_low_toner_sets_at_ten_and_clears_at_twenty() -> None:
    health = PrinterHealth()
    toner = [decode({"toner_level": level, "toner_capacity": 100}, 2) for level in (30, 10, 9, 15, 19, 20, 10)]
    assert feed(health, *toner) == ["printer.low_toner", "printer.low_toner"]


def test_events_carry_the_failure_count_and_response_time() -> None:
    health = PrinterHealth()
    feed(health, UP)
    ((_, offline),) = [e for r in (DOWN, DOWN, DOWN) for e in health.observe(r)]
    assert offline == {"consecutive_failures": 3}
    health.observe(Reading(True, 7.5))
    ((_, online),) = health.observe(Reading(True, 7.5))
    assert online["response_time_ms"] == 7.5 and online["consecutive_failures"] == 0


def test_state_round_trips_so_a_restart_does_not_repeat_events() -> None:
    jam = decode({"error_state": b"\x04\x00"}, 1)
    health = PrinterHealth()
    feed(health, UP, DOWN, DOWN, DOWN, jam)
    restored = PrinterHealth.from_dict(health.to_dict())
    assert restored == health and restored.status == "offline" and restored.successes == 1
    assert feed(restored, jam) == feed(health, jam) == ["printer.online", "printer.jam"]
