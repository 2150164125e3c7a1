"""A simulated printer fleet: one snmpsim process answering SNMP v2c for many printers.

The health probe's tests and benchmark poll this instead of real printers::

    with SimulatedFleet(12, tcp=True) as fleet:
        rows = fleet.inventory()                   # what the probe's inventory holds
        fleet.set_state("prn-0003", error_bits={"jammed"}, toner=(6, 100))
        fleet.set_raw("prn-0004", HR_DEVICE_STATUS, "4", "running")   # a malformed answer
        fleet.make_unreachable("prn-0005")         # SNMP silent, TCP refused
        fleet.restore("prn-0005")
        with fleet.paused():                       # the whole fleet silent
            ...

How it is laid out (``../shared/PRINTERS.md`` has the snmpsim facts this relies on):

* Printer ``prn-0042`` is the data file ``data/<its ip>/prn-0042.snmprec`` and answers to
  community ``prn-0042`` only. Printers are dealt round-robin over the loopback addresses
  127.0.0.1 … 127.0.0.N, all on one UDP port. snmpsim does not need the addresses'
  files apart (communities are unique), but it gets one SNMP engine per address, each
  with its own data directory, so that a printer answers at its own address only — as a
  real one would, and so a probe that polls the wrong address sees a timeout.
* A state change rewrites the printer's file atomically with an explicit, strictly
  increasing whole-second mtime. snmpsim compares the file's mtime on every request that
  reaches that printer, so the very next GET sees the change: no sleep, no polling. The
  mtime is also never older than the current second, so an index snmpsim built from the
  previous content can never pass for up to date.
* Unreachable = the file is rewritten so that every record goes through snmpsim's
  ``delay`` variation module with a wait above 99,999 ms, which drops the request
  (snmpsim logs a traceback to ``snmpsim.log`` per dropped request and carries on).
  Restoring writes the real records back. Both are seen by the next GET. Removing the
  file, as ``PRINTERS.md`` suggests, silences the printer too, but in snmpsim 1.2.2 a GET
  for a removed file that is not among the 32 it keeps open leaves a closed entry in
  that list, and once the entry reaches its head every printer not yet open goes
  silent: fatal beyond 32 printers. A silenced printer still answers noSuchInstance for
  OIDs it has no record for (snmpsim skips variation modules there): the silent file
  covers every OID the printer has plus ``SILENT_OIDS``. New files are only scanned at
  start-up, hence a file per printer from the start.
* Run as root, snmpsim refuses to keep root unless told to drop to another user, and the
  user it drops to must be able to read the interpreter (under /root it cannot). The
  simulator only binds loopback ports above 1024, so as root it is started with
  ``SNMPSIM_ALLOW_ROOT=true`` (snmpsim's own switch) instead of dropping privileges; as
  any other user nothing special is needed.

* With ``tcp=True`` each printer also gets a listening socket on its own address (where
  the probe connects), accepting and closing connections; ``make_unreachable`` closes it
  (connections refused), ``restore`` reopens it on the same port.

Start-up is dominated by snmpsim registering one community per printer (pysnmp's MIB
writes), plus ~70 ms per address for its engine: about 3 s for 1,000 printers over 10
addresses, 26 s for 10,000 over 100 on a 2-core machine; ``startup_s`` holds the
measured time.
"""

from __future__ import annotations

import csv
import json
import os
import random
import selectors
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self

from pyasn1.codec.ber import decoder, encoder
from pyasn1.error import PyAsn1Error
from pysnmp.proto import api

from continuum_events.broker import free_port

# -- what a printer tells (numeric OIDs; hrDeviceIndex 1, supply index 1) ----------------
SYS_DESCR = "1.3.6.1.2.1.1.1.0"
SYS_UPTIME = "1.3.6.1.2.1.1.3.0"
HR_DEVICE_STATUS = "1.3.6.1.2.1.25.3.2.1.5.1"
HR_PRINTER_STATUS = "1.3.6.1.2.1.25.3.5.1.1.1"
HR_PRINTER_ERROR_STATE = "1.3.6.1.2.1.25.3.5.1.2.1"
PRT_GENERAL_PRINTER_NAME = "1.3.6.1.2.1.43.5.1.1.16.1"
PRT_GENERAL_SERIAL_NUMBER = "1.3.6.1.2.1.43.5.1.1.17.1"
PRT_MARKER_SUPPLIES = "1.3.6.1.2.1.43.11.1.1"  # .<column>.1.1
PRT_ALERT = "1.3.6.1.2.1.43.18.1.1"  # .<column>.1.<alert index>

