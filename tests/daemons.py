"""The real daemons the tests start, and the same daemons as contract receivers.

``running_gateway`` (prometheus-pushgateway) and :class:`Nsca` (nsca, single-process,
writing a plain command file) are shared by their own tests (test_pushgateway.py,
test_nsca.py) and the shared connector contract (test_connector_contract.py), which sees
them through :class:`PushgatewayFront` and :class:`NscaReceiver`: what each can show of a
delivery (``received.event_ids``) and the faults each can be made to show.
"""

from __future__ import annotations

import base64
import contextlib
import grp
import os
import pwd
import re
import shutil
import socket
import struct
import subprocess
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self

import requests
from prometheus_client.parser import text_string_to_metric_families
from pydantic import SecretStr

from continuum_events.broker import free_port, port_open
from continuum_events.connectors.nsca import NscaConfig, NscaSink
from continuum_events.devtools.receivers import Answer, ContractReceiver, Received


# -- prometheus-pushgateway -------------------------------------------------------------------
@dataclass
class Gateway:
    url: str

    def samples(self, name: str, **labels: str) -> list[tuple[dict[str, str], float]]:
        """Samples of ``name`` in the scrape, whose labels include ``labels``."""
        text = requests.get(f"{self.url}/metrics", timeout=5).text
        return [
            (s.labels, s.value)
            for family in text_string_to_metric_families(text)
            for s in family.samples
            if s.name == name and labels.items() <= s.labels.items()
        ]

    def value(self, name: str, **labels: str) -> float | None:
        found = self.samples(name, **labels)
        assert len(found) <= 1, found
        return found[0][1] if found else None

    def counters(self, job: str) -> dict[tuple[str, str], float]:
        return {
            (labels["event_type"], labels["severity"]): v
            for labels, v in self.samples("continuum_events_total", job=job, instance="continuum-events")
        }

    def groups(self, job: str) -> list[dict[str, str]]:
        data = requests.get(f"{self.url}/api/v1/metrics", timeout=5).json()["data"]
        return [g["labels"] for g in data if g["labels"].get("job") == job]


@contextlib.contextmanager
def running_gateway(*flags: str) -> Iterator[Gateway]:
    binary = shutil.which("prometheus-pushgateway") or "/usr/bin/prometheus-pushgateway"
    assert Path(binary).exists(), "prometheus-pushgateway is not installed: `make system-deps` installs it"
    work = Path(tempfile.mkdtemp(prefix="pushgateway-"))
    port = free_port()
    # No persistence file: the Debian build's default is /var/lib/prometheus.
    process = subprocess.Popen(
        [binary, f"--web.listen-address=127.0.0.1:{port}", "--persistence.file=", *flags],
        stdout=subprocess.DEVNULL,
        stderr=open(work / "stderr.log", "wb"),
    )
    gateway, deadline = Gateway(f"http://127.0.0.1:{port}"), time.monotonic() + 15
    try:
        while True:
            assert process.poll() is None and time.monotonic() < deadline, (work / "stderr.log").read_text()
            with contextlib.suppress(requests.ConnectionError):
                if requests.get(f"{gateway.url}/-/ready", timeout=1).status_code in (200, 401):
                    break
            time.sleep(0.05)
        yield gateway
    finally:
        process.terminate()
        process.wait(10)
        shutil.rmtree(work, ignore_errors=True)


# -- nsca ---------------------------------------------------------------------------------------
PASSWORD = "s3cret pass;word"
LINE = re.compile(r"\[\d+\] PROCESS_SERVICE_CHECK_RESULT;([^;]*);([^;]*);(\d+);(.*)")


