"""The syslog connector against a real rsyslog (UDP, TCP with octet counting and LF
framing, TLS), reading back the file rsyslog writes."""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from continuum_events.broker import LocalBroker, free_port, local_broker, port_open
from continuum_events.connectors.runtime import IntegrationRunner
from continuum_events.connectors.syslog import SyslogConfig, SyslogSink
from continuum_events.events import EventType
from continuum_events.producers import EventProducer
from continuum_events.settings import KafkaSettings
from continuum_events.topology import category_topic

pytestmark = pytest.mark.broker


@dataclass
class Rsyslog:
    udp: int
    tcp: int
    tls: int
    out: Path
    ca: Path

    def lines(self) -> list[str]:
        return self.out.read_text(errors="replace").splitlines() if self.out.exists() else []


def start_rsyslog(max_message_size: str | None) -> Iterator[Rsyslog]:
    """rsyslogd in the foreground on free loopback ports; ``max_message_size`` None: its default (8k)."""
    binary = shutil.which("rsyslogd") or "/usr/sbin/rsyslogd"
    assert Path(binary).exists(), (
        "rsyslog is not installed: `make test` installs it (apt-get install rsyslog rsyslog-gnutls)"
    )
    work = Path(tempfile.mkdtemp(prefix="rsyslog-"))
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            str(work / "key.pem"),
            "-out",
            str(work / "cert.pem"),
            "-days",
            "2",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
        ],
        check=True,
        capture_output=True,
    )
    server = Rsyslog(free_port(), free_port(), free_port(), work / "out.log", work / "cert.pem")
    size = f'maxMessageSize="{max_message_size}"' if max_message_size else ""
    (work / "rsyslog.conf").write_text(f"""
global(workDirectory="{work}" {size}
       DefaultNetstreamDriverCAFile="{work}/cert.pem" DefaultNetstreamDriverCertFile="{work}/cert.pem"
       DefaultNetstreamDriverKeyFile="{work}/key.pem")
module(load="imudp")
module(load="imtcp" maxSessions="100")
input(type="imudp" port="{server.udp}" address="127.0.0.1" rcvbufSize="8m")
input(type="imtcp" port="{server.tcp}" address="127.0.0.1")
input(type="imtcp" port="{server.tls}" address="127.0.0.1" streamDriver.name="gtls" streamDriver.mode="1"
      streamDriver.authMode="anon")
template(name="raw" type="string" string="%rawmsg%\\n")
*.* action(type="omfile" file="{server.out}" template="raw")
""")
    process = subprocess.Popen(
        [binary, "-n", "-f", str(work / "rsyslog.conf"), "-i", str(work / "rsyslog.pid")],
        stdout=subprocess.DEVNULL,
        stderr=open(work / "stderr.log", "wb"),
    )
    deadline = time.monotonic() + 15
    while not (port_open("127.0.0.1", server.tcp) and port_open("127.0.0.1", server.tls)):
        assert process.poll() is None and time.monotonic() < deadline, (work / "stderr.log").read_text()
        time.sleep(0.1)
    yield server
    process.terminate()
    process.wait(10)


@pytest.fixture(scope="module")
def rsyslog() -> Iterator[Rsyslog]:
    yield from start_rsyslog("64k")


@pytest.fixture(scope="module")
def rsyslog_default() -> Iterator[Rsyslog]:
    """An rsyslog as installed: maxMessageSize "8k", 8,096 bytes; a longer TCP frame breaks the stream."""
    yield from start_rsyslog(None)


@pytest.fixture(scope="module")
def broker() -> Iterator[LocalBroker]:
    with local_broker() as b:
        yield b


