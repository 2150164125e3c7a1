"""Nagios NSCA 2.x: each event becomes a passive service check result, sent over NSCA's
wire protocol (TCP 5667), XOR-obfuscated or plain::

    sink = NscaSink(NscaConfig("nagios.example.com", password=SecretStr("..."), encryption="xor"))

One connection per batch: the server greets with a 128-byte IV and its clock, which every
packet echoes. NSCA never answers, but nsca 2.10 closes the connection at once on a packet
it cannot decrypt (wrong password or encryption method) and keeps it open after a good one.
So after the last packet the sink waits ``confirm_s``: end of file or a reset means the
batch was dropped (ConfigError: nothing committed, the runtime tries again later); silence
means delivered. A server that checks packet age closes the same way on a stale one
(2.10.2 does not check). The default wait covers nsca's slowest reader: in ``--daemon``
and ``--inetd`` mode, or when a packet arrives in pieces, it sleeps a whole second before
reading again; ``--single`` (systemd's default) on a LAN answers within milliseconds.

Printer state: ``printer.online`` sends OK for "printer status" and for "printer errors" (the
error cleared with it, unless the event still lists device conditions). Only a printer's events
later than the last one sent for it are sent: a redelivered or late old ``printer.offline``
cannot set a printer that came back online down again in Nagios. The last event time per
printer lives in the running sink only (NSCA cannot be read back): after a restart, the
records replayed from the last committed offset are sent again, in their order, so Nagios
ends in the same state but may see the replayed changes once more.

That is a best effort, not an acknowledgement: a server too busy to read within
``confirm_s`` counts as delivered, and nsca 2.9.1 and older drop bad packets without
closing. A connection lost mid-batch sends the batch again (at-least-once; the event id in
the plugin output tells duplicates apart).

Server versions: nsca 2.10.1+ escapes newlines and backslashes in the output itself, as
send_nsca expects; older servers write it verbatim, so set ``escape`` for them.
``packet="legacy"`` (720 bytes) is for servers before 2.9; 2.9+ take a legacy packet only
as a connection's last.
"""

from __future__ import annotations

import math
import os
import socket
import struct
import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from pydantic import SecretStr

from continuum_events.connectors.base import BatchResult, ConfigError, Limits, Retry
from continuum_events.events import Event, EventType
from continuum_events.netguard import TargetPolicy, Unresolvable, UnsafeTarget, connect

#: 1,000 results are ~4.3 MB on the wire; each batch also waits confirm_s for the verdict,
#: so batches are large (measured: 652 results a second to a local nsca at the default).
LIMITS = Limits(max_records=1000, max_bytes=1_000_000, linger_s=0.2, timeout_s=10.0)
OK, WARNING, CRITICAL, UNKNOWN = 0, 1, 2, 3
RETURN_CODE = {"info": OK, "warning": WARNING, "error": CRITICAL, "critical": CRITICAL}
SERVICE = {
    "printer.offline": "printer status",
    "printer.online": "printer status",
    "printer.error": "printer errors",
    "printer.jam": "printer errors",
    "printer.low_toner": "toner",
}
DEFAULT_SERVICE = "continuum events"
TONER_WARN, TONER_CRIT = 20, 10  # percent; "20:" in Nagios range syntax alerts below 20

IV_SIZE, HELLO_SIZE, PACKET_VERSION = 128, 132, 3
HOST_SIZE, SERVICE_SIZE = 64, 128
OUTPUT_SIZE = {"2.9": 4096, "legacy": 512}
_STRINGS_AT = 14  # after int16 version, 2 pad, uint32 crc32, uint32 timestamp, int16 return code


@dataclass(frozen=True)
class NscaConfig:
    host: str
    port: int = 5667
    password: SecretStr | None = None  # the server's `password`
    encryption: Literal["none", "xor"] = "xor"  # the server's decryption_method: 0 or 1
    packet: Literal["2.9", "legacy"] = "2.9"  # legacy: 720-byte packets for nsca before 2.9
    confirm_s: float = 1.5  # how long the server has to drop the connection over a bad packet
    timeout_s: float = LIMITS.timeout_s
    escape: bool = False  # escape newlines here: for nsca before 2.10.1 (and legacy servers)


