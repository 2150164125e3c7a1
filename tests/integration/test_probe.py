"""The health probe against a simulated fleet (snmpsim, real UDP SNMP): a state change
gives exactly the expected event, a short flap none, an unreachable printer goes offline
after three sweeps and online after two, a wrong community is a probe problem, malformed
answers never crash it, its state survives a restart, and printers added in Continuum
are probed from the next sweep."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from continuum_events.devtools.fleet import SimulatedFleet
from continuum_events.producers.health import Policy
from continuum_events.producers.inventory import PrinterEntry
from continuum_events.producers.probe import Probe, ProbeConfig
from continuum_events.producers.snmp import Timing

FAST = Timing(timeout_s=1.0, retries=1, tcp_timeout_s=0.5)


@pytest.fixture(scope="module")
def fleet() -> Iterator[SimulatedFleet]:
    with SimulatedFleet(12, tcp=True) as f:
        yield f


class Recorder:
    def __init__(self) -> None:
        self.events: list[tuple[str, dict[str, Any], dict[str, str]]] = []

    def __call__(self, kind: str, payload: dict[str, Any], details: dict[str, str]) -> None:
        self.events.append((kind, payload, details))

    def take(self) -> list[tuple[str, str]]:
        """(event type, printer id) emitted since the last take."""
        taken = [(k, p.get("printer_id") or d.get("printer_id")) for k, p, d in self.events]
        self.events.clear()
        return taken


def entries(fleet: SimulatedFleet, *names: str, **override: Any) -> list[PrinterEntry]:
    rows = [row for row in fleet.inventory() if row["id"] in names]
    return [PrinterEntry.model_validate({**row, **override}) for row in rows]


def probe_for(printers: list[PrinterEntry], state: Path | None = None) -> tuple[Probe, Recorder]:
    recorder = Recorder()
    return Probe(printers, recorder, ProbeConfig(timing=FAST, policy=Policy(3, 2), state_path=state)), recorder


def sweeps(probe: Probe, n: int = 1) -> None:
    async def run() -> None:
        for _ in range(n):
            await probe.sweep(window_s=0)

    asyncio.run(run())


def test_a_state_change_gives_exactly_the_expected_event(fleet: SimulatedFleet) -> None:
    name = "prn-0000"
    probe, seen = probe_for(entries(fleet, name))
    sweeps(probe, 2)
    assert seen.take() == [], "a printer first seen healthy is not news"

    fleet.set_state(name, error_bits={"jammed"}, printer_status=1)
    sweeps(probe, 2)
    assert seen.take() == [("printer.jam", name)]
    fleet.set_state(name, toner=(6, 100))
    sweeps(probe, 2)
    assert seen.take() == [("printer.low_toner", name)]
    fleet.set_state(name, error_bits={"doorOpen"}, toner=(6, 100))
    sweeps(probe)
    ((kind, payload, _),) = seen.events
    assert kind == "printer.error" and payload["error_message"] == "doorOpen"
    assert payload["toner_level_percent"] == 6 and payload["printer_ip"] == "127.0.0.1"
    assert payload["response_time_ms"] > 0 and payload["printer_location"]
    seen.take()
    fleet.set_state(name)
    sweeps(probe)
    assert seen.take() == [("printer.online", name)], "the error cleared: healthy again"


def test_a_flap_shorter_than_the_hysteresis_says_nothing(fleet: SimulatedFleet) -> None:
    name = "prn-0001"
    probe, seen = probe_for(entries(fleet, name))
    sweeps(probe)
    fleet.make_unreachable(name)
    sweeps(probe, 2)
    fleet.restore(name)
    sweeps(probe, 2)
    assert seen.take() == []


def test_an_unreachable_printer_goes_offline_after_three_sweeps_and_online_after_two(fleet: SimulatedFleet) -> None:
    name = "prn-0002"
    probe, seen = probe_for(entries(fleet, name))
    sweeps(probe)
    fleet.make_unreachable(name)
    sweeps(probe, 2)
    assert seen.take() == []
    sweeps(probe)
    ((kind, payload, _),) = seen.events
    assert kind == "printer.offline" and payload["consecutive_failures"] == 3
    seen.take()
    sweeps(probe, 3)
    assert seen.take() == [], "offline is said once"
    fleet.restore(name)
    sweeps(probe)
    assert seen.take() == []
    sweeps(probe)
    assert seen.take() == [("printer.online", name)]


def test_a_wrong_community_is_a_probe_problem_not_an_outage(fleet: SimulatedFleet) -> None:
    name = "prn-0003"
    probe, seen = probe_for(entries(fleet, name, community="not-the-community"))
    sweeps(probe, 5)
    ((kind, payload, details),) = seen.events
    assert kind == "system.warning" and payload["error_code"] == "snmp_unanswered"
    assert details == {"printer_id": name} and "community" in payload["message"]
    assert "not-the-community" not in payload["message"], "a community is a credential"


def test_malformed_answers_are_survived(fleet: SimulatedFleet) -> None:
    name = "prn-0004"
    fleet.set_raw(name, "1.3.6.1.2.1.25.3.2.1.5.1", "4", "running")
    fleet.set_raw(name, "1.3.6.1.2.1.43.11.1.1.9.1.1", "4", "abc")
    fleet.set_raw(name, "1.3.6.1.2.1.25.3.5.1.2.1", "4x", "0400ffffff")
    probe, seen = probe_for(entries(fleet, name))
    sweeps(probe, 3)
    assert seen.take() == [("printer.jam", name)], "what is readable is still used"
    assert probe.health[name].status == "online"


def test_state_survives_a_restart_without_repeating_events(fleet: SimulatedFleet, tmp_path: Path) -> None:
    name, state = "prn-0005", tmp_path / "probe.json"
    probe, seen = probe_for(entries(fleet, name), state)
    sweeps(probe)
    fleet.make_unreachable(name)
    sweeps(probe, 3)
    assert seen.take() == [("printer.offline", name)]
    probe.close()

    restarted, seen = probe_for(entries(fleet, name), state)
    sweeps(restarted, 3)
    assert seen.take() == [], "the restarted probe remembers the outage"
    fleet.restore(name)
    sweeps(restarted, 2)
    assert seen.take() == [("printer.online", name)]


def test_printers_added_and_removed_in_continuum_are_followed(fleet: SimulatedFleet) -> None:
    added = next(row for row in fleet.inventory() if row["id"] == "prn-0006")
    probe, seen = probe_for(entries(fleet, "prn-0007"))
    probe.config = ProbeConfig(timing=FAST, defaults={"community": added["community"], "snmp_port": added["snmp_port"]})
    probe.printer_event(
        "printer.added", {"printer_id": "prn-0006", "printer_name": added["name"], "printer_ip": added["ip"]}
    )
    fleet.set_state("prn-0006", error_bits={"jammed"})
    sweeps(probe)
    assert seen.take() == [("printer.jam", "prn-0006")]
    probe.printer_event("printer.removed", {"printer_id": "prn-0006"})
    sweeps(probe)
    assert set(probe.printers) == {"prn-0007"}


@pytest.mark.broker
def test_events_reach_printer_events_keyed_by_printer(fleet: SimulatedFleet, settings, fresh_topic: str) -> None:
    from continuum_events.producers import EventProducer
    from continuum_events.producers.probe import producer_emitter
    from tests.kafka_helpers import read_topic

    name = "prn-0008"
    with EventProducer(settings, topic=fresh_topic, spool_path=Path(f"/tmp/probe-{time.time_ns()}.db")) as producer:
        probe = Probe(entries(fleet, name), producer_emitter(producer), ProbeConfig(timing=FAST))
        sweeps(probe)
        fleet.make_unreachable(name)
        sweeps(probe, 3)
        fleet.restore(name)
        sweeps(probe, 2)
        assert producer.flush(10) == 0
    received = read_topic(settings.bootstrap_servers, fresh_topic, expect=2)
    assert [r.event.event_type.value for r in received] == ["printer.offline", "printer.online"]
    assert {r.key for r in received} == {f"printer:{name}".encode()}
    assert all(r.event.source == "health-probe" for r in received)


def test_snmpv3_printers_are_polled_and_refused_credentials_are_a_probe_problem(
    fleet: SimulatedFleet, monkeypatch
) -> None:
    # snmpsim's built-in USM user; its context name selects the printer's data.
    monkeypatch.setenv("PRN_AUTH", "auctoritas")
    monkeypatch.setenv("PRN_PRIV", "privatus")
    monkeypatch.setenv("PRN_WRONG", "not-the-key")
    name, other = "prn-0009", "prn-0010"
    v3 = {
        "version": "3",
        "v3_user": "simulator",
        "v3_auth_protocol": "md5",
        "v3_auth_key_env": "PRN_AUTH",
        "v3_priv_protocol": "des",
        "v3_priv_key_env": "PRN_PRIV",
    }
    good = entries(fleet, name, **v3, v3_context=name)
    wrong = entries(fleet, other, **{**v3, "v3_auth_key_env": "PRN_WRONG"}, v3_context=other)
    probe, seen = probe_for(good)
    sweeps(probe)
    fleet.set_state(name, error_bits={"jammed"})
    sweeps(probe, 2)
    assert seen.take() == [("printer.jam", name)]
    # Its own probe: one agent (here, one simulator address) has one key per user.
    refused, seen = probe_for(wrong)
    sweeps(refused, 4)
    assert seen.take() == [("system.warning", other)], "refused credentials: a probe problem, not an outage"
    assert "not-the-key" not in repr(refused.printers[other].target()), "keys never print"


@pytest.mark.broker
def test_the_probe_follows_printer_added_on_printer_events(fleet: SimulatedFleet, settings, tmp_path: Path) -> None:
    import threading

    from continuum_events.producers import EventProducer
    from continuum_events.producers.probe import follow_printer_changes

    row = next(r for r in fleet.inventory() if r["id"] == "prn-0011")
    probe, seen = probe_for([])
    probe.config = ProbeConfig(timing=FAST, defaults={"community": row["community"], "snmp_port": row["snmp_port"]})
    stop = threading.Event()
    follower = threading.Thread(target=follow_printer_changes, args=(settings, probe, stop, f"probe-{time.time_ns()}"))
    follower.start()
    try:
        with EventProducer(settings, spool_path=tmp_path / "spool.db") as producer:
            deadline = time.monotonic() + 45
            while not probe.pending_changes():  # the group joins first; announce until it is heard
                assert time.monotonic() < deadline, "printer.added never reached the probe"
                producer.dispatch(
                    "printer.added", {"printer_id": "prn-0011", "printer_ip": row["ip"], "printer_name": row["name"]}
                )
                producer.flush(5)
                time.sleep(1)
    finally:
        stop.set()
        follower.join(10)
    fleet.set_state("prn-0011", error_bits={"jammed"})
    sweeps(probe)
    assert "prn-0011" in probe.printers and seen.take() == [("printer.jam", "prn-0011")]
