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
from continuum_events.connectors.runtime import IntegrationRunner
from continuum_events.connectors.syslog import SyslogConfig, SyslogSink
from continuum_events.producers import EventProducer

from continuum_events.broker import LocalBroker, free_port, local_broker, port_open
from continuum_events.events import EventType
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


@pytest.fixture(scope="module")
def rsyslog() -> Iterator[Rsyslog]:
    binary = shutil.which("rsyslogd") or "/usr/sbin/rsyslogd"
    assert Path(binary).exists(), "rsyslog is not installed: `make test` installs it (apt-get install rsyslog rsyslog-gnutls)"
    work = Path(tempfile.mkdtemp(prefix="rsyslog-"))
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(work / "key.pem"),
                    "-out", str(work / "cert.pem"), "-days", "2", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1"], check=True, capture_output=True)
    server = Rsyslog(free_port(), free_port(), free_port(), work / "out.log", work / "cert.pem")
    (work / "rsyslog.conf").write_text(f"""
global(workDirectory="{work}" maxMessageSize="64k"
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
    process = subprocess.Popen([binary, "-n", "-f", str(work / "rsyslog.conf"), "-i", str(work / "rsyslog.pid")],
                               stdout=subprocess.DEVNULL, stderr=open(work / "stderr.log", "wb"))
    deadline = time.monotonic() + 15
    while not (port_open("127.0.0.1", server.tcp) and port_open("127.0.0.1", server.tls)):
        assert process.poll() is None and time.monotonic() < deadline, (work / "stderr.log").read_text()
        time.sleep(0.1)
    yield server
    process.terminate()
    process.wait(10)


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
        ids = [producer.dispatch(EventType.PRINTER_ERROR, {
            "printer_id": f"p-{i}", "printer_name": f"HQ FIN {i}", "printer_ip": "10.1.2.3",
            "error_message": 'cover "B" open ] \\ now', "printer_department": "Finance"},
            severity=severities[i % 4]) for i in range(200)]
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
        assert re.match(r"<\d+>1 \d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z HQFIN3 continuum - printer.error \[continuum@32473 ",
                        sample), sample
        assert 'error_message="cover \\"B\\" open \\] \\\\ now"' in sample
        assert 'printer_department="Finance"' in sample
    else:
        assert re.match(r"<\d+>[A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d HQFIN3 continuum: printer.error ", sample), sample
