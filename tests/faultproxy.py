"""A TCP proxy that misbehaves on request, for the fault tests (no tc/netem or
toxiproxy exists on these machines). It sits between a connector and its receiver;
each new connection takes the fault set at that moment::

    with FaultProxy(receiver_port) as proxy:
        proxy.fault = Latency(2.0)          # or Bandwidth(1024), ResetMidBody(), Blackhole(), None
        sink = SplunkHecSink(SplunkConfig(proxy.url, token))
"""

from __future__ import annotations

import socket
import struct
import threading
import time
from dataclasses import dataclass
from typing import Self


@dataclass(frozen=True)
class Latency:
    """Every chunk, either way, is held this long before it is passed on."""

    seconds: float


@dataclass(frozen=True)
class Bandwidth:
    """At most this many bytes a second, either way."""

    bytes_per_s: int


@dataclass(frozen=True)
class ResetMidBody:
    """Pass this many bytes of the request on, then reset both connections (RST)."""

    after_bytes: int = 600


@dataclass(frozen=True)
class Blackhole:
    """Accept, read everything, never answer."""


Fault = Latency | Bandwidth | ResetMidBody | Blackhole | None


class FaultProxy:
    def __init__(self, target_port: int, target_host: str = "127.0.0.1") -> None:
        self.target = (target_host, target_port)
        self.fault: Fault = None
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        self.connections = 0
        self._closing = threading.Event()
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()

    def __enter__(self) -> Self:
        threading.Thread(target=self._accept, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._closing.set()
        self.listener.close()
        with self._lock:
            for s in self._sockets:
                _close(s)

    def _accept(self) -> None:
        while not self._closing.is_set():
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._serve, args=(client, self.fault), daemon=True).start()

    def _serve(self, client: socket.socket, fault: Fault) -> None:
        with self._lock:
            self._sockets.append(client)
        if isinstance(fault, Blackhole):
            try:
                while client.recv(65536):
                    pass
            except OSError:
                pass
            _close(client)
            return
        try:
            upstream = socket.create_connection(self.target, timeout=5)
        except OSError:
            _reset(client)
            return
        with self._lock:
            self._sockets.append(upstream)
        budget = [fault.after_bytes] if isinstance(fault, ResetMidBody) else None
        threading.Thread(target=self._pipe, args=(upstream, client, fault, None), daemon=True).start()
        self._pipe(client, upstream, fault, budget)

    def _pipe(self, src: socket.socket, dst: socket.socket, fault: Fault, budget: list[int] | None) -> None:
        try:
            while not self._closing.is_set():
                data = src.recv(256 if isinstance(fault, Bandwidth) else 65536)
                if not data:
                    break
                if budget is not None:
                    if len(data) >= budget[0]:
                        dst.sendall(data[: budget[0]])
                        _reset(src)
                        _reset(dst)
                        return
                    budget[0] -= len(data)
                if isinstance(fault, Latency):
                    time.sleep(fault.seconds)
                if isinstance(fault, Bandwidth):
                    for i in range(0, len(data), 64):
                        dst.sendall(data[i : i + 64])
                        time.sleep(64 / fault.bytes_per_s)
                else:
                    dst.sendall(data)
        except OSError:
            pass
        finally:
            try:
                dst.shutdown(socket.SHUT_WR)
            except OSError:
                pass


def _reset(sock: socket.socket) -> None:
    """Close with RST instead of FIN (SO_LINGER with a zero timeout)."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass
    _close(sock)


def _close(sock: socket.socket) -> None:
    try:
        sock.close()
    except OSError:
        pass
