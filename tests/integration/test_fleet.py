"""The simulated printer fleet (continuum_events/devtools/fleet.py) seen from a real SNMP client: pysnmp 7
asyncio GETs with numeric OIDs, as the probe makes them. Each printer answers its own
community at its own address only; state changes, raw (malformed) answers,
unreachability and a paused simulator are seen by the very next GET; the TCP listeners
accept and stop accepting; a thousand printers over ten addresses start in seconds."""

from __future__ import annotations

import asyncio
import csv
import random
import socket
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from pysnmp.hlapi.v3arch.asyncio import (
    CommunityData,
    ContextData,
    ObjectIdentity,
    ObjectType,
    SnmpEngine,
    UdpTransportTarget,
    get_cmd,
)
from pysnmp.proto.rfc1905 import NoSuchInstance

from continuum_events.broker import port_open
from continuum_events.devtools.fleet import (
    ERROR_BITS,
    HR_DEVICE_STATUS,
    HR_PRINTER_ERROR_STATE,
    HR_PRINTER_STATUS,
    PRT_ALERT,
    PRT_GENERAL_PRINTER_NAME,
    PRT_MARKER_SUPPLIES,
    SYS_DESCR,
    SYS_UPTIME,
    SimulatedFleet,
    error_state_hex,
)

TONER = {
    column: f"{PRT_MARKER_SUPPLIES}.{n}.1.1"
    for column, n in {"class": 4, "type": 5, "description": 6, "unit": 7, "max": 8, "level": 9}.items()
}
ALERT_1 = {
    column: f"{PRT_ALERT}.{n}.1.1" for column, n in {"severity": 2, "code": 7, "description": 8, "time": 9}.items()
}
SILENT = {"timeout": 0.3, "retries": 0}  # for GETs expected to go unanswered

# pysnmp's engine attaches pysmi's MIB compiler (installed for snmpsim) through deprecated names
pytestmark = pytest.mark.filterwarnings("ignore:add[A-Za-z]* is deprecated:DeprecationWarning")


@pytest.fixture(scope="module")
def fleet() -> Iterator[SimulatedFleet]:
    with SimulatedFleet(6, addresses=2, tcp=True) as f:
        yield f


class Client:
    """pysnmp 7 v3arch GETs on one engine (making an engine costs ~0.3 s)."""

    def __init__(self, fleet: SimulatedFleet) -> None:
        self.engine = SnmpEngine()
        self.rows = {row["id"]: row for row in fleet.inventory()}

    async def get(
        self,
        name: str,
        *oids: str,
        community: str | None = None,
        ip: str | None = None,
        timeout: float = 1.0,
        retries: int = 1,
    ) -> dict[str, Any] | None:
        """The answer by OID, or None when the printer stayed silent."""
        row = self.rows[name]
        target = await UdpTransportTarget.create((ip or row["ip"], row["snmp_port"]), timeout=timeout, retries=retries)
        error_indication, error_status, _, var_binds = await get_cmd(
            self.engine,
            CommunityData(community or row["community"]),
            target,
            ContextData(),
            *(ObjectType(ObjectIdentity(oid)) for oid in oids),
            lookupMib=False,
        )
        if error_indication:
            assert "timeout" in str(error_indication).lower(), error_indication
            return None
        assert not error_status, error_status.prettyPrint()
        return {str(oid): value for oid, value in var_binds}


@asynccontextmanager
async def client(fleet: SimulatedFleet) -> AsyncIterator[Client]:
    c = Client(fleet)
    try:
        yield c
    finally:
        c.engine.close_dispatcher()


def row(fleet: SimulatedFleet, name: str) -> dict[str, Any]:
    return next(r for r in fleet.inventory() if r["id"] == name)