@dataclass(frozen=True)
class CheckResult:
    host: str
    service: str
    code: int
    output: str


# -- the wire protocol ----------------------------------------------------------------
def packet_size(output_size: int) -> int:
    """The C struct padded to 4 bytes: 4304 for nsca 2.9+, 720 for legacy."""
    return _STRINGS_AT + HOST_SIZE + SERVICE_SIZE + output_size + 2


def clip(text: str, max_bytes: int) -> bytes:
    """``text`` as UTF-8 in at most ``max_bytes``, never cutting a character in half."""
    data = text.encode()
    return data if len(data) <= max_bytes else data[:max_bytes].decode(errors="ignore").encode()


def build_packet(
    result: CheckResult,
    timestamp: int,
    output_size: int = OUTPUT_SIZE["2.9"],
    random_bytes: Callable[[int], bytes] = os.urandom,
) -> bytes:
    """One result, unencrypted. The buffer starts random, as send_nsca's does, so the
    bytes after each string's NUL carry no pattern; the CRC covers all of it."""
    packet = bytearray(random_bytes(packet_size(output_size)))
    struct.pack_into(">h", packet, 0, PACKET_VERSION)
    struct.pack_into(">IIh", packet, 4, 0, timestamp, result.code)
    at = _STRINGS_AT
    for text, size in ((result.host, HOST_SIZE), (result.service, SERVICE_SIZE), (result.output, output_size)):
        field = clip(text, size - 1) + b"\0"
        packet[at : at + len(field)] = field
        at += size
    struct.pack_into(">I", packet, 4, zlib.crc32(packet))
    return bytes(packet)


def _xor(a: bytes, b: bytes) -> bytes:
    return (int.from_bytes(a, "big") ^ int.from_bytes(b, "big")).to_bytes(len(a), "big")