SUPPLY_COLUMNS = {"class": 4, "type": 5, "description": 6, "unit": 7, "max_capacity": 8, "level": 9}
SUPPLY_CLASS_CONSUMED, SUPPLY_TYPE_TONER, SUPPLY_UNIT_PERCENT = 3, 3, 19
ALERT_COLUMNS = {"severity": 2, "code": 7, "description": 8, "time": 9}

#: hrPrinterDetectedErrorState bit names in bit order (RFC 2790): bit 0 is the most
#: significant bit of the first octet.
ERROR_BITS = (
    "lowPaper",
    "noPaper",
    "lowToner",
    "noToner",
    "doorOpen",
    "jammed",
    "offline",
    "serviceRequested",
    "inputTrayMissing",
    "outputTrayMissing",
    "markerSupplyMissing",
    "outputNearFull",
    "outputFull",
    "inputTrayEmpty",
    "overduePreventMaint",
)

#: snmprec type tags: Integer32, OCTET STRING, Null, OID, IpAddress, Counter32, Gauge32,
#: TimeTicks, Opaque, Counter64, and the v2c exceptions noSuchObject/noSuchInstance/
#: endOfMibView; a trailing ``x`` means the value is hex.
SNMPREC_TAGS = {"2", "4", "5", "6", "64", "65", "66", "67", "68", "70", "128", "129", "130"}

# (location, department) and models the inventory deals out, so events carry varied fields
SITES = (
    ("HQ-1F", "Operations"),
    ("HQ-2F", "IT"),
    ("Finance-3F", "Finance"),
    ("Sales-2F", "Sales"),
    ("Warehouse-GF", "Logistics"),
    ("Lab-4F", "Research"),
)
MODELS = ("HP LaserJet Enterprise M607", "Brother HL-L6400DW", "Lexmark MS821dn", "Kyocera ECOSYS P3155dn")

#: always silenced, whatever records the printer had (see the module docstring)
SILENT_OIDS = (
    SYS_DESCR,
    SYS_UPTIME,
    HR_DEVICE_STATUS,
    HR_PRINTER_STATUS,
    HR_PRINTER_ERROR_STATE,
    PRT_GENERAL_PRINTER_NAME,
    PRT_GENERAL_SERIAL_NUMBER,
    *(f"{PRT_MARKER_SUPPLIES}.{column}.1.1" for column in SUPPLY_COLUMNS.values()),
)
DROP = ("5:delay", "wait=100000")  # snmpsim's delay module drops the request when wait > 99,999 ms

BOOT_TICKS = 8_640_000  # sysUpTime at the fleet's start: one day, in hundredths of a second
INVENTORY_FIELDS = (
    "id",
    "name",
    "ip",
    "model",
    "location",
    "department",
    "community",
    "snmp_port",
    "version",
    "tcp_ports",
)

Records = dict[str, tuple[str, str]]  # OID -> (snmprec tag, value as written)


def error_state_hex(bits: Iterable[str]) -> str:
    """hrPrinterDetectedErrorState as the two octets, in hex, that a printer sends.

    >>> error_state_hex({"lowToner"}), error_state_hex({"jammed", "inputTrayMissing"})
    ('2000', '0480')
    """
    value = 0
    for bit in bits:
        if bit not in ERROR_BITS:
            raise ValueError(f"unknown hrPrinterDetectedErrorState bit {bit!r}; known: {', '.join(ERROR_BITS)}")
        value |= 0x8000 >> ERROR_BITS.index(bit)
    return f"{value:04x}"


def _text(value: str) -> tuple[str, str]:
    """An OCTET STRING record: plain when snmpsim reads it back unchanged, else hex."""
    plain = value.isascii() and value.isprintable() and value == value.strip()
    return ("4", value) if plain else ("4x", value.encode().hex())


def _oid_key(oid: str) -> tuple[int, ...]:
    return tuple(int(part) for part in oid.split("."))


def render(records: Mapping[str, tuple[str, str]]) -> str:
    """The snmprec text: one ``OID|tag|value`` line per record, sorted by OID as snmpsim needs."""
    return "".join(
        f"{oid}|{tag}|{value}\n" for oid, (tag, value) in sorted(records.items(), key=lambda item: _oid_key(item[0]))
    )


