"""The NSCA connector against the real nsca daemon (single-process mode), reading back the
command file it writes; send_nsca cross-checks our packets.

What nsca 2.10.2 does, as these tests pin down: it closes the connection at once on a
packet it cannot decrypt and keeps it open after a good one; it never enforces
max_packet_age (the check is compiled out of 2.10.2); and a connection arriving right
after it closed one that way can stall (it leaves a read handler registered for the
closed descriptor), so every test that makes it drop packets gets a daemon of its own.
"""

from __future__ import annotations

import gc
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from pydantic import SecretStr

from continuum_events.broker import free_port, local_broker
from continuum_events.connectors.base import BatchResult, ConfigError, Retry
from continuum_events.connectors.nsca import NscaConfig, NscaSink, check_result, check_results
from continuum_events.connectors.runtime import Backoff, IntegrationRunner
from continuum_events.events import Event, EventType, Severity, new_event_id, now_micros
from continuum_events.producers import EventProducer
from continuum_events.settings import KafkaSettings
from continuum_events.topology import category_topic
from tests.daemons import PASSWORD, Nsca
from tests.kafka_helpers import committed_offsets


@pytest.fixture(scope="module")
def nsca_xor(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Nsca]:
    server = Nsca(tmp_path_factory.mktemp("nsca-xor"), free_port()).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def nsca_plain(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Nsca]:
    server = Nsca(tmp_path_factory.mktemp("nsca-plain"), free_port(), decryption=0).start()
    yield server
    server.stop()


@pytest.fixture
def own_nsca(tmp_path: Path) -> Iterator[Callable[..., Nsca]]:
    """A daemon of the test's own, for tests that make nsca drop packets."""
    started: list[Nsca] = []

    def start(**options) -> Nsca:
        server = Nsca(tmp_path / f"nsca-{len(started)}", options.pop("port", None) or free_port(), **options)
        server.work.mkdir()
        started.append(server.start())
        return server

    yield start
    for server in started:
        server.stop()