def xor_keystream(iv: bytes, password: bytes, size: int) -> bytes:
    """Byte i of a packet is XORed with IV[i % 128], then with password[i % len]."""
    key = (iv * (size // len(iv) + 1))[:size]
    return _xor(key, (password * (size // len(password) + 1))[:size]) if password else key


def xor_encrypt(packet: bytes, iv: bytes, password: bytes) -> bytes:
    """NSCA's method 1; its own inverse."""
    return _xor(packet, xor_keystream(iv, password, len(packet)))


def parse_hello(data: bytes) -> tuple[bytes, int]:
    """The server's greeting: a 128-byte IV, then its clock as a big-endian uint32."""
    if len(data) != HELLO_SIZE:
        raise ValueError(f"an NSCA greeting is {HELLO_SIZE} bytes, not {len(data)}")
    return data[:IV_SIZE], struct.unpack_from(">I", data, IV_SIZE)[0]


# -- events as passive check results ----------------------------------------------------
def _name(value: object) -> str:
    """A host or service name: no ';' (it separates the command's fields), no control characters."""
    return "".join(c for c in str(value) if c != ";" and c.isprintable()).strip()


def _output_text(text: str, escape: bool) -> str:
    """No control characters but newlines, escaped when ``escape`` the way Nagios unescapes
    them (``\\n``, ``\\\\``); a '|' would start the performance data."""
    text = "".join(c if c.isprintable() or c == "\n" else " " for c in text.replace("|", "/"))
    return text.replace("\\", "\\\\").replace("\n", "\\n") if escape else text


def _number(value: float) -> str:
    return f"{value:.3f}".rstrip("0").rstrip(".")


def host_of(event: Event) -> str:
    p = event.payload
    host = {
        "printer": p.get("printer_name") or p.get("printer_id"),
        "redirect": p.get("source_printer_name") or p.get("source_printer_id"),
    }.get(event.family)
    return _name(host or event.source) or "continuum"


def service_of(event: Event) -> str:
    p = event.payload
    if event.event_type.value in SERVICE:
        return SERVICE[event.event_type.value]
    if event.family == "redirect":
        return _name(f"redirect {p.get('redirect_id') or ''}")
    if event.family == "system":
        return _name(f"continuum {p.get('component') or 'system'}")
    return DEFAULT_SERVICE


def return_code_of(event: Event) -> int:
    """The severity's code (info OK, warning WARNING, error and critical CRITICAL), except:
    ``printer.online`` is always OK, ``printer.offline`` at least WARNING (an offline printer
    is never OK, whatever severity a rule gave it), an unknown event type UNKNOWN."""
    if event.event_type is EventType.UNKNOWN:
        return UNKNOWN
    if event.event_type is EventType.PRINTER_ONLINE:
        return OK
    code = RETURN_CODE[event.severity.value]
    return max(code, WARNING) if event.event_type is EventType.PRINTER_OFFLINE else code


def summary(event: Event) -> str:
    """E.g. ``OFFLINE - Finance-3F-01 (10.0.0.7): 3 consecutive failures``."""
    p = event.payload
    what = event.event_type.value.split(".", 1)[-1] if event.family == "printer" else event.event_type.value
    text = what.replace(".", " ").replace("_", " ").upper()
    prefix = "source_" if event.family == "redirect" else ""
    subject = (
        p.get(f"{prefix}printer_name")
        or p.get(f"{prefix}printer_id")
        or p.get("job_id")
        or p.get("group_name")
        or p.get("group_id")
        or p.get("component")
    )
    if subject:
        ip = p.get(f"{prefix}printer_ip")
        target = p.get("target_printer_name") or p.get("target_printer_id")
        text += f" - {subject}" + (f" ({ip})" if ip else "") + (f" -> {target}" if target else "")
    facts = [
        f"{p['consecutive_failures']} consecutive failures" if p.get("consecutive_failures") else None,
        f"toner {_number(p['toner_level_percent'])}%" if p.get("toner_level_percent") is not None else None,
        p.get("error_message") or p.get("message"),
        f"error {p['error_code']}" if p.get("error_code") else None,
    ]
    shown = [str(f) for f in facts if f]
    return text + (": " + ", ".join(shown) if shown else "")


def perf_data(event: Event) -> str:
    p = event.payload
    perf = []
    if p.get("toner_level_percent") is not None:
        perf.append(f"toner={_number(p['toner_level_percent'])}%;{TONER_WARN}:;{TONER_CRIT}:;0;100")
    if p.get("response_time_ms") is not None:
        perf.append(f"response_time={_number(p['response_time_ms'])}ms")
    return " ".join(perf)


def plugin_output(event: Event, max_bytes: int = OUTPUT_SIZE["2.9"] - 1, escape: bool = False) -> str:
    """Summary, event id, then perf data after '|'. Only the summary is shortened to fit:
    the event id (operators trace events by it) and the perf data arrive whole."""
    perf = perf_data(event)
    tail = f" [event {event.event_id}]" + (f" | {perf}" if perf else "")
    head = clip(_output_text(summary(event), escape), max_bytes - len(tail.encode())).decode()
    if escape and (len(head) - len(head.rstrip("\\"))) % 2:  # the cut split an escape in two
        head = head[:-1]
    return head + tail


def check_result(event: Event, output_size: int = OUTPUT_SIZE["2.9"], escape: bool = False) -> CheckResult:
    output = plugin_output(event, output_size - 1, escape)
    return CheckResult(host_of(event), service_of(event), return_code_of(event), output)


def check_results(event: Event, output_size: int = OUTPUT_SIZE["2.9"], escape: bool = False) -> list[CheckResult]:
    """The event's result; a ``printer.online`` also clears "printer errors" (OK), unless the
    printer still reports device conditions."""
    result = check_result(event, output_size, escape)
    if event.event_type is EventType.PRINTER_ONLINE and not event.payload.get("conditions"):
        return [result, CheckResult(result.host, SERVICE["printer.error"], OK, result.output)]
    return [result]


def results_of(
    events: Sequence[Event],
    last_event_us: Mapping[str, int],
    output_size: int = OUTPUT_SIZE["2.9"],
    escape: bool = False,
) -> tuple[list[CheckResult], dict[str, int]]:
    """The results to send for ``events`` and the printers' last event times after them.

    A printer's event (by ``printer_id``) not later than the last one sent for that printer,
    a duplicate, a redelivery or a late record, is skipped; other events are all sent."""
    last, results = dict(last_event_us), []
    for event in events:
        printer_id = event.payload.get("printer_id")
        if event.family == "printer" and isinstance(printer_id, str):
            if event.timestamp_us <= last.get(printer_id, -math.inf):
                continue
            last[printer_id] = event.timestamp_us
        results += check_results(event, output_size, escape)
    return results, last


# -- the sink ---------------------------------------------------------------------------
class NscaSink:
    limits = LIMITS

    def __init__(self, config: NscaConfig, *, policy: TargetPolicy | None = None) -> None:
        if config.encryption not in ("none", "xor") or config.packet not in OUTPUT_SIZE:
            raise ValueError(
                "nsca: encryption is 'none' or 'xor' (the others need libmcrypt); packet '2.9' or 'legacy'"
            )
        self.config = config
        self.output_size = OUTPUT_SIZE[config.packet]
        self.server = f"nsca {config.host}:{config.port}"
        self.policy = policy  # the address rules of a user-configured integration
        #: printer_id -> event time (µs) of the last event sent for it; this process only.
        self.last_event_us: dict[str, int] = {}

    def write(self, events: Sequence[Event]) -> BatchResult:
        results, last_event_us = results_of(events, self.last_event_us, self.output_size, self.config.escape)
        if results:
            self.send(results)
        self.last_event_us = last_event_us  # only once sent: a batch that failed is sent again whole
        return BatchResult()

    def check(self) -> str:
        self.send([CheckResult("continuum-events", "connection test", OK, "continuum-events connection test")])
        return (
            f"{self.server} accepted a test result ({self.config.encryption}, {self.config.packet} packets) "
            f"and kept the connection open for {self.config.confirm_s:g} s"
        )

    def close(self) -> None:
        """Nothing is held between batches: each has its own connection."""

    def send(self, results: Sequence[CheckResult]) -> None:
        """Deliver ``results`` on one connection, or raise Retry / ConfigError."""
        c = self.config
        try:
            sock = connect(c.host, c.port, c.timeout_s, self.policy)
        except Unresolvable as exc:
            raise Retry(f"{self.server}: {exc}") from None
        except UnsafeTarget as exc:
            raise ConfigError(f"{self.server}: address refused: {exc}") from None
        except OSError as exc:
            raise Retry(f"{self.server}: {exc.strerror or exc}") from None
        with sock:
            data = self._encode(results, *self._hello(sock))
            try:
                sock.sendall(data)
                dropped = self._closed_within(sock, c.confirm_s)
            except (BrokenPipeError, ConnectionResetError):
                dropped = True
            except OSError as exc:
                raise Retry(f"{self.server}: sending failed: {exc.strerror or exc}") from None
        if dropped:
            raise ConfigError(
                f"{self.server} closed the connection on our check results, dropping them: wrong "
                f"password or encryption method (ours: {c.encryption}), or packets older than its "
                "max_packet_age"
            )

    def _hello(self, sock: socket.socket) -> tuple[bytes, int]:
        data = b""
        try:
            while len(data) < HELLO_SIZE and (chunk := sock.recv(HELLO_SIZE - len(data))):
                data += chunk
        except OSError as exc:
            raise Retry(f"{self.server}: no greeting: {exc.strerror or exc}") from None
        if len(data) != HELLO_SIZE:
            raise ConfigError(
                f"{self.server} greeted with {len(data)} bytes, not {HELLO_SIZE}: not an NSCA 2.x server?"
            )
        return parse_hello(data)

    def _encode(self, results: Sequence[CheckResult], iv: bytes, timestamp: int) -> bytes:
        packets = [build_packet(r, timestamp, self.output_size) for r in results]
        if self.config.encryption == "none":
            return b"".join(packets)
        password = self.config.password.get_secret_value().encode() if self.config.password else b""
        key = xor_keystream(iv, password, packet_size(self.output_size))
        return b"".join(_xor(p, key) for p in packets)

    def _closed_within(self, sock: socket.socket, seconds: float) -> bool:
        """nsca never answers: end of file within ``seconds`` means it dropped the packets
        (a reset propagates to the caller); silence means it took them."""
        sock.settimeout(seconds)
        try:
            answer = sock.recv(1)
        except (TimeoutError, BlockingIOError):  # the latter when confirm_s is 0
            return False
        if answer:
            raise ConfigError(f"{self.server} answered our check results: not an NSCA 2.x server?")
        return True
