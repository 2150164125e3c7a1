"""The syslog sink's message bound: cutting an over-long message to its transport's and
format's bound (details first, event_id always kept), refusing one that cannot fit."""

from __future__ import annotations

import re
import socket
from dataclasses import replace

import pytest

from continuum_events.connectors.registry import build_sink
from continuum_events.connectors.syslog import SyslogConfig, SyslogSink
from continuum_events.events import Event, EventType, Severity

EVENT_ID = "0b7f4a52-33a4-4f7e-9a0e-2a3f8e3a9c11"
EVENT = Event(
    EVENT_ID,
    EventType.PRINTER_ERROR,
    Severity.ERROR,
    1_795_800_000_123_456,
    {"printer_id": "p-1", "printer_name": "HQ FIN 1", "error_message": "cover B open"},
    details={"site": "hq"},
)
BIG = replace(EVENT, details={"site": "hq", "dump": "x" * 600_000})


class FakeSocket:
    def __init__(self) -> None:
        self.sent: list[bytes] = []

    def send(self, data: bytes) -> int:
        self.sent.append(data)
        return len(data)

    def sendall(self, data: bytes) -> None:
        self.sent.append(data)

    def close(self) -> None:
        pass


def sink_of(**options: object) -> tuple[SyslogSink, FakeSocket]:
    sink = SyslogSink(SyslogConfig("h", **options))
    sink._sock = fake = FakeSocket()  # type: ignore[assignment]
    return sink, fake


def with_dump(size: int) -> Event:
    """EVENT with a ``dump`` detail that makes its RFC 5424 message ``size`` bytes long."""
    base = len(SyslogSink(SyslogConfig("h")).format(replace(EVENT, details={"site": "hq", "dump": ""})))
    return replace(EVENT, details={"site": "hq", "dump": "d" * (size - base)})


def test_a_message_of_exactly_the_bound_is_sent_whole_one_byte_more_is_cut_to_the_bound() -> None:
    sink = SyslogSink(SyslogConfig("h", max_message_bytes=2_000))
    exact = with_dump(2_000)
    assert sink.format(exact) == SyslogSink(SyslogConfig("h", max_message_bytes=10_000)).format(exact)
    assert len(sink.format(exact)) == 2_000
    cut = sink.format(with_dump(2_001)).decode()
    assert len(cut.encode()) == 2_000
    assert re.search(r'details\.dump="d+…"', cut), "the detail is cut, with a mark"
    assert f'event_id="{EVENT_ID}"' in cut and 'error_message="cover B open"' in cut
    assert 'details.site="hq"' in cut and cut.endswith("printer.error HQ FIN 1 cover B open")


def test_details_are_cut_before_the_error_message_then_the_error_message() -> None:
    event = replace(EVENT, payload={**EVENT.payload, "error_message": "e" * 3_000}, details={"dump": "d" * 3_000})
    message = SyslogSink(SyslogConfig("h", max_message_bytes=3_000)).format(event).decode()
    assert len(message.encode()) <= 3_000 and f'event_id="{EVENT_ID}"' in message
    assert "details.dump" not in message, "a detail cut to nothing goes"
    assert re.search(r'error_message="e+…"', message)


@pytest.mark.parametrize("bound", range(1_000, 1_012))
def test_a_cut_never_splits_a_multibyte_character(bound: int) -> None:
    event = replace(EVENT, details={"dump": "€😀é" * 2_000})  # 3, 4 and 2 bytes
    for fmt in ("rfc5424", "rfc3164"):
        message = SyslogSink(SyslogConfig("h", format=fmt, max_message_bytes=bound)).format(
            replace(event, payload={**event.payload, "error_message": "€😀é" * 500})
        )
        text = message.decode("utf-8")  # strict: raises on half a character
        # As full as whole characters allow: RFC 5424 carries the error message twice (structured
        # data and text), so one more character may take 2 x 4 bytes.
        assert bound - (8 if fmt == "rfc5424" else 4) < len(message) <= bound, (fmt, len(message))
        assert EVENT_ID in text