def test_error_bits_are_two_octets_bit_0_first() -> None:
    assert error_state_hex(set()) == "0000"
    assert error_state_hex({"lowToner"}) == "2000"
    assert error_state_hex({"jammed"}) == "0400"
    assert error_state_hex({"offline"}) == "0200"
    assert error_state_hex({"lowPaper", "inputTrayMissing"}) == "8080"
    assert error_state_hex({"overduePreventMaint"}) == "0002"
    assert error_state_hex(ERROR_BITS) == "fffe"
    with pytest.raises(ValueError, match="paperJam"):
        error_state_hex({"paperJam"})


def test_each_printer_answers_its_own_community_at_its_own_address_only(fleet: SimulatedFleet) -> None:
    first, second = row(fleet, "prn-0000"), row(fleet, "prn-0001")
    assert (first["ip"], second["ip"]) == ("127.0.0.1", "127.0.0.2")

    async def scenario() -> None:
        async with client(fleet) as snmp:
            answer = await snmp.get(
                "prn-0000",
                SYS_DESCR,
                SYS_UPTIME,
                HR_DEVICE_STATUS,
                HR_PRINTER_STATUS,
                HR_PRINTER_ERROR_STATE,
                PRT_GENERAL_PRINTER_NAME,
                *TONER.values(),
            )
            assert answer is not None
            assert str(answer[SYS_DESCR]).startswith(first["model"])
            assert int(answer[SYS_UPTIME]) > 0 and answer[SYS_UPTIME].__class__.__name__ == "TimeTicks"
            assert (int(answer[HR_DEVICE_STATUS]), int(answer[HR_PRINTER_STATUS])) == (2, 3)
            assert answer[HR_PRINTER_ERROR_STATE].asOctets() == b"\x00\x00"
            assert str(answer[PRT_GENERAL_PRINTER_NAME]) == "prn-0000"
            assert [int(answer[TONER[c]]) for c in ("class", "type", "max", "level")] == [3, 3, 100, 80]
            assert str(answer[TONER["description"]]) == "Black Toner"

            silent = await asyncio.gather(
                snmp.get("prn-0000", SYS_DESCR, community="prn-0001", **SILENT),  # a neighbour's community
                snmp.get("prn-0000", SYS_DESCR, community="public", **SILENT),
                snmp.get("prn-0001", SYS_DESCR, ip="127.0.0.1", **SILENT),  # right community, wrong address
            )
            assert silent == [None, None, None]
            assert await snmp.get("prn-0001", PRT_GENERAL_PRINTER_NAME) is not None

    asyncio.run(scenario())


def test_a_state_change_is_seen_by_the_very_next_get(fleet: SimulatedFleet) -> None:
    name = "prn-0002"

    async def scenario() -> None:
        async with client(fleet) as snmp:
            fleet.set_state(
                name,
                device_status=3,
                printer_status=1,
                error_bits={"jammed", "lowToner"},
                toner=(6, 100),
                alerts=[(3, 8, "Paper jam in tray 2")],
            )
            answer = await snmp.get(
                name, HR_DEVICE_STATUS, HR_PRINTER_STATUS, HR_PRINTER_ERROR_STATE, TONER["level"], *ALERT_1.values()
            )
            assert answer is not None
            assert (int(answer[HR_DEVICE_STATUS]), int(answer[HR_PRINTER_STATUS])) == (3, 1)
            assert answer[HR_PRINTER_ERROR_STATE].asOctets() == b"\x24\x00"
            assert int(answer[TONER["level"]]) == 6
            assert (int(answer[ALERT_1["severity"]]), int(answer[ALERT_1["code"]])) == (3, 8)
            assert str(answer[ALERT_1["description"]]) == "Paper jam in tray 2"

            started = time.monotonic()
            for level in range(10, 0, -1):  # ten changes within a second or so: no sleeping for snmpsim
                fleet.set_state(name, toner=(level, 100))
                answer = await snmp.get(name, TONER["level"])
                assert answer is not None and int(answer[TONER["level"]]) == level
            assert time.monotonic() - started < 5

            fleet.set_state(name, error_bits={"inputTrayMissing", "overduePreventMaint"}, toner=None)
            answer = await snmp.get(name, HR_PRINTER_ERROR_STATE, TONER["level"], ALERT_1["severity"])
            assert answer is not None and answer[HR_PRINTER_ERROR_STATE].asOctets() == b"\x00\x82"
            assert isinstance(answer[TONER["level"]], NoSuchInstance), "no supplies table without toner"
            assert isinstance(answer[ALERT_1["severity"]], NoSuchInstance), "the alert is gone"

            fleet.set_state(name)
            answer = await snmp.get(name, HR_DEVICE_STATUS, HR_PRINTER_ERROR_STATE, TONER["level"])
            assert answer is not None and int(answer[HR_DEVICE_STATUS]) == 2
            assert answer[HR_PRINTER_ERROR_STATE].asOctets() == b"\x00\x00" and int(answer[TONER["level"]]) == 80

    asyncio.run(scenario())


