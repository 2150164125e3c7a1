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
        self.down = False
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                length = int(self.headers.get("Content-Length", 0))
                body = self.rfile.read(length)
                with receiver.lock:
                    receiver.received.requests += 1
                    scripted = receiver.script.pop(0) if receiver.script else None
                if receiver.down:
                    scripted = (503, {"error": "down for maintenance"}, {})
                status, answer, headers = scripted or receiver.handle(self.path, self.headers, body)
                data = json.dumps(answer).encode() if answer is not None else b""
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:  # noqa: N802
                status, answer, headers = receiver.handle_get(self.path, self.headers)
                data = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: object) -> None:
                pass

        class Server(ThreadingHTTPServer):
            daemon_threads = True

            def handle_error(self, request: Any, client_address: Any) -> None:
                pass  # a client killed mid-request (the fault tests do it) is not the receiver's error

        self.server = Server(("127.0.0.1", 0), Handler)
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

    def handle_get(self, path: str, headers: Any) -> Answer:
        return 404, {"error": "not found"}, {}


class SplunkReceiver(ContractReceiver):
    """HEC ``/services/collector/event``: concatenated JSON objects, token auth, ≤ 1 MB."""

    TOKEN = "0f3a5c8e-5d1e-4b57-9c2b-2f1b7c0e9a11"
    INDEXES = {"main", "printers"}
    MAX_CONTENT_LENGTH = 1_000_000

    def __init__(self) -> None:
        super().__init__()
        #: Indexer acknowledgement on the token: requests need a channel; acks are polled.
        self.ack_enabled = False
        self.ack_pending_polls = 0  # polls answered "not yet" before an ack turns true
        self.acks: dict[int, int] = {}  # ackId -> polls still pending
        self.ack_polls = 0

    def handle(self, path: str, headers: Any, body: bytes) -> Answer:
        if path == "/services/collector/ack":
            return self._ack(headers, body)
        if path != "/services/collector/event":
            return 404, {"text": "The requested URL was not found on this server.", "code": 404}, {}
        if self.ack_enabled and not headers.get("X-Splunk-Request-Channel"):
            return 400, {"text": "Data channel is missing", "code": 10}, {}
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
        if self.ack_enabled:
            with self.lock:
                ack_id = len(self.acks)
                self.acks[ack_id] = self.ack_pending_polls
            return 200, {"text": "Success", "code": 0, "ackId": ack_id}, {}
        return 200, {"text": "Success", "code": 0}, {}

    def _ack(self, headers: Any, body: bytes) -> Answer:
        if headers.get("Authorization") != f"Splunk {self.TOKEN}":
            return 403, {"text": "Invalid token", "code": 4}, {}
        if not self.ack_enabled:
            return 400, {"text": "ACK is disabled", "code": 14}, {}
        answer = {}
        with self.lock:
            self.ack_polls += 1
            for ack_id in json.loads(body)["acks"]:
                pending = self.acks.get(ack_id, 0)
                answer[str(ack_id)] = pending == 0 and ack_id in self.acks
                if pending:
                    self.acks[ack_id] = pending - 1
        return 200, {"acks": answer}, {}

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