CASES = {
    "udp-5424": dict(transport="udp", format="rfc5424"),
    "tcp-octet-5424": dict(transport="tcp", framing="octet-counting", format="rfc5424"),
    "tcp-lf-3164": dict(transport="tcp", framing="lf", format="rfc3164"),
    "tls-5424": dict(transport="tls", framing="octet-counting", format="rfc5424"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_every_event_reaches_rsyslog(case: str, rsyslog: Rsyslog, broker: LocalBroker, tmp_path: Path) -> None:
    options = CASES[case]
    port = {"udp": rsyslog.udp, "tcp": rsyslog.tcp, "tls": rsyslog.tls}[options["transport"]]
    settings = KafkaSettings(bootstrap_servers=broker.bootstrap_servers)
    severities = ["info", "warning", "error", "critical"]
    with EventProducer(settings, topic=category_topic("logging"), spool_path=tmp_path / "s.db") as producer:
        ids = [
            producer.dispatch(
                EventType.PRINTER_ERROR,
                {
                    "printer_id": f"p-{i}",
                    "printer_name": f"HQ FIN {i}",
                    "printer_ip": "10.1.2.3",
                    "error_message": 'cover "B" open ] \\ now',
                    "printer_department": "Finance",
                },
                severity=severities[i % 4],
            )
            for i in range(200)
        ]
        producer.flush(10)
    sink = SyslogSink(SyslogConfig("127.0.0.1", port, ca_file=str(rsyslog.ca), **options))
    stop = threading.Event()
    runner = IntegrationRunner(f"syslog-{case}", "logging", sink, settings)
    thread = threading.Thread(target=runner.run, args=(stop,))
    thread.start()
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            found = {i for line in rsyslog.lines() for i in re.findall(r"event_id=\"?([0-9a-f-]{36})", line)}
            if set(ids) <= found:
                break
            time.sleep(0.2)
    finally:
        stop.set()
        thread.join(30)
    lines = [line for line in rsyslog.lines() if any(i in line for i in ids)]
    found = {i for line in lines for i in re.findall(r"event_id=\"?([0-9a-f-]{36})", line)}
    assert set(ids) <= found, f"{len(set(ids) - found)} events missing at rsyslog"
    sample = next(line for line in lines if ids[3] in line)  # the 4th event is critical
    assert sample.startswith(f"<{16 * 8 + 2}>")
    if options["format"] == "rfc5424":
        assert re.match(
            r"<\d+>1 \d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z HQFIN3 continuum - printer.error \[continuum@32473 ", sample
        ), sample
        assert 'error_message="cover \\"B\\" open \\] \\\\ now"' in sample
        assert 'printer_department="Finance"' in sample
    else:
        assert re.match(r"<\d+>[A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d HQFIN3 continuum: printer.error ", sample), sample


#: case -> (sink options, the rsyslog fixture, the bound the sink keeps to by default)
BIG_CASES = {
    "udp-5424": (dict(transport="udp", format="rfc5424"), "rsyslog", 64_000),
    "tcp-octet-5424": (dict(transport="tcp", framing="octet-counting", format="rfc5424"), "rsyslog_default", 8_096),
    "tcp-lf-3164": (dict(transport="tcp", framing="lf", format="rfc3164"), "rsyslog_default", 8_096),
}


@pytest.mark.parametrize("case", list(BIG_CASES))
def test_a_600_kb_event_arrives_cut_with_its_event_id_and_the_events_after_it_too(
    case: str, broker: LocalBroker, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    options, fixture, bound = BIG_CASES[case]
    server: Rsyslog = request.getfixturevalue(fixture)
    port = server.udp if options["transport"] == "udp" else server.tcp
    settings = KafkaSettings(bootstrap_servers=broker.bootstrap_servers)
    printer = {"printer_id": "p-big", "printer_name": "HQ BIG", "error_message": "fuser log follows"}
    with EventProducer(settings, topic=category_topic("logging"), spool_path=tmp_path / "s.db") as producer:
        before = [producer.dispatch(EventType.PRINTER_ERROR, printer) for _ in range(5)]
        big = producer.dispatch(
            EventType.PRINTER_ERROR, {**printer, "error_message": "e" * 100_000}, details={"dump": "é" * 250_000}
        )  # 600 KB
        after = [producer.dispatch(EventType.PRINTER_ERROR, printer) for _ in range(5)]
        producer.flush(10)
    ids = [*before, big, *after]
    stop = threading.Event()
    runner = IntegrationRunner(
        f"syslog-big-{case}", "logging", SyslogSink(SyslogConfig("127.0.0.1", port, **options)), settings
    )
    thread = threading.Thread(target=runner.run, args=(stop,))
    thread.start()
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not all(any(i in line for line in server.lines()) for i in ids):
            time.sleep(0.2)
    finally:
        stop.set()
        thread.join(30)
    lines = server.lines()
    missing = [i for i in ids if not any(i in line for line in lines)]
    assert not missing, f"{len(missing)} of {len(ids)} events missing at rsyslog (the 600 KB one is {ids.index(big)})"
    [line] = [line for line in lines if big in line]
    assert bound - 8 < len(line.encode()) <= bound, len(line.encode())  # cut by us, whole, not by rsyslog
    assert "…" in line and "\ufffd" not in line, "cut on whole characters"
    if options["format"] == "rfc3164":
        assert line.endswith(f" event_id={big}")
    else:
        assert f'[continuum@32473 event_id="{big}"' in line
    if fixture == "rsyslog_default":  # nothing of an over-long frame read as further messages
        assert all(line.startswith("<") for line in lines), [line[:80] for line in lines if not line.startswith("<")]
        assert "oversize" not in (server.out.parent / "stderr.log").read_text()