def test_raw_answers_come_back_exactly_as_given(fleet: SimulatedFleet) -> None:
    name = "prn-0003"
    fleet.set_raw(name, HR_DEVICE_STATUS, "4", "running")
    fleet.set_raw(name, TONER["level"], "4", "abc")
    fleet.set_raw(name, HR_PRINTER_ERROR_STATE, "4x", "0400ffffff")
    fleet.set_raw(name, HR_PRINTER_STATUS, None)
    fleet.set_raw(name, SYS_UPTIME, "67", "5")  # a reboot: sysUpTime went down
    fleet.set_raw(name, TONER["max"], "2", "abc")  # not an Integer32: snmpsim has nothing to send
    with pytest.raises(ValueError):
        fleet.set_raw(name, "1.3.6.x", "2", "1")
    with pytest.raises(ValueError):
        fleet.set_raw(name, SYS_DESCR, "99", "1")

    async def scenario() -> None:
        async with client(fleet) as snmp:
            answer = await snmp.get(
                name,
                HR_DEVICE_STATUS,
                TONER["level"],
                HR_PRINTER_ERROR_STATE,
                HR_PRINTER_STATUS,
                SYS_UPTIME,
                TONER["max"],
            )
            assert answer is not None
            assert answer[HR_DEVICE_STATUS].asOctets() == b"running"
            assert answer[TONER["level"]].asOctets() == b"abc"
            assert answer[HR_PRINTER_ERROR_STATE].asOctets() == bytes.fromhex("0400ffffff")
            assert isinstance(answer[HR_PRINTER_STATUS], NoSuchInstance)
            assert int(answer[SYS_UPTIME]) == 5
            assert isinstance(answer[TONER["max"]], NoSuchInstance)

            fleet.set_state(name)
            answer = await snmp.get(name, HR_DEVICE_STATUS, HR_PRINTER_STATUS)
            assert answer is not None and [int(v) for v in answer.values()] == [2, 3], "set_state drops raw answers"

    asyncio.run(scenario())


def test_an_unreachable_printer_is_silent_until_restored(fleet: SimulatedFleet) -> None:
    name = "prn-0004"
    ip, (port,) = row(fleet, name)["ip"], row(fleet, name)["tcp_ports"]
    assert port_open(ip, port)

    async def scenario() -> None:
        async with client(fleet) as snmp:
            fleet.set_state(name, toner=None)
            fleet.make_unreachable(name)
            assert await snmp.get(name, SYS_DESCR, **SILENT) is None
            assert await snmp.get(name, TONER["level"], **SILENT) is None, "silent even for what it lacks"
            assert not port_open(ip, port), "its print port refuses too"
            assert await snmp.get("prn-0000", SYS_DESCR) is not None, "the rest of the fleet still answers"

            fleet.set_state(name, error_bits={"offline"})  # kept for when it comes back
            assert await snmp.get(name, SYS_DESCR, **SILENT) is None

            started = time.monotonic()
            fleet.restore(name)
            answer = await snmp.get(name, HR_PRINTER_ERROR_STATE)
            assert answer is not None and answer[HR_PRINTER_ERROR_STATE].asOctets() == b"\x02\x00"
            assert time.monotonic() - started < 1
            assert port_open(ip, port), "listening again on the port the inventory gives"

    asyncio.run(scenario())
    fleet.set_state(name)