@dataclass
class Nsca:
    """nsca in the foreground writing results to a plain command file."""

    work: Path
    port: int
    password: str = PASSWORD
    decryption: int = 1  # the server's decryption_method: 0 none, 1 XOR
    max_packet_age: int = 30
    mode: str = "--single"  # systemd's default; --daemon forks a reader per connection
    process: subprocess.Popen[bytes] | None = None

    @property
    def command_file(self) -> Path:
        return self.work / "nagios.cmd"

    def start(self) -> Nsca:
        binary = shutil.which("nsca") or "/usr/sbin/nsca"
        assert Path(binary).exists(), "nsca is not installed: `make system-deps` installs it (apt-get install nsca)"
        self.command_file.touch()
        config = self.work / f"nsca-{self.port}.cfg"
        config.write_text(
            "\n".join(
                [
                    f"server_port={self.port}",
                    "server_address=127.0.0.1",
                    f"command_file={self.command_file}",
                    f"alternate_dump_file={self.work / 'dump'}",
                    "append_to_file=1",
                    "aggregate_writes=0",
                    "debug=0",
                    f"password={self.password}",
                    f"decryption_method={self.decryption}",
                    f"max_packet_age={self.max_packet_age}",
                    # nsca drops privileges to these: whoever runs the tests (root on CI)
                    f"nsca_user={pwd.getpwuid(os.getuid()).pw_name}",
                    f"nsca_group={grp.getgrgid(os.getgid()).gr_name}",
                ]
            )
            + "\n"
        )
        with open(self.work / "nsca.log", "ab") as log:
            self.process = subprocess.Popen([binary, "-c", str(config), "-f", self.mode], stdout=log, stderr=log)
        deadline = time.monotonic() + 10
        while not port_open("127.0.0.1", self.port):
            assert self.process.poll() is None and time.monotonic() < deadline, (self.work / "nsca.log").read_text()
            time.sleep(0.05)
        return self

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(2)
            except subprocess.TimeoutExpired:  # its SIGTERM handler can deadlock (seen with 2.10.2)
                self.process.kill()
                self.process.wait()
            self.process = None

    def results(self) -> list[tuple[str, str, int, str]]:
        """(host, service, return code, output) of every result written so far."""
        lines = self.command_file.read_text(errors="replace").splitlines()
        return [(m[1], m[2], int(m[3]), m[4]) for line in lines if (m := LINE.fullmatch(line))]

    def sink(self, password: str | None = PASSWORD, **options) -> NscaSink:
        encryption = options.pop("encryption", "xor" if self.decryption else "none")
        return NscaSink(
            NscaConfig(
                "127.0.0.1",
                self.port,
                password=SecretStr(password) if password else None,
                encryption=encryption,
                **options,
            )
        )

    def wait_for(self, ids: list[str], copies: int = 1, timeout: float = 10) -> list[tuple[str, str, int, str]]:
        """The results carrying these event ids, once each has ``copies`` (or at the timeout)."""
        deadline = time.monotonic() + timeout
        while True:
            found = [r for r in self.results() if any(i in r[3] for i in ids)]
            if all(sum(i in r[3] for r in found) >= copies for i in ids) or time.monotonic() > deadline:
                return found
            time.sleep(0.05)


# -- as contract receivers ------------------------------------------------------------------------
class PushgatewayFront(ContractReceiver):
    """A real Pushgateway behind a thin HTTP front: every request is forwarded and answered
    with the gateway's own answer; ``script`` and ``down`` apply first (the base class).

    The front adds what a gateway cannot be told to do: basic auth, checked as a gateway
    with a web config checks it (``auth_broken``: 401 to everything), and a 400 "text format
    parsing error" (the gateway's answer to a malformed push) to a push of a refused
    event's printer. A gateway shows printers, not events: the contract produces one
    printer.offline per printer, so a delivered event is an accepted push of its printer's
    group with ``continuum_printer_up 0``, counted per push (a push sent again shows as a
    duplicate, though the gateway holds it once)."""

    USERNAME, PASSWORD = "pusher", "9f4e2b7c-pushgateway-basic-auth"
    _PRINTER = re.compile(r"/metrics/job/[^/]+/printer/([^/]+)")

    def __init__(self) -> None:
        super().__init__()
        # Keep-alive, as the gateway itself: a connection and a thread per push would double its cost.
        self.server.RequestHandlerClass.protocol_version = "HTTP/1.1"
        self.event_of: dict[str, str] = {}  # printer_id -> event id, from expect()
        self._stack = contextlib.ExitStack()
        self._session = requests.Session()

    def __enter__(self) -> Self:
        self.gateway = self._stack.enter_context(running_gateway())
        return super().__enter__()

    def __exit__(self, *exc: object) -> None:
        super().__exit__(*exc)
        self._session.close()
        self._stack.close()

    def expect(self, payloads: Mapping[str, Mapping[str, Any]]) -> None:
        self.event_of.update({p["printer_id"]: event_id for event_id, p in payloads.items() if "printer_id" in p})

    def handle_request(self, method: str, path: str, headers: Any, body: bytes) -> Answer:
        text = {"Content-Type": "text/plain; charset=utf-8"}
        login = base64.b64encode(f"{self.USERNAME}:{self.PASSWORD}".encode()).decode()
        if headers.get("Authorization") != f"Basic {login}" or self.auth_broken:
            return 401, b"Unauthorized\n", {**text, "WWW-Authenticate": 'Basic realm="pushgateway"'}
        printer = self._PRINTER.fullmatch(path)
        event_id = self.event_of.get(printer[1]) if printer else None
        if method == "POST" and event_id in self.refuse_ids:
            return 400, f"text format parsing error in line 1: event {event_id} refused\n".encode(), text
        forwarded = {"Content-Type": headers["Content-Type"]} if headers.get("Content-Type") else {}
        answer = self._session.request(
            method, self.gateway.url + path, data=body or None, headers=forwarded, timeout=10
        )
        if answer.ok and method == "POST" and event_id and b"\ncontinuum_printer_up 0\n" in b"\n" + body:
            self.accept([event_id])
        return answer.status_code, answer.content, {"Content-Type": answer.headers.get("Content-Type", "text/plain")}