def wait_until(predicate: Callable[[], bool], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def as_written(output: str) -> str:
    """nsca 2.10.1+ escapes backslashes and newlines as it writes the command (Nagios unescapes them)."""
    return output.replace("\\", "\\\\").replace("\n", "\\n")


def make_event(event_type: str, severity: str, **payload) -> Event:
    return Event(new_event_id(), EventType(event_type), Severity(severity), now_micros(), payload, "continuum-hq")


def sample_events() -> list[Event]:
    return [
        make_event(
            "printer.offline",
            "warning",
            printer_id="p-7",
            printer_name="Finance-3F-01",
            printer_ip="10.0.0.7",
            consecutive_failures=3,
        ),
        make_event("printer.online", "info", printer_id="p-7", printer_name="Finance-3F-01", response_time_ms=12.5),
        make_event("printer.low_toner", "warning", printer_id="p-8", toner_level_percent=8),
        make_event("printer.error", "critical", printer_id="p-9", printer_name="HQ ;2F", error_message="fuser\nerror"),
        make_event("redirect.failed", "error", redirect_id="r-1", source_printer_id="p-7", error_message="port 9100"),
        make_event("system.warning", "warning", component="router", message="lag 12 s"),
    ]


@pytest.mark.parametrize("encryption", ["xor", "none"])
def test_results_arrive_as_passive_service_checks(encryption: str, nsca_xor: Nsca, nsca_plain: Nsca) -> None:
    server = nsca_xor if encryption == "xor" else nsca_plain
    events = sample_events()
    assert server.sink().write(events) == BatchResult()
    found = server.wait_for([e.event_id for e in events])
    assert sorted(found) == sorted(
        (r.host, r.service, r.code, as_written(r.output)) for e in events for r in check_results(e)
    )
    offline, online, toner, error, redirect, system = events
    assert (
        "Finance-3F-01",
        "printer status",
        1,
        f"OFFLINE - Finance-3F-01 (10.0.0.7): 3 consecutive failures [event {offline.event_id}]",
    ) in found
    expected = [
        (online, "Finance-3F-01", "printer status", 0),
        (toner, "p-8", "toner", 1),
        (error, "HQ 2F", "printer errors", 2),
        (redirect, "p-7", "redirect r-1", 2),
        (system, "continuum-hq", "continuum router", 1),
    ]
    for event, host, service, code in expected:
        assert next(r for r in found if event.event_id in r[3])[:3] == (host, service, code)
    assert any(r[3].endswith(" | toner=8%;20:;10:;0;100") for r in found)
    assert any("fuser\\nerror" in r[3] for r in found), "a newline arrives escaped, the command on one line"


def test_printer_state_in_nagios_follows_the_latest_event(nsca_xor: Nsca) -> None:
    """Online clears both printer services; an old offline redelivered later changes nothing;
    an offline is never OK, whatever its severity."""
    sink, t = nsca_xor.sink(), now_micros() - 60_000_000

    def at(event_type: str, seconds: int, severity: str, printer: str = "p-41") -> Event:
        return Event(
            new_event_id(),
            EventType(event_type),
            Severity(severity),
            t + seconds * 1_000_000,
            {"printer_id": printer, "printer_name": f"HQ-{printer}"},
            "continuum-hq",
        )

    error, online, offline = (
        at("printer.error", 1, "error"),
        at("printer.online", 3, "info"),
        at("printer.offline", 2, "error"),
    )
    sink.write([offline, error, online])
    sink.write([offline])  # redelivered after the online
    quiet = at("printer.offline", 1, "info", "p-42")
    sink.write([quiet])
    found = nsca_xor.wait_for([online.event_id, quiet.event_id], copies=1)
    assert [(h, s, c) for h, s, c, o in found if online.event_id in o] == [
        ("HQ-p-41", "printer status", 0),
        ("HQ-p-41", "printer errors", 0),
    ]
    assert [(h, s, c) for h, s, c, o in found if quiet.event_id in o] == [("HQ-p-42", "printer status", 1)]
    latest = {(h, s): c for h, s, c, _ in nsca_xor.results() if h == "HQ-p-41"}  # what Nagios shows now
    assert latest == {("HQ-p-41", "printer status"): 0, ("HQ-p-41", "printer errors"): 0}
    assert sum(offline.event_id in o for *_, o in nsca_xor.results()) == 1


@pytest.mark.parametrize("packet", ["2.9", "legacy"])
def test_send_nsca_writes_the_same_command_line(packet: str, nsca_xor: Nsca) -> None:
    """Our packets and send_nsca's, for the same result, give the same line, a newline and
    a backslash in the output included."""
    event = make_event(
        "printer.error",
        "error",
        printer_id="p-3",
        printer_name="HQ-3",
        printer_ip="10.0.0.3",
        error_message="cover open\nsee tray \\2",
        response_time_ms=40.25,
    )
    ours = check_result(event, 4096 if packet == "2.9" else 512)
    # nsca 2.9+ takes a legacy packet only as a connection's last: one event per batch here
    nsca_xor.sink(packet=packet).write([event])
    config = nsca_xor.work / "send_nsca.cfg"
    config.write_text(f"password={PASSWORD}\nencryption_method=1\n")
    command = [
        shutil.which("send_nsca") or "/usr/sbin/send_nsca",
        "-H",
        "127.0.0.1",
        "-p",
        str(nsca_xor.port),
        "-c",
        str(config),
    ] + (["--legacy-2-7-mode"] if packet == "legacy" else [])
    # ETB ends a result, so the output may span lines
    sent = subprocess.run(
        command,
        input=f"{ours.host}\t{ours.service}\t{ours.code}\t{ours.output}\x17".encode(),
        capture_output=True,
        timeout=20,
        check=False,
    )
    assert sent.returncode == 0, sent.stderr
    found = nsca_xor.wait_for([event.event_id], copies=2)
    assert len(found) == 2 and found[0] == found[1], found
    assert found[0] == (ours.host, ours.service, ours.code, as_written(ours.output))
    assert found[0][3].endswith(f": cover open\\nsee tray \\\\2 [event {event.event_id}] | response_time=40.25ms")


def test_check_sends_a_test_result(nsca_xor: Nsca) -> None:
    assert f"127.0.0.1:{nsca_xor.port}" in nsca_xor.sink().check()
    test_result = ("continuum-events", "connection test", 0, "continuum-events connection test")
    wait_until(lambda: test_result in nsca_xor.results(), timeout=5)


@pytest.mark.parametrize(
    ("case", "decryption", "sink_options", "events"),
    [
        ("wrong password", 1, {"password": "not-the-password"}, 1),
        ("wrong password, a whole batch", 1, {"password": "not-the-password"}, 200),  # closed unread: a reset
        ("plain to an XOR server", 1, {"encryption": "none"}, 1),
        ("XOR to a plain server", 0, {"encryption": "xor"}, 1),
    ],
)
def test_a_wrong_password_or_method_is_a_config_error(case, decryption, sink_options, events, own_nsca) -> None:
    server = own_nsca(decryption=decryption)
    batch = [make_event("printer.offline", "warning", printer_id=f"p-{i}") for i in range(events)]
    with pytest.raises(ConfigError, match="wrong password or encryption method") as caught:
        server.sink(**sink_options).write(batch)
    assert PASSWORD not in str(caught.value) and "not-the-password" not in str(caught.value)
    time.sleep(0.3)
    assert server.results() == [], f"{case}: nsca should have dropped every packet"


def test_detection_holds_when_nsca_forks_a_reader_per_connection(own_nsca) -> None:
    """In --daemon mode the reader sleeps a second whenever it finds no data yet: the
    default confirm_s waits that out, so a wrong password is still noticed."""
    server = own_nsca(mode="--daemon")
    good = [make_event("printer.offline", "warning", printer_id=f"p-{i}") for i in range(200)]
    assert server.sink().write(good) == BatchResult()
    for size in (1, 200):
        bad = [make_event("printer.offline", "warning", printer_id=f"p-{i}") for i in range(size)]
        with pytest.raises(ConfigError):
            server.sink(password="not-the-password").write(bad)
        assert not server.wait_for([e.event_id for e in bad], timeout=0.5)
    assert len(server.wait_for([e.event_id for e in good])) == 200


def test_check_reports_a_wrong_password(own_nsca) -> None:
    server = own_nsca()
    with pytest.raises(ConfigError) as caught:
        server.sink(password="hunter2").check()
    assert "hunter2" not in str(caught.value) and f"127.0.0.1:{server.port}" in str(caught.value)


def test_a_stale_packet_is_never_lost_silently(own_nsca) -> None:
    """Held past max_packet_age before sending: a server that checks the age drops it and
    closes (ConfigError); nsca 2.10.2 does not check, so it must then be written."""
    server = own_nsca(max_packet_age=1)

    class SlowSink(NscaSink):
        def _hello(self, sock: socket.socket) -> tuple[bytes, int]:
            hello = super()._hello(sock)
            time.sleep(2.5)
            return hello

    event = make_event("printer.offline", "warning", printer_id="p-1")
    sink = SlowSink(server.sink().config)
    try:
        sink.write([event])
    except ConfigError as exc:
        assert "max_packet_age" in str(exc)
        time.sleep(0.3)
        assert not server.wait_for([event.event_id], timeout=0.5)
    else:
        assert len(server.wait_for([event.event_id])) == 1


def test_daemon_not_running_is_retry() -> None:
    sink = NscaSink(NscaConfig("127.0.0.1", free_port(), password=SecretStr(PASSWORD)))
    with pytest.raises(Retry):
        sink.write([make_event("printer.offline", "warning", printer_id="p-1")])
    with pytest.raises(Retry):
        sink.check()


def test_a_server_that_is_not_nsca_is_a_config_error() -> None:
    listener = socket.create_server(("127.0.0.1", 0))

    def answer_like_http() -> None:
        conn, _ = listener.accept()
        conn.sendall(b"HTTP/1.1 400 Bad Request\r\n\r\n")
        conn.close()

    threading.Thread(target=answer_like_http, daemon=True).start()
    with listener, pytest.raises(ConfigError, match="not an NSCA 2.x server"):
        NscaSink(NscaConfig("127.0.0.1", listener.getsockname()[1])).check()


# -- through the runtime --------------------------------------------------------------
MONITORING = [  # the types the built-in rules route to monitoring
    (
        EventType.PRINTER_OFFLINE,
        "warning",
        lambda i: {
            "printer_id": f"p-{i % 40}",
            "printer_name": f"HQ-{i % 40}",
            "printer_ip": "10.0.0.9",
            "consecutive_failures": 3,
        },
    ),
    (EventType.PRINTER_ONLINE, "info", lambda i: {"printer_id": f"p-{i % 40}", "response_time_ms": 8.5}),
    (EventType.PRINTER_ERROR, "error", lambda i: {"printer_id": f"p-{i % 40}", "error_message": "jam\ntray 2"}),
    (EventType.REDIRECT_FAILED, "error", lambda i: {"redirect_id": f"r-{i}", "source_printer_id": f"p-{i % 40}"}),
    (EventType.SYSTEM_ERROR, "error", lambda i: {"component": "router", "message": f"lag {i}"}),
    (EventType.SYSTEM_WARNING, "warning", lambda i: {"component": "spooler"}),
]


@pytest.fixture
def kafka() -> Iterator[KafkaSettings]:
    """A broker of the test's own, so committed offsets count this test's events only."""
    with local_broker() as broker:
        yield KafkaSettings(bootstrap_servers=broker.bootstrap_servers)
        gc.collect()  # the runner's Kafka clients sit in reference cycles: gone before their broker is


def produce(settings: KafkaSettings, spool: Path, n: int) -> dict[str, int]:
    """Event id -> results it makes: a printer.online also clears "printer errors"."""
    with EventProducer(settings, topic=category_topic("monitoring"), spool_path=spool) as producer:
        ids = {
            producer.dispatch(kind, payload(i), severity): 2 if kind is EventType.PRINTER_ONLINE else 1
            for i in range(n)
            for kind, severity, payload in [MONITORING[i % len(MONITORING)]]
        }
        assert producer.flush(10) == 0
    return ids


def committed(settings: KafkaSettings, integration: str) -> int:
    offsets = committed_offsets(settings.bootstrap_servers, f"continuum-connector-{integration}")
    return sum(max(offset, 0) for offset in offsets.values())


def occurrences(server: Nsca, ids: list[str]) -> dict[str, int]:
    text = server.command_file.read_text(errors="replace")
    return {i: text.count(i) for i in ids}


def run(runner: IntegrationRunner) -> tuple[threading.Event, threading.Thread]:
    stop = threading.Event()
    thread = threading.Thread(target=runner.run, args=(stop,), daemon=True)
    thread.start()
    return stop, thread


@pytest.mark.broker
def test_every_event_reaches_nsca_once_and_is_committed(kafka: KafkaSettings, nsca_xor: Nsca, tmp_path: Path) -> None:
    ids = produce(kafka, tmp_path / "spool.db", 300)
    runner = IntegrationRunner("nsca-all", "monitoring", nsca_xor.sink(), kafka)
    stop, thread = run(runner)
    try:
        wait_until(lambda: all(occurrences(nsca_xor, ids).values()))
        wait_until(lambda: committed(kafka, "nsca-all") == len(ids))
    finally:
        stop.set()
        thread.join(30)
    assert occurrences(nsca_xor, ids) == ids, "every event's results exactly once"
    assert runner.health.delivered == len(ids) and runner.health.dead_lettered == 0


@pytest.mark.broker
def test_a_wrong_password_holds_everything_until_fixed(kafka: KafkaSettings, own_nsca, tmp_path: Path) -> None:
    server = own_nsca(password="the-right-one")
    ids = produce(kafka, tmp_path / "spool.db", 250)
    runner = IntegrationRunner(
        "nsca-fixed",
        "monitoring",
        server.sink(password="set-on-the-client"),
        kafka,
        config_retry_s=0.5,
        backoff=Backoff(base_s=0.05, cap_s=0.5),
    )
    stop, thread = run(runner)
    try:
        wait_until(lambda: runner.health.state == "unhealthy")
        time.sleep(1.5)
        assert committed(kafka, "nsca-fixed") == 0, "nothing may be committed while nsca drops our packets"
        assert not any(occurrences(server, ids).values())
        assert "wrong password" in runner.health.last_error and "set-on-the-client" not in runner.health.last_error
        server.stop()  # the fix: nsca restarted with the password the client has
        fixed = own_nsca(port=server.port, password="set-on-the-client")
        wait_until(lambda: committed(kafka, "nsca-fixed") == len(ids))
    finally:
        stop.set()
        thread.join(30)
    assert occurrences(fixed, ids) == ids, "everything delivered, once"
    assert runner.health.delivered == len(ids)
