"""The NSCA wire protocol and the event -> passive check result mapping, without a server."""

from __future__ import annotations

import struct
import zlib

import pytest
from pydantic import SecretStr

from continuum_events.connectors.base import Retry
from continuum_events.connectors.nsca import (
    CRITICAL,
    OK,
    UNKNOWN,
    WARNING,
    CheckResult,
    NscaConfig,
    NscaSink,
    build_packet,
    check_result,
    packet_size,
    parse_hello,
    plugin_output,
    xor_encrypt,
    xor_keystream,
)
from continuum_events.events import Event, EventType, Severity

EVENT_ID = "0b7f4a52-33a4-4f7e-9a0e-2a3f8e3a9c11"
RESULT = CheckResult("Finance-3F-01", "printer status", WARNING, "OFFLINE - Finance-3F-01")


def event(event_type: str, severity: str = "warning", source: str = "continuum-hq", **payload) -> Event:
    return Event(EVENT_ID, EventType(event_type), Severity(severity), 1_795_800_000_123_456, payload, source)


def fields(packet: bytes, output_size: int = 4096) -> tuple[int, int, int, int, bytes, bytes, bytes]:
    """version, crc32, timestamp, return code, then the three strings up to their NUL."""
    version, crc, timestamp, code = struct.unpack_from(">h2xIIh", packet)
    host, service, output = struct.unpack_from(f">64s128s{output_size}s", packet, 14)
    return version, crc, timestamp, code, *(s.split(b"\0")[0] for s in (host, service, output))


@pytest.mark.parametrize(("packet", "output_size", "size"), [("2.9", 4096, 4304), ("legacy", 512, 720)])
def test_packet_size_and_layout(packet: str, output_size: int, size: int) -> None:
    assert packet_size(output_size) == size
    filler = b"\xaa" * size  # a constant "random" fill shows which bytes the fields overwrite
    data = build_packet(RESULT, 1_795_800_123, output_size, random_bytes=lambda n: filler[:n])
    assert len(data) == size
    version, _, timestamp, code, host, service, output = fields(data, output_size)
    assert (version, timestamp, code) == (3, 1_795_800_123, WARNING)
    assert (host, service, output) == (b"Finance-3F-01", b"printer status", b"OFFLINE - Finance-3F-01")
    assert data[:2] == b"\x00\x03" and data[2:4] == b"\xaa\xaa", "2 pad bytes after the version, left as filled"
    assert data[14 + 13] == 0 and data[14 + 14] == 0xAA, "host NUL-terminated, the rest of the field untouched"
    assert data[78 + 14] == 0 and data[206 + 23] == 0
    assert data[-2:] == b"\xaa\xaa", "2 trailing pad bytes (struct alignment)"


def test_crc32_is_zlibs_over_the_packet_with_the_crc_field_zeroed() -> None:
    data = build_packet(RESULT, 1_795_800_123)
    stored = struct.unpack_from(">I", data, 4)[0]
    assert stored == zlib.crc32(data[:4] + b"\0\0\0\0" + data[8:])


def test_the_buffer_is_random_beyond_the_strings() -> None:
    a, b = build_packet(RESULT, 1), build_packet(RESULT, 1)
    assert fields(a)[2:] == fields(b)[2:] and a != b
    assert a[14 + 14 : 14 + 64] != b"\0" * 50


def test_xor_is_iv_then_password_rotating_and_its_own_inverse() -> None:
    iv = bytes(range(128))
    data = build_packet(RESULT, 1_795_800_123)
    encrypted = xor_encrypt(data, iv, b"s3cret")
    assert all(encrypted[i] == data[i] ^ iv[i % 128] ^ b"s3cret"[i % 6] for i in (0, 5, 6, 127, 128, 4303))
    assert xor_encrypt(encrypted, iv, b"s3cret") == data
    assert xor_keystream(iv, b"", 300) == (iv * 3)[:300], "no password: the IV alone"


def test_hello_is_iv_then_big_endian_clock() -> None:
    iv = bytes(range(128))
    assert parse_hello(iv + struct.pack(">I", 1_795_800_123)) == (iv, 1_795_800_123)
    with pytest.raises(ValueError):
        parse_hello(iv)


