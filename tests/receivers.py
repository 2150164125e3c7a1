"""Local receivers that enforce each SaaS vendor's documented contract strictly.

Not mocks that accept anything: each checks authentication, the body's framing,
required fields and types, and size and count limits, answering exactly as the vendor
documents (``../shared/VENDORS.md``). A test can script the next answers (503, 429
with Retry-After, 401, ...) and name records to refuse as the vendor would refuse a
bad record. Everything accepted is kept, by event_id, for the completeness check.
"""

from __future__ import annotations

import gzip
import json
import threading
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

Answer = tuple[int, Any, dict[str, str]]


@dataclass
class Received:
    event_ids: Counter[str] = field(default_factory=Counter)
    requests: int = 0
    bodies: list[Any] = field(default_factory=list)


class ContractReceiver:
    """Subclasses implement :meth:`handle` (path, headers, raw body) -> (status, json, headers)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.received = Received()
        self.script: list[Answer] = []
        self.refuse_ids: set[str] = set()
        self.auth_broken = False
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                length = int(self.headers.get("Content-Length", 0))
                body = self.rfile.read(length)
                with receiver.lock:
                    receiver.received.requests += 1
                    scripted = receiver.script.pop(0) if receiver.script else None
                status, answer, headers = scripted or receiver.handle(self.path, self.headers, body)
                data = json.dumps(answer).encode() if answer is not None else b""
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> ContractReceiver:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def accept(self, event_ids: list[str]) -> None:
        with self.lock:
            self.received.event_ids.update(event_ids)

    @staticmethod
    def decompress(headers: Any, body: bytes) -> bytes:
        if headers.get("Content-Encoding") == "gzip":
            return gzip.decompress(body)
        return body

    def handle(self, path: str, headers: Any, body: bytes) -> Answer:
        raise NotImplementedError


class SplunkReceiver(ContractReceiver):
    """HEC ``/services/collector/event``: concatenated JSON objects, token auth, ≤ 1 MB."""

    TOKEN = "0f3a5c8e-5d1e-4b57-9c2b-2f1b7c0e9a11"
    INDEXES = {"main", "printers"}
    MAX_CONTENT_LENGTH = 1_000_000

    def handle(self, path: str, headers: Any, body: bytes) -> Answer:
        if path != "/services/collector/event":
            return 404, {"text": "The requested URL was not found on this server.", "code": 404}, {}
        auth = headers.get("Authorization", "")
        if not auth.startswith("Splunk "):
            return 401, {"text": "Token is required", "code": 2}, {}
        if auth != f"Splunk {self.TOKEN}" or self.auth_broken:
            return 403, {"text": "Invalid token", "code": 4}, {}
        if len(body) > self.MAX_CONTENT_LENGTH:
            return 413, {"text": "Content too large", "code": 413}, {}
        if not body.strip():
            return 400, {"text": "No data", "code": 5}, {}
        decoder, text, pos, objects = json.JSONDecoder(), body.decode(), 0, []
        while pos < len(text):
            try:
                obj, end = decoder.raw_decode(text, pos)
            except ValueError:
                return 400, {"text": "Invalid data format", "code": 6, "invalid-event-number": len(objects)}, {}
            objects.append(obj)
            pos = end
            while pos < len(text) and text[pos] in " \r\n\t":
                pos += 1
        accepted = []
        for n, obj in enumerate(objects):
            problem = self._problem(obj)
            if problem is not None:
                self.accept(accepted)  # HEC indexes the events before the bad one
                return 400, {**problem, "invalid-event-number": n}, {}
            accepted.append(obj["event"]["event_id"])
        self.accept(accepted)
        return 200, {"text": "Success", "code": 0}, {}

    def _problem(self, obj: Any) -> dict[str, Any] | None:
        if not isinstance(obj, dict) or "event" not in obj:
            return {"text": "Event field is required", "code": 12}
        if obj["event"] in ("", {}, None):
            return {"text": "Event field cannot be blank", "code": 13}
        if "index" in obj and obj["index"] not in self.INDEXES:
            return {"text": "Incorrect index", "code": 7}
        if not isinstance(obj.get("time", 0), (int, float)):
            return {"text": "Invalid data format", "code": 6}
        fields = obj.get("fields", {})
        if not isinstance(fields, dict) or any(not isinstance(v, (str, list)) for v in fields.values()):
            return {"text": "Error in handling indexed fields", "code": 15}
        if isinstance(obj["event"], dict) and obj["event"].get("event_id") in self.refuse_ids:
            return {"text": "Invalid data format", "code": 6}
        return None