def test_rfc3164_keeps_the_event_id_when_it_cuts_the_text() -> None:
    event = replace(EVENT, payload={**EVENT.payload, "error_message": "jammed " * 1_000})
    for bound, sink in (
        (1_024, SyslogSink(SyslogConfig("h", format="rfc3164", max_message_bytes=1_024))),
        (8_096, SyslogSink(SyslogConfig("h", format="rfc3164", transport="tcp"))),
    ):
        message = sink.format(replace(event, payload={**event.payload, "error_message": "jammed " * 2_000}))
        assert len(message) <= bound and message.decode().endswith(f"… event_id={EVENT_ID}"), bound
        assert (
            message.decode().startswith("<131>Nov 27 ")
            and " HQFIN1 continuum: printer.error HQ FIN 1 jammed" in message.decode()
        )


@pytest.mark.parametrize(
    ("options", "bound"),
    [
        ({}, 64_000),  # UDP: one datagram, under IPv4's 65,507 bytes
        ({"transport": "tcp"}, 8_096),  # rsyslog's default maxMessageSize ("8k")
        ({"transport": "tls"}, 8_096),
        ({"format": "rfc3164"}, 8_096),
        ({"transport": "tcp", "max_message_bytes": 100_000}, 100_000),
    ],
)
def test_default_bounds_by_transport_and_format(options: dict[str, object], bound: int) -> None:
    sink = SyslogSink(SyslogConfig("h", **options))  # type: ignore[arg-type]
    # RFC 3164 has no structured data, so no details: its free text is what is long.
    message = sink.format(
        replace(EVENT, payload={**EVENT.payload, "error_message": "x" * 600_000})
        if options.get("format") == "rfc3164"
        else BIG
    )
    assert len(message) == bound and EVENT_ID in message.decode()


def test_a_bound_over_one_udp_datagram_or_below_one_byte_is_a_config_error() -> None:
    SyslogSink(SyslogConfig("h", max_message_bytes=65_507))
    with pytest.raises(ValueError, match="65507"):
        SyslogSink(SyslogConfig("h", max_message_bytes=65_508))
    with pytest.raises(ValueError, match="positive"):
        SyslogSink(SyslogConfig("h", transport="tcp", max_message_bytes=0))


def test_the_bound_is_an_option_of_the_integration() -> None:
    sink = build_sink("syslog", {"host": "h", "transport": "tcp", "max_message_bytes": "16384"}, {})
    assert sink.config.max_message_bytes == 16_384 and sink.config.max_bytes == 16_384  # type: ignore[attr-defined]


def test_a_600_kb_event_over_udp_goes_out_cut_and_the_events_after_it_too() -> None:
    receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    receiver.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
    receiver.bind(("127.0.0.1", 0))
    receiver.settimeout(5)
    sink = SyslogSink(SyslogConfig("127.0.0.1", receiver.getsockname()[1]))
    after = replace(EVENT, event_id="1" * 8 + EVENT_ID[8:])
    try:
        result = sink.write([EVENT, BIG, after])  # before: EMSGSIZE -> Retry, for ever
        datagrams = [receiver.recv(70_000) for _ in range(3)]
    finally:
        sink.close()
        receiver.close()
    assert not result.rejected and not result.retry
    assert len(datagrams[1]) == 64_000 and f'event_id="{EVENT_ID}"'.encode() in datagrams[1]
    assert f'event_id="{after.event_id}"'.encode() in datagrams[2]


def test_a_600_kb_event_over_tcp_is_one_bounded_frame() -> None:
    sink, fake = sink_of(transport="tcp")
    assert not sink.write([EVENT, BIG, EVENT]).rejected
    frames = fake.sent[0]
    lengths = []
    while frames:
        count, _, rest = frames.partition(b" ")
        lengths.append(int(count))
        frames = rest[int(count) :]
    assert len(lengths) == 3 and lengths[1] == 8_096


def test_a_record_that_can_never_fit_is_refused_alone_and_the_rest_is_sent() -> None:
    sink, fake = sink_of(transport="tcp", framing="lf")
    never = replace(EVENT, source="s" * 9_000)  # the envelope is never cut
    result = sink.write([EVENT, never, EVENT])
    assert set(result.rejected) == {1} and not result.retry
    assert "cannot be cut to 8096 bytes" in result.rejected[1] and EVENT_ID in result.rejected[1]
    assert fake.sent[0].count(b"\n") == 2
    tiny, fake = sink_of(max_message_bytes=100)  # under the irreducible part of every event
    result = tiny.write([EVENT])
    assert set(result.rejected) == {0} and fake.sent == []
