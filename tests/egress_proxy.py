"""A forward proxy of the tests' own, on loopback, as a corporate egress proxy behaves:
``CONNECT host:port`` opens a tunnel (the client's TLS then runs through it to the vendor),
an absolute-URI request is forwarded, ``Proxy-Authorization`` is checked when the proxy
has credentials (407 otherwise), and ``refuse`` makes it answer every request with that
status (a 502 when it cannot reach the vendor, a 403 by policy). It records each request
it was asked for, so a test sees what went through it — and that nothing else did.

Also a small PKI (a CA and a certificate for ``localhost``, from tests/pki.py), for vendors
served over TLS so the tunnel is proven to carry verified TLS end to end."""

from __future__ import annotations

import base64
import select
import socket
import socketserver
import ssl
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Self

from tests.pki import TestAuthority


@dataclass
class Tunnelled:
    method: str
    target: str  # host:port of a CONNECT, or the absolute URI forwarded
    authorized: bool


@dataclass
class Pki:
    ca: Path
    cert: Path
    key: Path

    def server_context(self) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.cert, self.key)
        return context


def make_pki(directory: Path) -> Pki:
    """A CA and a vendor's server certificate for ``localhost`` and 127.0.0.1."""
    ca = TestAuthority(directory, "test-vendor-ca")
    cert, key = ca.issue("vendor", subject="localhost", alt_names="DNS:localhost,IP:127.0.0.1")
    return Pki(ca.pem, cert, key)


def serve_tls(receiver: object, pki: Pki) -> None:
    """Serve a contract receiver (tests' or the real daemons' front) over TLS as ``localhost``."""
    server = receiver.server  # type: ignore[attr-defined]
    server.socket = pki.server_context().wrap_socket(server.socket, server_side=True)
    receiver.url = f"https://localhost:{server.server_address[1]}"  # type: ignore[attr-defined]


@dataclass
class ConnectProxy:
    username: str | None = None
    password: str | None = None
    refuse: int | None = None
    seen: list[Tunnelled] = field(default_factory=list)
    #: Every header block the proxy read, as received (to prove no secret leaks elsewhere).
    raw: list[bytes] = field(default_factory=list)

    def __post_init__(self) -> None:
        proxy = self

        class Handler(socketserver.StreamRequestHandler):
            def handle(self) -> None:
                head = b""
                while b"\r\n\r\n" not in head:
                    chunk = self.connection.recv(4096)
                    if not chunk:
                        return
                    head += chunk
                head, _, rest = head.partition(b"\r\n\r\n")
                proxy.raw.append(head)
                lines = head.decode("latin-1").split("\r\n")
                method, target, _ = lines[0].split(" ", 2)
                headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
                authorized = proxy._authorized(headers.get("proxy-authorization"))
                proxy.seen.append(Tunnelled(method, target, authorized))
                if not authorized:
                    self._answer(407, "Proxy Authentication Required", {"Proxy-Authenticate": 'Basic realm="corp"'})
                    return
                if proxy.refuse:
                    self._answer(proxy.refuse, "Bad Gateway" if proxy.refuse == 502 else "Forbidden")
                    return
                if method == "CONNECT":
                    host, _, port = target.rpartition(":")
                    upstream = socket.create_connection((host.strip("[]"), int(port)), timeout=10)
                    self.connection.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
                    if rest:
                        upstream.sendall(rest)
                else:  # an absolute URI: forward the request as the proxy would
                    scheme_less = target.split("://", 1)[1]
                    hostport, _, path = scheme_less.partition("/")
                    host, _, port = hostport.rpartition(":")
                    upstream = socket.create_connection((host, int(port or 80)), timeout=10)
                    kept = [line for line in lines[1:] if not line.lower().startswith(("proxy-", "connection"))]
                    upstream.sendall(
                        ("\r\n".join([f"{method} /{path} HTTP/1.1", *kept, "Connection: close"]) + "\r\n\r\n").encode(
                            "latin-1"
                        )
                        + rest
                    )
                self._pipe(upstream)

            def _answer(self, status: int, reason: str, headers: dict[str, str] | None = None) -> None:
                extra = "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items())
                self.connection.sendall(
                    f"HTTP/1.1 {status} {reason}\r\n{extra}Content-Length: 0\r\nConnection: close\r\n\r\n".encode()
                )

            def _pipe(self, upstream: socket.socket) -> None:
                sockets = [self.connection, upstream]
                try:
                    while True:
                        readable, _, _ = select.select(sockets, [], [], 30)
                        if not readable:
                            return
                        for s in readable:
                            data = s.recv(65536)
                            if not data:
                                return
                            (upstream if s is self.connection else self.connection).sendall(data)
                finally:
                    upstream.close()

        class Server(socketserver.ThreadingTCPServer):
            daemon_threads = True
            allow_reuse_address = True

            def handle_error(self, request: object, client_address: object) -> None:
                pass

        self.server = Server(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)

    def _authorized(self, header: str | None) -> bool:
        if self.username is None:
            return True
        expected = base64.b64encode(f"{self.username}:{self.password}".encode()).decode()
        return header == f"Basic {expected}"

    def connects(self) -> list[str]:
        return [t.target for t in self.seen if t.method == "CONNECT" and t.authorized]

    def __enter__(self) -> Self:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