@dataclass(frozen=True)
class Printer:
    """One simulated printer: where it is and what the inventory says about it."""

    index: int
    name: str
    ip: str
    model: str
    location: str
    department: str

    @property
    def community(self) -> str:
        return self.name

    @property
    def serial(self) -> str:
        return f"SIM{self.index:07d}"


def printer_records(
    printer: Printer,
    *,
    uptime_ticks: int,
    device_status: int = 2,
    printer_status: int = 3,
    error_bits: Iterable[str] = frozenset(),
    toner: tuple[int, int] | None = (80, 100),
    alerts: Iterable[tuple[int, int, str]] = (),
) -> Records:
    """Everything one printer answers, for the given state (see :meth:`SimulatedFleet.set_state`)."""
    records: Records = {
        SYS_DESCR: _text(f"{printer.model} (simulated)"),
        SYS_UPTIME: ("67", str(uptime_ticks)),
        HR_DEVICE_STATUS: ("2", str(device_status)),
        HR_PRINTER_STATUS: ("2", str(printer_status)),
        HR_PRINTER_ERROR_STATE: ("4x", error_state_hex(error_bits)),
        PRT_GENERAL_PRINTER_NAME: _text(printer.name),
        PRT_GENERAL_SERIAL_NUMBER: _text(printer.serial),
    }
    if toner is not None:
        level, max_capacity = toner
        supply = {
            "class": ("2", str(SUPPLY_CLASS_CONSUMED)),
            "type": ("2", str(SUPPLY_TYPE_TONER)),
            "description": _text("Black Toner"),
            "unit": ("2", str(SUPPLY_UNIT_PERCENT)),
            "max_capacity": ("2", str(max_capacity)),
            "level": ("2", str(level)),
        }
        for column, record in supply.items():
            records[f"{PRT_MARKER_SUPPLIES}.{SUPPLY_COLUMNS[column]}.1.1"] = record
    for n, (severity, code, description) in enumerate(alerts, start=1):
        alert = {
            "severity": ("2", str(severity)),
            "code": ("2", str(code)),
            "description": _text(description),
            "time": ("67", str(uptime_ticks)),
        }
        for column, record in alert.items():
            records[f"{PRT_ALERT}.{ALERT_COLUMNS[column]}.1.{n}"] = record
    return records


def snmp_get(
    ip: str, port: int, community: str, oids: Iterable[str], timeout: float = 0.5
) -> list[tuple[str, Any]] | None:
    """One SNMP v2c GET on a plain UDP socket: the answer's (OID, pyasn1 value) pairs, or
    None when nothing answered in time. No engine, no event loop: usable anywhere."""
    v2c = api.PROTOCOL_MODULES[api.SNMP_VERSION_2C]
    pdu = v2c.GetRequestPDU()
    v2c.apiPDU.set_defaults(pdu)
    request_id = random.randrange(1, 2**31 - 1)
    v2c.apiPDU.set_request_id(pdu, request_id)
    v2c.apiPDU.set_varbinds(pdu, [(oid, v2c.Null("")) for oid in oids])
    message = v2c.Message()
    v2c.apiMessage.set_defaults(message)
    v2c.apiMessage.set_community(message, community)
    v2c.apiMessage.set_pdu(message, pdu)
    deadline = time.monotonic() + timeout
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.sendto(encoder.encode(message), (ip, port))
        while (left := deadline - time.monotonic()) > 0:
            sock.settimeout(left)
            try:
                data = sock.recv(65535)
            except (TimeoutError, ConnectionRefusedError):  # refused: nothing bound to the port yet
                return None
            try:
                answer, _ = decoder.decode(data, asn1Spec=v2c.Message())
                answer_pdu = v2c.apiMessage.get_pdu(answer)
            except PyAsn1Error:  # not an SNMP v2c message: keep waiting for one
                continue
            if v2c.apiPDU.get_request_id(answer_pdu) == request_id:  # not a late answer to an earlier ping
                return [(str(oid), value) for oid, value in v2c.apiPDU.get_varbinds(answer_pdu)]
    return None