class ElasticsearchReceiver(ContractReceiver):
    """``/_bulk``: NDJSON pairs ending in a newline, ApiKey auth, ``create`` with ``_id``;
    keeps one document per ``_id`` (a second create is a 409, as in Elasticsearch)."""

    API_KEY = "VnVhQ2ZHY0JDZGJrUW0tZTVhT3g6dWkybHAyYXhUTm1zeWFrdzl0dk5udw=="

    def __init__(self) -> None:
        super().__init__()
        self.documents: dict[str, dict[str, Any]] = {}
        self.conflicts = 0  # second creates of an existing _id: duplicates Elasticsearch absorbed
        self.item_429_once: set[str] = set()

    def handle(self, path: str, headers: Any, body: bytes) -> Answer:
        if path != "/_bulk":
            return 404, {"error": "no handler"}, {}
        if headers.get("Authorization") != f"ApiKey {self.API_KEY}" or self.auth_broken:
            return 401, {"error": {"type": "security_exception", "reason": "unable to authenticate"},
                         "status": 401}, {}
        if not headers.get("Content-Type", "").startswith("application/x-ndjson"):
            return 406, {"error": "Content-Type header [application/json] is not supported", "status": 406}, {}
        text = body.decode()
        if not text.endswith("\n"):
            return 400, {"error": {"type": "illegal_argument_exception",
                                   "reason": "The bulk request must be terminated by a newline [\\n]"}}, {}
        lines = text.rstrip("\n").split("\n")
        if len(lines) % 2:
            return 400, {"error": {"type": "illegal_argument_exception", "reason": "action without source"}}, {}
        items, errors = [], False
        for action_line, source_line in zip(lines[::2], lines[1::2]):
            action, source = json.loads(action_line), json.loads(source_line)
            meta = action.get("create")
            if meta is None or "_id" not in meta or "_index" not in meta:
                return 400, {"error": {"type": "action_request_validation_exception",
                                       "reason": "create with _index and _id expected"}}, {}
            doc_id = meta["_id"]
            with self.lock:
                if doc_id in self.item_429_once:
                    self.item_429_once.discard(doc_id)
                    status, error = 429, {"type": "es_rejected_execution_exception", "reason": "queue full"}
                elif doc_id in self.refuse_ids or "@timestamp" not in source:
                    status, error = 400, {"type": "document_parsing_exception", "reason": "failed to parse"}
                elif doc_id in self.documents:
                    status, error = 409, {"type": "version_conflict_engine_exception", "reason": "already exists"}
                    self.conflicts += 1
                else:
                    status, error = 201, None
                    self.documents[doc_id] = source
                    self.received.event_ids[source["event_id"]] += 1
            item = {"_index": meta["_index"], "_id": doc_id, "status": status}
            if error:
                item["error"], errors = error, True
            items.append({"create": item})
        return 200, {"took": 3, "errors": errors, "items": items}, {}


    def handle_get(self, path: str, headers: Any) -> Answer:
        if path != "/":
            return 404, {"error": "no handler"}, {}
        if headers.get("Authorization") != f"ApiKey {self.API_KEY}" or self.auth_broken:
            return 401, {"error": {"type": "security_exception"}, "status": 401}, {}
        return 200, {"name": "es-test", "version": {"number": "8.15.0"}, "tagline": "You Know, for Search"}, {}


class DatadogReceiver(ContractReceiver):
    """Logs intake ``/api/v2/logs``: DD-API-KEY, JSON array (gzip allowed), ≤ 1,000 logs,
    ≤ 5 MB uncompressed, ≤ 1 MB per log; 202 on success."""

    API_KEY = "3b9e0c6f2a8d4e1b9c7f5a3d1e0b2c4d"

    def handle(self, path: str, headers: Any, body: bytes) -> Answer:
        if path != "/api/v2/logs":
            return 404, {"errors": ["not found"]}, {}
        if headers.get("DD-API-KEY") != self.API_KEY or self.auth_broken:
            return 403, {"errors": ["Forbidden"]}, {}
        raw = self.decompress(headers, body)
        if len(raw) > 5_000_000:
            return 413, {"errors": ["Payload too large"]}, {}
        logs = json.loads(raw)
        if not isinstance(logs, list) or len(logs) > 1000:
            return 400, {"errors": ["expected an array of at most 1000 logs"]}, {}
        for log in logs:
            if (not isinstance(log, dict) or not isinstance(log.get("message"), str)
                    or not isinstance(log.get("ddtags", ""), str) or log.get("event_id") in self.refuse_ids
                    or len(json.dumps(log)) > 1_000_000):
                return 400, {"errors": ["Bad Request"]}, {}
        self.accept([log["event_id"] for log in logs])
        return 202, {}, {}

    def handle_get(self, path: str, headers: Any) -> Answer:
        if path == "/api/v1/validate":
            if headers.get("DD-API-KEY") == self.API_KEY and not self.auth_broken:
                return 200, {"valid": True}, {}
            return 403, {"errors": ["Forbidden"]}, {}
        return 404, {"errors": ["not found"]}, {}
