"""A receiver that only counts HEC events, for the connector benchmark (its own process,
so it does not share the connector's interpreter).

    python -m continuum_events.benchmarks.counting_receiver PORT
"""

from __future__ import annotations

import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

COUNT = [0]
LOCK = threading.Lock()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    wbufsize = 65536  # headers and body leave in one segment: no Nagle / delayed-ACK stalls
    disable_nagle_algorithm = True

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        with LOCK:
            COUNT[0] += body.count(b'"sourcetype":')  # one per HEC event object
        self._answer(b'{"text":"Success","code":0}')

    def do_GET(self) -> None:
        self._answer(str(COUNT[0]).encode())

    def _answer(self, data: bytes) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: object) -> None:
        pass


if __name__ == "__main__":
    server = ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Handler)
    server.daemon_threads = True
    server.serve_forever()