class _TcpListeners:
    """Listening sockets that accept connections and close them at once (a printer's 9100),
    all served by one background thread."""

    def __init__(self) -> None:
        self._selector = selectors.DefaultSelector()
        self._sockets: dict[str, socket.socket] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="fleet-tcp", daemon=True)
        self._thread.start()

    def open(self, key: str, host: str, port: int = 0) -> int:
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # reopen despite TIME_WAIT from accepted peers
        sock.bind((host, port))
        sock.listen(64)
        sock.setblocking(False)
        self._sockets[key] = sock
        self._selector.register(sock, selectors.EVENT_READ)
        return sock.getsockname()[1]

    def close(self, key: str) -> None:
        sock = self._sockets.pop(key, None)
        if sock is not None:
            self._selector.unregister(sock)
            sock.close()

    def shutdown(self) -> None:
        self._stop.set()
        self._thread.join(5)
        for key in list(self._sockets):
            self.close(key)
        self._selector.close()

    def _serve(self) -> None:
        while not self._stop.is_set():
            for key, _ in self._selector.select(timeout=0.05):
                try:
                    conn, _ = key.fileobj.accept()  # type: ignore[union-attr]
                    conn.close()
                except OSError:  # closed by make_unreachable between select and accept
                    pass


class SimulatedFleet:
    """``printers`` simulated printers named ``<prefix>-0000`` …, dealt round-robin over
    ``addresses`` loopback addresses, on one snmpsim process (see the module docstring).

    With ``tcp=True`` (meant for small fleets, up to a few hundred) each printer also has a
    TCP listener on its address, standing for its 9100, whose port the inventory carries.
    """

    def __init__(
        self,
        printers: int = 10,
        *,
        addresses: int = 1,
        prefix: str = "prn",
        tcp: bool = False,
        startup_timeout: float | None = None,
    ) -> None:
        if printers < 1 or not 1 <= addresses <= min(printers, 254):
            raise ValueError(f"need 1 <= addresses <= min(printers, 254): {printers} printers, {addresses} addresses")
        self.tcp = tcp
        self.printers = [
            Printer(
                i,
                f"{prefix}-{i:04d}",
                f"127.0.0.{1 + i % addresses}",
                MODELS[(i // len(SITES)) % len(MODELS)],
                *SITES[i % len(SITES)],
            )
            for i in range(printers)
        ]
        self.addresses = [f"127.0.0.{n}" for n in range(1, addresses + 1)]
        self.port = 0
        self.startup_s = 0.0  # seconds from launching snmpsim to its first answer
        self.startup_timeout = startup_timeout or 60 + printers / 100
        self._by_name = {p.name: p for p in self.printers}
        self._records: dict[str, Records] = {}
        self._mtimes: dict[str, int] = {}
        self._unreachable: set[str] = set()
        self._tcp_ports: dict[str, int] = {}
        self._listeners: _TcpListeners | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._paused = False
        self._lock = threading.RLock()
        self._born = time.monotonic()
        self.root = Path(tempfile.mkdtemp(prefix="fleet-"))
        self.log_path = self.root / "snmpsim.log"

    # -- life cycle ---------------------------------------------------------------------
    def __enter__(self) -> Self:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        """Write every printer's file, start snmpsim and wait until it answers."""
        for address in self.addresses:
            (self.root / "data" / address).mkdir(parents=True)
        for printer in self.printers:
            self._records[printer.name] = printer_records(printer, uptime_ticks=self._uptime())
            self._write(printer.name)
        if self.tcp:
            self._listeners = _TcpListeners()
            for printer in self.printers:
                self._tcp_ports[printer.name] = self._listeners.open(printer.name, printer.ip)
        for _ in range(3):  # the UDP port free_port() found free may be taken on another address
            self.port = free_port()
            if self._launch():
                return
        raise RuntimeError(f"snmpsim did not start: {self._log_tail()}")

    def stop(self) -> None:
        """Stop snmpsim (terminate, then kill), close the listeners, remove the files."""
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGCONT)  # a stopped process would not act on SIGTERM
            process.terminate()
            try:
                process.wait(5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5)
        if self._listeners is not None:
            self._listeners.shutdown()
            self._listeners = None
        shutil.rmtree(self.root, ignore_errors=True)

    def _launch(self) -> bool:
        """Start snmpsim on ``self.port``; True once it answers, False if it died (port taken)."""
        command = [
            sys.executable,
            "-m",
            "snmpsim.commands.responder",
            "--log-level=error",
            f"--cache-dir={self.root / 'cache'}",
        ]
        for address in self.addresses:  # one engine per address: its own data directory and endpoint
            command += [
                "--v3-engine-id=auto",
                f"--data-dir={self.root / 'data' / address}",
                f"--agent-udpv4-endpoint={address}:{self.port}",
            ]
        env = dict(os.environ)
        if os.geteuid() == 0:
            env["SNMPSIM_ALLOW_ROOT"] = "true"
        started = time.monotonic()
        with open(self.log_path, "ab") as log:
            self._process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=env)
        probe = self.printers[-1]
        deadline = started + self.startup_timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                self._process = None
                return False
            if snmp_get(probe.ip, self.port, probe.community, [SYS_DESCR], timeout=0.2) is not None:
                self.startup_s = time.monotonic() - started
                return True
            time.sleep(0.05)
        raise RuntimeError(f"snmpsim gave no answer within {self.startup_timeout:.0f} s: {self._log_tail()}")

    def _log_tail(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-3000:]
        except OSError:
            return "(no log)"

    # -- state ---------------------------------------------------------------------------
    def set_state(
        self,
        name: str,
        *,
        device_status: int = 2,
        printer_status: int = 3,
        error_bits: Iterable[str] = frozenset(),
        toner: tuple[int, int] | None = (80, 100),
        alerts: Iterable[tuple[int, int, str]] = (),
    ) -> None:
        """Replace everything ``name`` answers; the next GET sees it.

        ``device_status``: hrDeviceStatus (running 2, warning 3, down 5); ``printer_status``:
        hrPrinterStatus (other 1, idle 3, printing 4); ``error_bits``: RFC 2790 names (see
        ``ERROR_BITS``), sent as two octets; ``toner``: (level, max capacity) of the black
        toner row, None for no supplies table; ``alerts``: prtAlertTable rows as (severity,
        code, description). sysUpTime moves on with each write. Drops any :meth:`set_raw`
        change. Works while the printer is unreachable too (answered once restored).
        """
        printer = self._printer(name)
        with self._lock:
            self._records[name] = printer_records(
                printer,
                uptime_ticks=self._uptime(),
                device_status=device_status,
                printer_status=printer_status,
                error_bits=error_bits,
                toner=toner,
                alerts=alerts,
            )
            self._write(name)

    def set_raw(self, name: str, oid: str, tag: str | None, value: str = "") -> None:
        """Make ``name`` answer ``oid`` with exactly this snmprec ``tag`` and ``value`` (e.g.
        ``"4", "running"`` for a status sent as text, ``"4x", "0400ffffff"`` for an error
        state of 5 octets), or, with ``tag=None``, not at all (noSuchInstance). A value the
        tag cannot carry (``"2", "abc"``) makes snmpsim answer noSuchInstance. snmpsim strips
        spaces around values: send those in hex. Kept until the next :meth:`set_state`.
        """
        self._printer(name)
        if not all(part.isdigit() for part in oid.split(".")):
            raise ValueError(f"numeric OID expected, got {oid!r}")
        if tag is not None and tag.removesuffix("x") not in SNMPREC_TAGS:
            raise ValueError(f"unknown snmprec tag {tag!r}; known: {sorted(SNMPREC_TAGS)} (x suffix: hex value)")
        if any(c in value for c in "\r\n") or not value.isascii():
            raise ValueError("value must be one line of ASCII: send anything else in hex (tag '4x')")
        with self._lock:
            if tag is None:
                self._records[name].pop(oid, None)
            else:
                self._records[name][oid] = (tag, value)
            self._write(name)

    def records(self, name: str) -> Records:
        """What ``name`` currently answers, by OID (a copy)."""
        with self._lock:
            return dict(self._records[self._printer(name).name])

    # -- reachability --------------------------------------------------------------------
    def make_unreachable(self, name: str) -> None:
        """``name`` goes silent on SNMP and refuses TCP, at once; the rest of the fleet answers."""
        self._printer(name)
        with self._lock:
            if name in self._unreachable:
                return
            self._unreachable.add(name)
            self._write(name)
            if self._listeners is not None:
                self._listeners.close(name)

    def restore(self, name: str) -> None:
        """``name`` answers again (with its latest state), TCP listening on the same port."""
        printer = self._printer(name)
        with self._lock:
            if name not in self._unreachable:
                return
            self._unreachable.discard(name)
            self._write(name)
            if self._listeners is not None:
                self._listeners.open(name, printer.ip, self._tcp_ports[name])

    def pause(self) -> None:
        """Freeze the simulator (SIGSTOP): every printer silent on SNMP; TCP listeners stay up."""
        assert self._process is not None, "the fleet is not running"
        self._process.send_signal(signal.SIGSTOP)
        self._paused = True
        self._await_process_state("T")

    def resume(self) -> None:
        """Let the simulator run again (SIGCONT); it then answers at once."""
        assert self._process is not None, "the fleet is not running"
        self._process.send_signal(signal.SIGCONT)
        self._paused = False
        self._await_process_state("RSD")

    @contextmanager
    def paused(self) -> Iterator[None]:
        """The whole fleet silent inside the ``with`` block."""
        self.pause()
        try:
            yield
        finally:
            self.resume()

    def answers(self, name: str, timeout: float = 0.5) -> bool:
        """Whether ``name`` answers a GET of sysDescr on its address and community."""
        printer = self._printer(name)
        return snmp_get(printer.ip, self.port, printer.community, [SYS_DESCR], timeout) is not None

    # -- inventory -----------------------------------------------------------------------
    def inventory(self) -> list[dict[str, Any]]:
        """One row per printer with the fields of the probe's inventory."""
        return [
            {
                "id": p.name,
                "name": p.name,
                "ip": p.ip,
                "model": p.model,
                "location": p.location,
                "department": p.department,
                "community": p.community,
                "snmp_port": self.port,
                "version": "2c",
                "tcp_ports": [self._tcp_ports[p.name]] if p.name in self._tcp_ports else [],
            }
            for p in self.printers
        ]

    def write_inventory(self, path: str | Path) -> Path:
        """Write :meth:`inventory` as CSV (``tcp_ports`` joined with ``;``), or as YAML when
        ``path`` ends in .yaml/.yml (a list of mappings)."""
        path = Path(path)
        rows = self.inventory()
        if path.suffix.lower() in (".yaml", ".yml"):
            # JSON scalars and flow lists are valid YAML: no YAML library needed to write it
            path.write_text(
                "".join(
                    "".join(
                        f"{'- ' if i == 0 else '  '}{key}: {json.dumps(row[key])}\n"
                        for i, key in enumerate(INVENTORY_FIELDS)
                    )
                    for row in rows
                ),
                encoding="utf-8",
            )
            return path
        with path.open("w", newline="", encoding="utf-8") as f:
            writer = csv.DictWriter(f, fieldnames=INVENTORY_FIELDS)
            writer.writeheader()
            for row in rows:
                writer.writerow({**row, "tcp_ports": ";".join(map(str, row["tcp_ports"]))})
        return path

    # -- internals -----------------------------------------------------------------------
    def _printer(self, name: str) -> Printer:
        try:
            return self._by_name[name]
        except KeyError:
            raise KeyError(f"no printer {name!r} in this fleet") from None

    def _path(self, printer: Printer) -> Path:
        return self.root / "data" / printer.ip / f"{printer.name}.snmprec"

    def _uptime(self) -> int:
        return BOOT_TICKS + int((time.monotonic() - self._born) * 100)

    def _write(self, name: str) -> None:
        """Atomically replace the printer's file (its records, or while it is unreachable the
        same OIDs dropping every request) with a new mtime: strictly greater than the last
        one (snmpsim sees whole seconds) and not before this second (so no index snmpsim
        built from the old content looks current)."""
        records = self._records[name]
        if name in self._unreachable:
            records = dict.fromkeys([*records, *SILENT_OIDS], DROP)
        path = self._path(self._by_name[name])
        mtime = max(self._mtimes.get(name, 0) + 1, int(time.time()))
        temporary = path.with_suffix(".tmp")
        temporary.write_text(render(records), encoding="ascii")
        os.utime(temporary, (mtime, mtime))
        os.replace(temporary, path)
        self._mtimes[name] = mtime

    def _await_process_state(self, states: str, timeout: float = 2.0) -> None:
        """Wait until the kernel shows snmpsim in one of ``states`` (Linux /proc), so a
        pause is in force when pause() returns."""
        stat = Path(f"/proc/{self._process.pid}/stat") if self._process else None
        deadline = time.monotonic() + timeout
        while stat is not None and stat.exists() and time.monotonic() < deadline:
            if stat.read_text().rsplit(")", 1)[1].split()[0] in states:
                return
            time.sleep(0.005)