def test_fields_are_truncated_to_fit_without_cutting_a_character() -> None:
    long = CheckResult("é" * 40, "s" * 200, OK, "ü" * 3000)  # 80, 200 and 6000 bytes
    for output_size in (4096, 512):
        _, _, _, _, host, service, output = fields(build_packet(long, 1, output_size), output_size)
        assert len(host) == 62 and host.decode() == "é" * 31, "63 bytes would split an é"
        assert service == b"s" * 127
        assert len(output) == output_size - 2 and output.decode() == "ü" * (output_size // 2 - 1)


def test_long_output_keeps_the_event_id_and_perf_data() -> None:
    e = event("printer.low_toner", printer_id="p-1", toner_level_percent=8, error_message="x" * 10_000)
    for limit in (4095, 511):
        output = plugin_output(e, limit)
        assert len(output.encode()) == limit
        assert output.endswith(f" [event {EVENT_ID}] | toner=8%;20:;10:;0;100")
    split = plugin_output(event("system.error", component="c", message="\\" * 600), 511, escape=True)
    assert f" [event {EVENT_ID}]" in split and "\\ [event" not in split.replace("\\\\", ""), "an escape cut in two"


MAPPING = [
    # event type, severity, payload -> host, service, return code
    ("printer.offline", "warning", {"printer_id": "p-1", "printer_name": "HQ-1"}, "HQ-1", "printer status", WARNING),
    ("printer.offline", "critical", {"printer_id": "p-1"}, "p-1", "printer status", CRITICAL),
    ("printer.offline", "info", {"printer_id": "p-1"}, "p-1", "printer status", WARNING),  # offline is never OK
    ("printer.online", "warning", {"printer_id": "p-1", "printer_name": "HQ-1"}, "HQ-1", "printer status", OK),
    ("printer.error", "error", {"printer_id": "p-1"}, "p-1", "printer errors", CRITICAL),
    ("printer.jam", "warning", {"printer_id": "p-1"}, "p-1", "printer errors", WARNING),
    ("printer.low_toner", "info", {"printer_id": "p-1"}, "p-1", "toner", OK),
    ("printer.added", "info", {"printer_id": "p-1"}, "p-1", "continuum events", OK),
    (
        "redirect.failed",
        "error",
        {"redirect_id": "r-9", "source_printer_id": "p-1", "source_printer_name": "HQ-1"},
        "HQ-1",
        "redirect r-9",
        CRITICAL,
    ),
    ("redirect.created", "info", {"redirect_id": "r-9", "source_printer_id": "p-1"}, "p-1", "redirect r-9", OK),
    ("system.critical", "critical", {"component": "router"}, "continuum-hq", "continuum router", CRITICAL),
    ("system.warning", "warning", {"component": "spooler"}, "continuum-hq", "continuum spooler", WARNING),
    ("job.failed", "warning", {"job_id": "j-1", "printer_name": "HQ-1"}, "continuum-hq", "continuum events", WARNING),
    ("group.created", "info", {"group_id": "g-1"}, "continuum-hq", "continuum events", OK),
    ("unknown", "critical", {}, "continuum-hq", "continuum events", UNKNOWN),
]


@pytest.mark.parametrize(
    ("event_type", "severity", "payload", "host", "service", "code"), MAPPING, ids=[f"{m[0]}-{m[1]}" for m in MAPPING]
)
def test_events_map_to_host_service_and_return_code(event_type, severity, payload, host, service, code) -> None:
    result = check_result(event(event_type, severity, **payload))
    assert (result.host, result.service, result.code) == (host, service, code)
    assert f"[event {EVENT_ID}]" in result.output


class Captured(NscaSink):
    """Keeps what it would send; ``fail`` Retry first, as a lost connection."""

    def __init__(self, fail: int = 0) -> None:
        super().__init__(NscaConfig("nagios"))
        self.sent: list[list[CheckResult]] = []
        self.fail = fail

    def send(self, results) -> None:
        if self.fail:
            self.fail -= 1
            raise Retry("connection lost")
        self.sent.append(list(results))


def at(event_type: str, seconds: float, printer_id: str = "p-1", severity: str = "warning", **payload) -> Event:
    return Event(
        f"e-{printer_id}-{seconds}",
        EventType(event_type),
        Severity(severity),
        1_795_800_000_000_000 + int(seconds * 1_000_000),
        {"printer_id": printer_id, **payload},
    )


def test_online_clears_the_printer_errors_service_too() -> None:
    sink = Captured()
    sink.write(
        [
            at("printer.error", 1, severity="error", printer_name="HQ-1", error_message="fuser"),
            at("printer.online", 2, severity="info", printer_name="HQ-1"),
        ]
    )
    [(error, status, errors)] = sink.sent
    assert (error.host, error.service, error.code) == ("HQ-1", "printer errors", CRITICAL)
    assert [(r.host, r.service, r.code) for r in (status, errors)] == [
        ("HQ-1", "printer status", OK),
        ("HQ-1", "printer errors", OK),
    ]
    assert "[event e-p-1-2]" in errors.output
    sink.write([at("printer.online", 3, conditions=["jammed"])])  # still reports a condition: errors stay
    assert [r.service for r in sink.sent[-1]] == ["printer status"]


def test_a_redelivered_or_late_old_offline_is_not_sent() -> None:
    sink = Captured()
    offline, online = at("printer.offline", 1), at("printer.online", 2, severity="info")
    sink.write([offline, online, at("printer.offline", 1, "p-2")])
    sink.write([offline])  # redelivered after the online
    sink.write([online, at("printer.offline", 1.5), at("printer.offline", 0.5, "p-2")])  # duplicate and late ones
    sink.write([at("system.error", 1, None)])  # not a printer's: always sent
    assert [[(r.host, r.service, r.code) for r in batch] for batch in sink.sent] == [
        [
            ("p-1", "printer status", WARNING),
            ("p-1", "printer status", OK),
            ("p-1", "printer errors", OK),
            ("p-2", "printer status", WARNING),
        ],
        [("continuum", "continuum system", WARNING)],
    ]
    sink.write([at("printer.offline", 3)])  # newer: sent
    assert [(r.service, r.code) for r in sink.sent[-1]] == [("printer status", WARNING)]


def test_a_batch_that_failed_is_sent_again_whole() -> None:
    sink = Captured(fail=1)
    batch = [at("printer.offline", 1), at("printer.online", 2, severity="info")]
    with pytest.raises(Retry):
        sink.write(batch)
    sink.write(batch)
    assert [len(b) for b in sink.sent] == [3]


def test_plugin_output_is_a_one_line_summary_with_perf_data() -> None:
    offline = event(
        "printer.offline", printer_id="p-7", printer_name="Finance-3F-01", printer_ip="10.0.0.7", consecutive_failures=3
    )
    assert (
        check_result(offline).output == f"OFFLINE - Finance-3F-01 (10.0.0.7): 3 consecutive failures [event {EVENT_ID}]"
    )
    toner = event("printer.low_toner", printer_id="p-7", toner_level_percent=8, response_time_ms=12.5)
    assert check_result(toner).output.endswith(" | toner=8%;20:;10:;0;100 response_time=12.5ms")
    failed = event(
        "redirect.failed",
        "error",
        redirect_id="r-9",
        source_printer_name="A",
        target_printer_name="B",
        error_message="port closed",
        error_code="E7",
    )
    assert check_result(failed).output.startswith("REDIRECT FAILED - A -> B: port closed, error E7 [event")


def test_names_lose_semicolons_and_control_characters() -> None:
    e = event("printer.error", "error", printer_id="p-1", printer_name="HQ;1\n\x00F2")
    assert check_result(e).host == "HQ1F2"
    assert check_result(event("system.error", component="a;b\tc")).service == "continuum abc"


def test_output_newlines_go_raw_for_nsca_to_escape_or_escaped_for_older_servers() -> None:
    e = event("printer.error", "error", printer_id="p-1", error_message="a\nb | c\\d\r\x00e")
    assert check_result(e).output.startswith("ERROR - p-1: a\nb / c\\d  e [event"), "a '|' would start perf data"
    escaped = check_result(e, escape=True).output
    assert escaped.startswith("ERROR - p-1: a\\nb / c\\\\d  e [event") and "\n" not in escaped


def test_the_password_never_prints_and_unknown_methods_are_refused() -> None:
    config = NscaConfig("nagios", password=SecretStr("hunter2"))
    assert "hunter2" not in repr(config) and "hunter2" not in str(config)
    with pytest.raises(ValueError):
        NscaSink(NscaConfig("nagios", encryption="des"))  # type: ignore[arg-type]
