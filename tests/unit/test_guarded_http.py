"""The HTTP transport every HTTP connector sends through: the address rules applied at
each connection (and the connection made to the checked address), redirects refused,
and a hard deadline on the whole request — against real local servers."""

from __future__ import annotations

import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from continuum_events.connectors.base import ConfigError, Retry
from continuum_events.connectors.http import HttpClient
from continuum_events.connectors.registry import make_sink
from continuum_events.devtools.receivers import SplunkReceiver
from continuum_events.netguard import TargetPolicy, check_url

CANARY = "canary-7f3e9a1c5b2d4e6f8a0b1c2d3e4f5a6b"


class Hits:
    """A listener that counts the connections it is offered (none may arrive)."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.count = 0
        self.sock.settimeout(0.05)
        self._stop = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except (TimeoutError, OSError):
                continue
            self.count += 1
            conn.close()

    def close(self) -> None:
        self._stop.set()
        self.sock.close()


@pytest.fixture
def hits() -> Iterator[Hits]:
    h = Hits()
    yield h
    h.close()


def resolver(table: dict[str, list[str]]):
    return lambda host: table[host]


ADDRESS_KINDS = {
    "loopback": "127.0.0.1",
    "private": "10.1.2.3",
    "link-local": "169.254.169.254",  # the cloud metadata service
    "ipv4-mapped": "::ffff:127.0.0.1",
    "ipv6-loopback": "::1",
    "unspecified": "0.0.0.0",
    "nat64-private": "64:ff9b::a01:203",
}


@pytest.mark.parametrize("kind", ADDRESS_KINDS)
def test_each_non_public_address_kind_is_refused_at_connection_time(kind: str, hits: Hits) -> None:
    policy = TargetPolicy(resolver=resolver({"vendor.example": [ADDRESS_KINDS[kind]]}))
    client = HttpClient(2.0, policy=policy)
    with pytest.raises(ConfigError, match="address refused") as refused:
        client.request("POST", f"https://vendor.example:{hits.port}/x", b"{}", what="Vendor")
    assert ADDRESS_KINDS[kind] in str(refused.value)
    assert hits.count == 0, "nothing was connected to"


def test_one_bad_address_among_good_ones_refuses_the_host(hits: Hits) -> None:
    policy = TargetPolicy(resolver=resolver({"vendor.example": ["93.184.216.34", "127.0.0.1"]}))
    with pytest.raises(ConfigError, match="loopback"):
        HttpClient(2.0, policy=policy).request("GET", f"https://vendor.example:{hits.port}/")
    assert hits.count == 0


def test_dns_rebinding_after_the_form_check_is_caught_at_connection() -> None:
    answers = iter([["93.184.216.34"], ["127.0.0.1"]])
    rebinding = lambda host: next(answers)  # noqa: E731 - public when typed in, loopback when sent to
    check_url("https://rebind.example/", resolver=rebinding)  # the admin form's check passes
    with pytest.raises(ConfigError, match="loopback"):
        HttpClient(2.0, policy=TargetPolicy(resolver=rebinding)).request("GET", "https://rebind.example/")


def test_the_connection_goes_to_the_checked_address_with_the_configured_host_name() -> None:
    # 'splunk.on-prem.test' exists in no DNS: only connecting to the checked address can reach it.
    class HostRecorder(SplunkReceiver):
        hosts: list[str] = []

        def handle(self, path, headers, body):
            self.hosts.append(headers.get("Host"))
            return super().handle(path, headers, body)

    with HostRecorder() as splunk:
        port = int(splunk.url.rsplit(":", 1)[1])
        policy = TargetPolicy(
            allow_private=True, allow_http=True, resolver=resolver({"splunk.on-prem.test": ["127.0.0.1"]})
        )
        response = HttpClient(2.0, policy=policy).post(
            f"http://splunk.on-prem.test:{port}/services/collector/event",
            b'{"event": {"event_id": "e-1", "event_type": "printer.online"}}',
            {"Authorization": f"Splunk {SplunkReceiver.TOKEN}"},
        )
        assert response.status_code == 200 and splunk.received.event_ids["e-1"] == 1
        assert splunk.hosts == [f"splunk.on-prem.test:{port}"], "the vendor sees its own name, not the address"


def test_plain_http_is_refused_unless_allowed(hits: Hits) -> None:
    policy = TargetPolicy(allow_private=True, resolver=resolver({"h.test": ["127.0.0.1"]}))
    with pytest.raises(ConfigError, match="plain http"):
        HttpClient(2.0, policy=policy).request("GET", f"http://h.test:{hits.port}/")
    assert hits.count == 0


def test_tls_is_verified_for_the_name_while_connecting_to_the_checked_address(tmp_path: Path) -> None:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=vendor.test",
            "-addext",
            "subjectAltName=DNS:vendor.test",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
    )
    import ssl

    class Ok(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Ok)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    try:
        port = server.server_address[1]
        table = {"vendor.test": ["127.0.0.1"], "other.test": ["127.0.0.1"]}
        client = HttpClient(3.0, policy=TargetPolicy(allow_private=True, resolver=resolver(table)))
        client.session.verify = str(cert)
        assert client.request("GET", f"https://vendor.test:{port}/").text == "ok"
        with pytest.raises(Retry, match="SSLError"):  # same address, a name the certificate does not carry
            client.request("GET", f"https://other.test:{port}/")
    finally:
        server.shutdown()
        server.server_close()


class Redirecting(BaseHTTPRequestHandler):
    target = ""

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.send_response(307)
        self.send_header("Location", self.target)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


def test_redirects_are_refused_and_never_followed(hits: Hits) -> None:
    Redirecting.target = f"http://127.0.0.1:{hits.port}/steal"
    server = ThreadingHTTPServer(("127.0.0.1", 0), Redirecting)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/services/collector/event"
        with pytest.raises(ConfigError, match="redirect"):
            HttpClient(2.0).post(url, b"{}", {"Authorization": f"Splunk {CANARY}"})
        assert hits.count == 0, "the redirect target was never contacted"
    finally:
        server.shutdown()
        server.server_close()


# -- the deadline ------------------------------------------------------------------------
def _serve(behaviour) -> tuple[socket.socket, int]:
    listener = socket.create_server(("127.0.0.1", 0))

    def loop() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            threading.Thread(target=behaviour, args=(conn,), daemon=True).start()

    threading.Thread(target=loop, daemon=True).start()
    return listener, listener.getsockname()[1]


def _never_answer(conn: socket.socket) -> None:
    while conn.recv(65536):
        pass


def _trickle(conn: socket.socket) -> None:
    conn.recv(65536)
    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n")
    try:
        for _ in range(1000):
            conn.sendall(b"x")
            time.sleep(0.2)  # a byte every 0.2 s: each read succeeds, the whole never ends
    except OSError:
        pass


@pytest.mark.parametrize("behaviour", [_never_answer, _trickle], ids=["accept-and-never-answer", "trickle"])
def test_the_timeout_bounds_the_whole_request(behaviour) -> None:
    listener, port = _serve(behaviour)
    try:
        started = time.monotonic()
        with pytest.raises(Retry, match="no answer within 1.5 s"):
            HttpClient(1.5).post(f"http://127.0.0.1:{port}/x", b"{}", {})
        assert time.monotonic() - started < 1.5 + 1.0
    finally:
        listener.close()


def test_a_sink_built_from_user_configuration_refuses_loopback_by_default(hits: Hits) -> None:
    from pydantic import SecretStr

    sink = make_sink("splunk", {"url": f"https://localhost:{hits.port}", "token": SecretStr(CANARY)})
    with pytest.raises(ConfigError, match="loopback") as refused:
        sink.check()
    assert CANARY not in str(refused.value) and hits.count == 0
    sink = make_sink("syslog", {"host": "127.0.0.1", "port": hits.port, "transport": "tcp"})
    with pytest.raises(ConfigError, match="loopback"):
        sink.check()
    assert hits.count == 0