class NscaReceiver:
    """A real nsca daemon as a contract receiver; its URL is ``nsca://127.0.0.1:<port>``.

    Delivered event ids are read back from the command file (``[event <id>]`` in each
    result's plugin output). ``auth_broken`` restarts the daemon, on the same port and
    command file, with another password: it then drops our packets (the sink's
    ConfigError); clearing it restarts it with ours. Each scripted answer is one
    connection reset before the greeting, as while the daemon restarts (the sink's Retry):
    NSCA answers nothing, so what was scripted, and any Retry-After in it, is not sent.
    ``refuse_ids`` cannot be honoured: the protocol has no per-record refusal."""

    EVENT = re.compile(r"\[event ([0-9a-f-]{36})\]")
    OTHER_PASSWORD = "a-password-the-sink-does-not-have"

    def __init__(self) -> None:
        self.work = Path(tempfile.mkdtemp(prefix="nsca-contract-"))
        self.daemon = Nsca(self.work, free_port())
        self.url = f"nsca://127.0.0.1:{self.daemon.port}"
        self.refuse_ids: set[str] = set()
        self._auth_broken, self._script, self._closing = False, [], threading.Event()
        self._outage: threading.Thread | None = None

    def __enter__(self) -> Self:
        self.daemon.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._closing.set()
        if self._outage is not None:
            self._outage.join(5)
        self.daemon.stop()
        shutil.rmtree(self.work, ignore_errors=True)

    def expect(self, payloads: Mapping[str, Mapping[str, Any]]) -> None:
        """Event ids are in the results themselves: nothing to learn."""

    @property
    def received(self) -> Received:
        return Received(Counter(m[1] for *_, output in self.daemon.results() if (m := self.EVENT.search(output))))

    @property
    def auth_broken(self) -> bool:
        return self._auth_broken

    @auth_broken.setter
    def auth_broken(self, broken: bool) -> None:
        if broken != self._auth_broken:
            self._auth_broken = broken
            self.daemon.stop()
            self.daemon.password = self.OTHER_PASSWORD if broken else PASSWORD
            self.daemon.start()

    @property
    def script(self) -> list[Answer]:
        return self._script

    @script.setter
    def script(self, answers: list[Answer]) -> None:
        self._script = list(answers)
        if self._script:
            self.daemon.stop()
            listener = socket.create_server(("127.0.0.1", self.daemon.port))
            self._outage = threading.Thread(target=self._reset_then_restart, args=(listener,), daemon=True)
            self._outage.start()

    def _reset_then_restart(self, listener: socket.socket) -> None:
        """Holds the port while answers are scripted: each connection is reset before the
        greeting and uses one up; then the daemon is back."""
        listener.settimeout(0.1)
        with listener:
            while self._script and not self._closing.is_set():
                with contextlib.suppress(TimeoutError):
                    conn, _ = listener.accept()
                    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    conn.close()  # SO_LINGER 0: a reset, not an orderly close
                    self._script.pop(0)
        if not self._closing.is_set():
            self.daemon.start()