def test_a_paused_fleet_is_silent_and_answers_again_on_resume(fleet: SimulatedFleet) -> None:
    names = [r["id"] for r in fleet.inventory()]

    async def scenario() -> None:
        async with client(fleet) as snmp:
            with fleet.paused():
                answers = await asyncio.gather(*(snmp.get(n, SYS_DESCR, **SILENT) for n in names))
                assert answers == [None] * len(names)
            answers = await asyncio.gather(*(snmp.get(n, PRT_GENERAL_PRINTER_NAME) for n in names))
            assert [str(a[PRT_GENERAL_PRINTER_NAME]) for a in answers if a] == names

    asyncio.run(scenario())


def test_tcp_listeners_accept_and_close_at_once(fleet: SimulatedFleet) -> None:
    rows = fleet.inventory()
    ports = [r["tcp_ports"][0] for r in rows]
    assert len(set(ports)) == len(rows)
    for r in rows:
        with socket.create_connection((r["ip"], r["tcp_ports"][0]), timeout=1) as conn:
            conn.settimeout(2)
            assert conn.recv(1) == b"", "the printer closes the connection without a word"


def test_the_inventory_describes_the_fleet(fleet: SimulatedFleet, tmp_path: Path) -> None:
    rows = fleet.inventory()
    assert [r["id"] for r in rows] == [f"prn-{i:04d}" for i in range(6)]
    assert [r["ip"] for r in rows] == ["127.0.0.1", "127.0.0.2"] * 3
    assert all(r["community"] == r["id"] == r["name"] and r["snmp_port"] == fleet.port for r in rows)
    assert len({r["location"] for r in rows}) > 1 and all(r["department"] and r["model"] for r in rows)

    with (fleet.write_inventory(tmp_path / "printers.csv")).open(newline="") as f:
        written = list(csv.DictReader(f))
    assert [w["id"] for w in written] == [r["id"] for r in rows]
    assert written[0]["tcp_ports"] == str(rows[0]["tcp_ports"][0]) and written[0]["snmp_port"] == str(fleet.port)

    text = fleet.write_inventory(tmp_path / "printers.yaml").read_text()
    assert text.startswith('- id: "prn-0000"\n  name: "prn-0000"\n')
    try:
        import yaml
    except ImportError:
        return
    assert yaml.safe_load(text) == rows


def test_a_thousand_printers_over_ten_addresses_start_and_answer(capsys: pytest.CaptureFixture[str]) -> None:
    started = time.monotonic()
    with SimulatedFleet(1000, addresses=10) as big:
        ready = time.monotonic() - started
        rows = big.inventory()
        assert {r["ip"] for r in rows} == {f"127.0.0.{n}" for n in range(1, 11)}
        assert all(r["tcp_ports"] == [] for r in rows)
        # twice as many printers as the 32 data files snmpsim keeps open, some unreachable
        sample = random.Random(7).sample([r["id"] for r in rows], 80)
        first, then, down = sample[:40], sample[40:], sample[:3]

        async def names(snmp: Client, printers: list[str], **options: Any) -> list[str | None]:
            answers = await asyncio.gather(*(snmp.get(n, PRT_GENERAL_PRINTER_NAME, **options) for n in printers))
            return [str(a[PRT_GENERAL_PRINTER_NAME]) if a else None for a in answers]

        async def scenario() -> None:
            async with client(big) as snmp:
                assert await names(snmp, first) == first
                for name in down:
                    big.make_unreachable(name)
                assert await names(snmp, down, **SILENT) == [None] * len(down)
                assert await names(snmp, then) == then, "snmpsim recycled its open files past the silent ones"
                for name in down:
                    big.restore(name)
                assert await names(snmp, first) == first

        asyncio.run(scenario())
    with capsys.disabled():
        print(
            f"\n1,000 printers over 10 addresses: snmpsim answered {big.startup_s:.1f} s after launch, "
            f"{ready:.1f} s with the files written"
        )
    assert ready < 60
