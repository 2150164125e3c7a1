"""Local receivers that enforce each SaaS vendor's documented contract strictly.

Not mocks that accept anything: each checks authentication, the body's framing,
required fields and types, and size and count limits, answering exactly as the vendor
documents (``../shared/VENDORS.md``). A test can script the next answers (503, 429
with Retry-After, 401, ...) and name records to refuse as the vendor would refuse a
bad record. Everything accepted is kept, by event_id, for the completeness check, and,
when a test asks for it (``arrivals = {}``), when each event id was first accepted.
"""

from __future__ import annotations

import gzip
import json
import math
import re
import threading
import time
import uuid
import zlib
from collections import Counter, defaultdict, deque
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from functools import partialmethod
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar, Self
from urllib.parse import parse_qs, unquote, urlsplit

Answer = tuple[int, Any, dict[str, str]]


@dataclass
class Received:
    event_ids: Counter[str] = field(default_factory=Counter)
    requests: int = 0
    bodies: list[Any] = field(default_factory=list)


class ContractReceiver:
    """Subclasses implement :meth:`handle` (POST: path, headers, raw body) and :meth:`handle_get`
    (GET), each returning (status, json, headers); a vendor API with other methods (PATCH,
    PUT, DELETE) overrides :meth:`handle_request` instead. ``script``, ``down`` and the
    request count apply to every method but GET: the fault tests aim at deliveries, and a
    health probe or a status poll must not eat a scripted answer."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.received = Received()
        self.script: list[Answer] = []
        self.refuse_ids: set[str] = set()
        self.auth_broken = False
        self.down = False
        #: event_id -> time.time() of its first acceptance, kept only when a test sets it to
        #: a dict (the soak run's end-to-end latency); None keeps nothing.
        self.arrivals: dict[str, float] | None = None
        #: (time.monotonic(), status) of every answer but GET's: when each request came and
        #: what it was told (the fault tests check that nobody came back before Retry-After).
        self.answers: list[tuple[float, int]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def serve(self, method: str) -> None:
                length = int(self.headers.get("Content-Length", 0))
                body = self.rfile.read(length) if length else b""
                scripted = None
                if method != "GET":
                    with receiver.lock:
                        receiver.received.requests += 1
                        scripted = receiver.script.pop(0) if receiver.script else None
                    if receiver.down:
                        scripted = (503, {"error": "down for maintenance"}, {})
                status, answer, headers = scripted or receiver.handle_request(method, self.path, self.headers, body)
                if method != "GET":
                    with receiver.lock:
                        receiver.answers.append((time.monotonic(), status))
                if isinstance(answer, bytes):  # an answer forwarded as it came, with its own Content-Type
                    data = answer
                else:
                    data = json.dumps(answer).encode() if answer is not None else b""
                    headers = {**headers, "Content-Type": "application/json"}
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            # http.server dispatches on these names
            do_GET = partialmethod(serve, "GET")
            do_POST = partialmethod(serve, "POST")
            do_PUT = partialmethod(serve, "PUT")
            do_PATCH = partialmethod(serve, "PATCH")
            do_DELETE = partialmethod(serve, "DELETE")

            def log_message(self, *args: object) -> None:
                pass

        class Server(ThreadingHTTPServer):
            daemon_threads = True

            def handle_error(self, request: Any, client_address: Any) -> None:
                pass  # a client killed mid-request (the fault tests do it) is not the receiver's error

        self.server = Server(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        # a short poll so that leaving the ``with`` block (server.shutdown) takes milliseconds, not 0.5 s
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)

    def __enter__(self) -> Self:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def expect(self, payloads: Mapping[str, Mapping[str, Any]]) -> None:
        """The payloads a test produced, by event id: for a receiver that shows deliveries by
        another key (a Pushgateway shows printers). These receivers see event ids."""

    def accept(self, event_ids: list[str]) -> None:
        with self.lock:
            self.received.event_ids.update(event_ids)
            self.arrived(event_ids)

    def arrived(self, event_ids: Collection[str]) -> None:
        """Note the first arrival of these ids when ``arrivals`` is kept (the lock is held)."""
        if self.arrivals is not None:
            now = time.time()
            for event_id in event_ids:
                self.arrivals.setdefault(event_id, now)

    @staticmethod
    def decompress(headers: Any, body: bytes) -> bytes:
        if headers.get("Content-Encoding") == "gzip":
            return gzip.decompress(body)
        return body

    def handle_request(self, method: str, path: str, headers: Any, body: bytes) -> Answer:
        if method == "POST":
            return self.handle(path, headers, body)
        if method == "GET":
            return self.handle_get(path, headers)
        return 405, {"error": "method not allowed"}, {}

    def handle(self, path: str, headers: Any, body: bytes) -> Answer:
        raise NotImplementedError

    def handle_get(self, path: str, headers: Any) -> Answer:
        return 404, {"error": "not found"}, {}


class SplunkReceiver(ContractReceiver):
    """HEC ``/services/collector/event``: concatenated JSON objects, token auth, ≤ 1 MB."""

    TOKEN = "0f3a5c8e-5d1e-4b57-9c2b-2f1b7c0e9a11"
    INDEXES: ClassVar[set[str]] = {"main", "printers"}
    MAX_CONTENT_LENGTH = 1_000_000

    def __init__(self) -> None:
        super().__init__()
        #: Indexer acknowledgement on the token: requests need a channel; acks are polled.
        self.ack_enabled = False
        self.ack_pending_polls = 0  # polls answered "not yet" before an ack turns true
        self.acks: dict[int, int] = {}  # ackId -> polls still pending
        self.ack_polls = 0
        #: Each accepted event's ``time`` (epoch seconds): when it happened, as the event says.
        self.times: dict[str, float] = {}

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
            if "time" in obj:  # optional in HEC: the indexer stamps arrival time instead
                self.times[obj["event"]["event_id"]] = obj["time"]
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
        self.closed_indices: set[str] = set()  # a test closes one: every create into it is refused

    @staticmethod
    def index_name_problem(name: Any) -> str | None:
        """Elasticsearch's index name rules (MetadataCreateIndexService.validateIndexOrAliasName)."""
        if not isinstance(name, str) or not name:
            return "must not be empty"
        if name != name.lower():
            return "must be lowercase"
        if any(c in name for c in '\\/*?"<>| ,#:'):
            return 'must not contain the following characters [ , \\, /, *, ?, ", <, >, |, ,, #, :]'
        if name[0] in "-_+":
            return "must not start with '_', '-', or '+'"
        if name in (".", ".."):
            return "must not be '.' or '..'"
        if len(name.encode()) > 255:
            return "index name is too long, (> 255)"
        return None

    def handle(self, path: str, headers: Any, body: bytes) -> Answer:
        if path != "/_bulk":
            return 404, {"error": "no handler"}, {}
        if headers.get("Authorization") != f"ApiKey {self.API_KEY}" or self.auth_broken:
            return 401, {"error": {"type": "security_exception", "reason": "unable to authenticate"}, "status": 401}, {}
        if not headers.get("Content-Type", "").startswith("application/x-ndjson"):
            return 406, {"error": "Content-Type header [application/json] is not supported", "status": 406}, {}
        text = body.decode()
        if not text.endswith("\n"):
            return (
                400,
                {
                    "error": {
                        "type": "illegal_argument_exception",
                        "reason": "The bulk request must be terminated by a newline [\\n]",
                    }
                },
                {},
            )
        lines = text.rstrip("\n").split("\n")
        if len(lines) % 2:
            return 400, {"error": {"type": "illegal_argument_exception", "reason": "action without source"}}, {}
        items, errors = [], False
        for action_line, source_line in zip(lines[::2], lines[1::2], strict=False):
            action, source = json.loads(action_line), json.loads(source_line)
            meta = action.get("create")
            if meta is None or "_id" not in meta or "_index" not in meta:
                return (
                    400,
                    {
                        "error": {
                            "type": "action_request_validation_exception",
                            "reason": "create with _index and _id expected",
                        }
                    },
                    {},
                )
            doc_id, index = meta["_id"], meta["_index"]
            bad_name = self.index_name_problem(index)
            with self.lock:
                if bad_name:
                    status, error = (
                        400,
                        {"type": "invalid_index_name_exception", "reason": f"Invalid index name [{index}], {bad_name}"},
                    )
                elif index in self.closed_indices:
                    status, error = 400, {"type": "index_closed_exception", "reason": "closed", "index": index}
                elif doc_id in self.item_429_once:
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
                    self.arrived((source["event_id"],))
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
    ≤ 5 MB uncompressed, ≤ 1 MB per log; 202 on success. A log whose ``timestamp`` (ISO 8601
    or epoch milliseconds) is older than 18 hours is answered 202 like the others but never
    indexed, as Datadog does: it is counted in ``unindexed``, not received."""

    API_KEY = "3b9e0c6f2a8d4e1b9c7f5a3d1e0b2c4d"
    MAX_AGE_S = 18 * 3600

    def __init__(self) -> None:
        super().__init__()
        self.clock = time.time
        self.unindexed = 0

    def indexed(self, log: dict[str, Any]) -> bool:
        stamp = log.get("timestamp")
        if stamp is None:
            return True  # stamped on arrival
        try:
            seconds = (
                stamp / 1000
                if isinstance(stamp, (int, float)) and not isinstance(stamp, bool)
                else datetime.fromisoformat(str(stamp)).timestamp()
            )
        except ValueError:
            return True  # not a date: Datadog keeps it as a plain attribute and stamps the log on arrival
        return self.clock() - seconds <= self.MAX_AGE_S

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
            if (
                not isinstance(log, dict)
                or not isinstance(log.get("message"), str)
                or not isinstance(log.get("ddtags", ""), str)
                or log.get("event_id") in self.refuse_ids
                or len(json.dumps(log)) > 1_000_000
            ):
                return 400, {"errors": ["Bad Request"]}, {}
        kept = [log for log in logs if self.indexed(log)]
        with self.lock:
            self.unindexed += len(logs) - len(kept)
            self.received.bodies.extend(kept)
        self.accept([log["event_id"] for log in kept])
        return 202, {}, {}

    def handle_get(self, path: str, headers: Any) -> Answer:
        if path == "/api/v1/validate":
            if headers.get("DD-API-KEY") == self.API_KEY and not self.auth_broken:
                return 200, {"valid": True}, {}
            return 403, {"errors": ["Forbidden"]}, {}
        return 404, {"errors": ["not found"]}, {}


# -- the incident and annotation vendors ---------------------------------------------------
UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")


def field_problem(
    obj: dict[str, Any],
    key: str,
    kind: type | tuple[type, ...],
    *,
    required: bool = False,
    max_len: int | None = None,
    choices: Collection[str] | None = None,
    items: type | None = None,
) -> str | None:
    """Why ``obj[key]`` breaks a documented field rule, or None. A JSON boolean never passes
    for a number; a required string must not be blank; ``items`` types a list's items or an
    object's values."""
    if key not in obj:
        return f"{key} is required" if required else None
    value = obj[key]
    if isinstance(value, bool) or not isinstance(value, kind):
        return f"{key} has the wrong type"
    if required and isinstance(value, str) and not value.strip():
        return f"{key} must not be empty"
    if max_len is not None and len(value) > max_len:
        return f"{key} is longer than {max_len}"
    if choices is not None and value not in choices:
        return f"{key} must be one of {', '.join(choices)}"
    members = value.values() if isinstance(value, dict) else value
    if items is not None and any(isinstance(v, bool) or not isinstance(v, items) for v in members):
        return f"{key} must hold only {items.__name__} values"
    return None


def first(*problems: str | None) -> str | None:
    return next((p for p in problems if p), None)


def json_object(body: bytes) -> dict[str, Any] | None:
    """The body as a JSON object, or None when it is not one."""
    try:
        value = json.loads(body)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def media_type(headers: Any) -> str:
    return headers.get("Content-Type", "").split(";")[0].strip().lower()


class GrafanaReceiver(ContractReceiver):
    """``POST /api/annotations`` (Bearer token) adds one annotation, ``PATCH
    /api/annotations/{id}`` updates it, ``GET /api/annotations?limit=N`` finds the newest;
    ``time``/``timeEnd`` are epoch milliseconds and an annotation with ``timeEnd > time`` is
    a region. Event ids are the uuids in the text."""

    TOKEN = "glsa_Tq8VnW3xK2mZ7pR4sY6uB9dF1hJ5lN0c_4e7a91c2"
    MIN_MS = 10**12  # a smaller "millisecond" time is really seconds (or 1970)
    PATCHABLE = ("text", "tags", "time", "timeEnd")

    #: Characters of a tag's key and of its value that Grafana's SQL stores hold (varchar(100)).
    TAG_COLUMN = 100

    def __init__(self) -> None:
        super().__init__()
        self.annotations: dict[int, dict[str, Any]] = {}

    def handle_request(self, method: str, path: str, headers: Any, body: bytes) -> Answer:
        url = urlsplit(path)
        patch = re.fullmatch(r"/api/annotations/(\d+)", url.path)
        if not ((url.path == "/api/annotations" and method in ("GET", "POST")) or (method == "PATCH" and patch)):
            return 404, {"message": "Not found"}, {}
        if headers.get("Authorization") != f"Bearer {self.TOKEN}" or self.auth_broken:
            return 401, {"message": "Unauthorized"}, {}
        if method == "GET":  # find: newest first, ``limit`` of them (100 by default)
            limit = parse_qs(url.query).get("limit", ["100"])[0]
            with self.lock:
                found = sorted(self.annotations.values(), key=lambda a: a["time"], reverse=True)
                return 200, [dict(a) for a in found[: int(limit) if limit.isdigit() else 100]], {}
        fields = json_object(body)
        if fields is None or media_type(headers) != "application/json":
            return 400, {"message": "bad request data"}, {}
        with self.lock:
            if patch:
                old = self.annotations.get(int(patch[1]))
                if old is None:
                    return 404, {"message": "Could not find annotation to update"}, {}
                new = {**old, **{k: fields[k] for k in self.PATCHABLE if k in fields}}
            else:
                new = {"time": int(time.time() * 1000), "tags": [], **fields, "id": len(self.annotations) + 1}
                new.setdefault("timeEnd", new["time"])
            problem = self._problem(new)
            if problem:
                return 400, {"message": "bad request data", "error": problem}, {}
            if any(
                len(part) > self.TAG_COLUMN
                for tag in new.get("tags") or []
                if isinstance(tag, str)
                for part in tag.split(":", 1)
            ):
                # Grafana on MySQL/Postgres stores a tag's key and value in 100-character
                # columns: a longer one fails the insert, answered as a bare 500.
                return 500, {"message": "Failed to save annotation"}, {}
            self.annotations[new["id"]] = new
            self.received.bodies.append(fields)
            if isinstance(fields.get("text"), str):
                self.received.event_ids.update(UUID.findall(fields["text"]))
                self.arrived(UUID.findall(fields["text"]))
        if patch:
            return 200, {"message": "Annotation patched"}, {}
        return 200, {"message": "Annotation added", "id": new["id"]}, {}

    def _problem(self, a: dict[str, Any]) -> str | None:
        problem = first(
            field_problem(a, "text", str, required=True),
            field_problem(a, "tags", list, items=str),
            field_problem(a, "time", int),
            field_problem(a, "timeEnd", int),
            field_problem(a, "dashboardUID", str),
            field_problem(a, "panelId", int),
        )
        if problem:
            return problem
        if a["time"] < self.MIN_MS or a["timeEnd"] < self.MIN_MS:
            return "time and timeEnd are epoch milliseconds"
        if a["timeEnd"] < a["time"]:
            return "timeEnd is before time"
        if self.refuse_ids.intersection(UUID.findall(a["text"])):
            return "refused"
        return None

    def regions(self) -> list[dict[str, Any]]:
        """The annotations that span time (timeEnd > time), oldest first."""
        with self.lock:
            return [dict(a) for a in self.annotations.values() if a["timeEnd"] > a["time"]]


class NewRelicReceiver(ContractReceiver):
    """Event API ``/v1/accounts/{account}/events``: Api-Key (or X-Insert-Key), a JSON array
    of flat events, gzip allowed, ≤ 1 MB as sent. One bad event refuses the whole POST."""

    ACCOUNT_ID = "3141592"
    LICENSE_KEY = "eu01xx5f0c3a9e7b1d2468ace13579bdf0a2NRAL"
    MAX_BODY = 1_000_000
    EVENT_TYPE = re.compile(r"[A-Za-z0-9_:]{1,255}")

    def __init__(self) -> None:
        super().__init__()
        self.clock = time.time

    def handle(self, path: str, headers: Any, body: bytes) -> Answer:
        account = re.fullmatch(r"/v1/accounts/([^/]+)/events", path)
        if account is None:
            return 404, {"success": False, "error": "not found"}, {}
        key = headers.get("Api-Key") or headers.get("X-Insert-Key")
        if key != self.LICENSE_KEY or account[1] != self.ACCOUNT_ID or self.auth_broken:
            return 403, {"success": False, "error": "invalid key for this account"}, {}
        if media_type(headers) != "application/json" or headers.get("Content-Encoding", "identity") not in (
            "gzip",
            "identity",
        ):
            return 415, {"success": False, "error": "unsupported media type or encoding"}, {}
        if len(body) > self.MAX_BODY:
            return 413, {"success": False, "error": "payload larger than 1 MB"}, {}
        try:
            events = json.loads(self.decompress(headers, body))
        except (OSError, EOFError, zlib.error, ValueError):
            events = None
        if not isinstance(events, list):
            return 400, {"success": False, "error": "expected a JSON array of events"}, {}
        problem = first(*(self._problem(e) for e in events))
        if problem:
            return 400, {"success": False, "error": problem}, {}
        with self.lock:
            self.received.bodies.extend(events)
            self.received.event_ids.update(e["event_id"] for e in events if isinstance(e.get("event_id"), str))
            self.arrived([e["event_id"] for e in events if isinstance(e.get("event_id"), str)])
        return 200, {"success": True, "uuid": str(uuid.uuid4())}, {}

    def _problem(self, event: Any) -> str | None:
        event_type = event.get("eventType") if isinstance(event, dict) else None
        if not isinstance(event_type, str) or not self.EVENT_TYPE.fullmatch(event_type):
            return "every event needs an eventType of letters, digits, _ and :"
        if len(event) > 255:
            return "more than 255 attributes"
        for name, value in event.items():
            if isinstance(value, bool) or not isinstance(value, (str, int, float)) or len(name) > 255:
                return f"{name[:64]}: values are strings or numbers"
            if (isinstance(value, float) and not math.isfinite(value)) or (
                isinstance(value, str) and len(value.encode()) > 4096
            ):
                return f"{name[:64]}: value out of range"
        stamp = event.get("timestamp", self.clock())
        if not isinstance(stamp, (int, float)) or abs(self.clock() - (stamp / 1000 if stamp > 1e11 else stamp)) > 86400:
            return "timestamp must be epoch seconds or milliseconds within 24 hours"
        if event.get("event_id") in self.refuse_ids:
            return "refused"
        return None


class IncidentHistory:
    """Incidents per key as PagerDuty and VictorOps keep them: a list per key, oldest first,
    each with status (triggered, acknowledged, resolved), alerts (triggers merged into it),
    and opened/resolved (positions in the accepted requests, None while open)."""

    lock: threading.Lock
    _incidents: dict[str, list[dict[str, Any]]]

    def incidents(self, key: str) -> list[dict[str, Any]]:
        with self.lock:
            return [dict(i) for i in self._incidents.get(key, [])]

    def opened_count(self, key: str | None = None) -> int:
        """Incidents ever opened, for one key or in total."""
        with self.lock:
            return len(self._incidents.get(key, [])) if key else sum(map(len, self._incidents.values()))

    def open_keys(self) -> set[str]:
        with self.lock:
            return {k for k, history in self._incidents.items() if history and history[-1]["status"] != "resolved"}


class PagerDutyReceiver(IncidentHistory, ContractReceiver):
    """Events API v2 ``/v2/enqueue``: the routing key in the body, one event per POST
    (≤ 512 KB), at most ``rate_limit`` events per ``rate_window_s`` per key. Incidents per
    dedup_key as PagerDuty keeps them: a trigger joins the open incident or opens a new one,
    acknowledge and resolve act on the open one (none open: accepted, nothing happens)."""

    ROUTING_KEY = "e93facc04764012d7bfb002500d5d1a6"
    MAX_BYTES = 512 * 1024
    ACTIONS = ("trigger", "acknowledge", "resolve")
    SEVERITIES = ("critical", "error", "warning", "info")
    THROTTLED: ClassVar[dict[str, str]] = {
        "status": "throttle event",
        "message": "Requests for this service are arriving too quickly. Please retry later.",
    }

    def __init__(self) -> None:
        super().__init__()
        self.rate_limit, self.rate_window_s, self.clock = 120, 60.0, time.monotonic
        self.resolves = 0  # resolve events accepted (they carry no event id)
        self.throttled = 0  # events answered 429
        self._recent: dict[str, deque[float]] = defaultdict(deque)
        self._incidents: dict[str, list[dict[str, Any]]] = defaultdict(list)

    @staticmethod
    def invalid(error: str) -> Answer:
        return 400, {"status": "invalid event", "message": "Event object is invalid", "errors": [error]}, {}

    def handle(self, path: str, headers: Any, body: bytes) -> Answer:
        if path != "/v2/enqueue":
            return 404, {"status": "not found"}, {}
        event = json_object(body)
        if event is None or len(body) > self.MAX_BYTES:
            return self.invalid("Event must be a JSON object of at most 512 KB")
        if event.get("routing_key") != self.ROUTING_KEY or self.auth_broken:
            return self.invalid("Invalid routing key")
        with self.lock:
            recent, now = self._recent[self.ROUTING_KEY], self.clock()
            while recent and recent[0] <= now - self.rate_window_s:
                recent.popleft()
            if len(recent) >= self.rate_limit:
                self.throttled += 1
                return 429, self.THROTTLED, {}
            recent.append(now)
        problem = self._problem(event)
        if problem:
            return self.invalid(problem)
        action, key = event["event_action"], event.get("dedup_key") or uuid.uuid4().hex
        with self.lock:
            self.received.bodies.append(event)
            history = self._incidents[key]
            current = history[-1] if history and history[-1]["status"] != "resolved" else None
            if action == "trigger":
                if current is None:
                    current = {
                        "status": "triggered",
                        "alerts": 0,
                        "opened": len(self.received.bodies),
                        "resolved": None,
                    }
                    history.append(current)
                current["alerts"] += 1
                event_id = event["payload"].get("custom_details", {}).get("event_id")
                if isinstance(event_id, str):
                    self.received.event_ids[event_id] += 1
                    self.arrived((event_id,))
            elif current is not None:
                current["status"] = "resolved" if action == "resolve" else "acknowledged"
                current["resolved"] = len(self.received.bodies) if action == "resolve" else None
            self.resolves += action == "resolve"
        return 202, {"status": "success", "message": "Event processed", "dedup_key": key}, {}

    def _problem(self, event: dict[str, Any]) -> str | None:
        action = event.get("event_action")
        problem = first(
            field_problem(event, "event_action", str, required=True, choices=self.ACTIONS),
            field_problem(event, "dedup_key", str, required=action != "trigger", max_len=255),
        )
        if problem or action != "trigger":
            return problem
        payload = event.get("payload")
        if not isinstance(payload, dict):
            return "payload is required for trigger"
        problem = first(
            field_problem(payload, "summary", str, required=True, max_len=1024),
            field_problem(payload, "source", str, required=True),
            field_problem(payload, "severity", str, required=True, choices=self.SEVERITIES),
            *(field_problem(payload, k, str) for k in ("timestamp", "component", "group", "class")),
            field_problem(payload, "custom_details", dict),
        )
        if problem:
            return problem
        try:
            datetime.fromisoformat(payload.get("timestamp", "2000-01-01T00:00:00Z"))
        except ValueError:
            return "payload.timestamp is not ISO 8601"
        return "refused" if payload.get("custom_details", {}).get("event_id") in self.refuse_ids else None


class OpsgenieReceiver(ContractReceiver):
    """Alert API with ``GenieKey`` auth: ``POST /v2/alerts`` creates (one open alert per
    alias: a second create deduplicates into it), ``POST /v2/alerts/{identifier}/close``
    closes. Both answer 202 before processing, as Opsgenie does; the outcome is read with
    ``GET /v2/alerts/requests/{requestId}`` (after ``pending_polls`` "not yet" answers)."""

    API_KEY = "5d3c1a2b-7e9f-4c1d-8b6a-0f2e4d6c8a1b"
    LIMITS: ClassVar[dict[str, int]] = {
        "message": 130,
        "alias": 512,
        "description": 15000,
        "entity": 512,
        "source": 100,
        "user": 100,
        "note": 25000,
    }
    PRIORITIES = ("P1", "P2", "P3", "P4", "P5")
    MAX_DETAILS = 8000  # keys and values together
    IDENTIFIERS: ClassVar[dict[str, str]] = {"id": "id", "alias": "alias", "tiny": "tinyId"}

    def __init__(self) -> None:
        super().__init__()
        self.pending_polls = 0
        self.closes = 0  # close requests accepted (they carry no event id)
        self.heartbeats: list[tuple[str, float]] = []  # (heartbeat name, time.monotonic()) of each ping
        self._alerts: list[dict[str, Any]] = []
        self._outcomes: dict[str, dict[str, Any]] = {}
        self._pending: dict[str, int] = {}

    @staticmethod
    def answer(status: int, took: float = 0.1, **fields: Any) -> Answer:
        return status, {**fields, "took": took, "requestId": str(uuid.uuid4())}, {}

    def handle_request(self, method: str, path: str, headers: Any, body: bytes) -> Answer:
        url = urlsplit(path)
        if headers.get("Authorization") != f"GenieKey {self.API_KEY}" or self.auth_broken:
            return self.answer(401, took=0.0, message="Could not authenticate")
        poll = re.fullmatch(r"/v2/alerts/requests/([^/]+)", url.path)
        close = re.fullmatch(r"/v2/alerts/([^/]+)/close", url.path)
        beat = re.fullmatch(r"/v2/heartbeats/([^/]+)/ping", url.path)
        if method == "GET" and poll:
            return self._outcome(poll[1])
        if beat and method in ("GET", "POST", "PUT", "PATCH"):
            # Heartbeat API: pings are processed asynchronously; the answer never says
            # whether the heartbeat exists.
            with self.lock:
                self.heartbeats.append((unquote(beat[1]), time.monotonic()))
            return self.answer(202, result="PONG - Heartbeat received")
        if method != "POST" or not (close or url.path == "/v2/alerts"):
            return self.answer(404, message="Could not find the requested resource")
        if body.strip() and media_type(headers) != "application/json":
            return self.answer(415, message="Unsupported Media Type")
        fields = json_object(body) if body.strip() or not close else {}
        if fields is None:
            return self.answer(400, message="Invalid JSON body")
        kind = parse_qs(url.query).get("identifierType", ["id"])[0]
        problem = self._close_problem(fields, kind) if close else self._create_problem(fields)
        if problem:
            return self.answer(
                422,
                message="Request body is not processable. Please check the errors.",
                errors={problem.split(" ", 1)[0]: problem},
            )
        request_id = str(uuid.uuid4())
        with self.lock:
            self.received.bodies.append(fields)
            if close:
                outcome = self._close(unquote(close[1]), self.IDENTIFIERS[kind])
            else:
                outcome = self._create(fields)
            self._outcomes[request_id], self._pending[request_id] = outcome, self.pending_polls
        return 202, {"result": "Request will be processed", "took": 0.1, "requestId": request_id}, {}

    def _create_problem(self, fields: dict[str, Any]) -> str | None:
        problem = first(
            *(field_problem(fields, k, str, max_len=n, required=k == "message") for k, n in self.LIMITS.items()),
            field_problem(fields, "details", dict, items=str),
            field_problem(fields, "tags", list, items=str),
            field_problem(fields, "priority", str, choices=self.PRIORITIES),
        )
        if problem:
            return problem
        tags = fields.get("tags", [])
        if len(tags) > 20 or any(len(t) > 50 for t in tags):
            return "tags are at most 20 of at most 50 characters"
        if sum(len(k) + len(v) for k, v in fields.get("details", {}).items()) > self.MAX_DETAILS:
            return "details are at most 8000 characters in all"
        return "details refused" if fields.get("details", {}).get("event_id") in self.refuse_ids else None

    def _close_problem(self, fields: dict[str, Any], kind: str) -> str | None:
        if kind not in self.IDENTIFIERS:
            return "identifierType must be one of id, alias, tiny"
        return first(*(field_problem(fields, k, str, max_len=self.LIMITS[k]) for k in ("user", "source", "note")))

    def _open(self, key: str, identifier: str) -> dict[str, Any] | None:
        return next((a for a in self._alerts if a[key] == identifier and a["status"] == "open"), None)

    def _create(self, fields: dict[str, Any]) -> dict[str, Any]:
        alert_id = str(uuid.uuid4())
        alias = fields.get("alias") or alert_id
        alert = self._open("alias", alias)
        if alert is None:
            alert = {
                "id": alert_id,
                "tinyId": str(len(self._alerts) + 1),
                "alias": alias,
                "status": "open",
                "count": 0,
                "opened": len(self.received.bodies),
                "closed": None,
                "message": fields["message"],
                "priority": fields.get("priority", "P3"),
            }
            self._alerts.append(alert)
        alert["count"] += 1
        event_id = fields.get("details", {}).get("event_id")
        if isinstance(event_id, str):
            self.received.event_ids[event_id] += 1
            self.arrived((event_id,))
        status = "Created alert" if alert["count"] == 1 else "Alert deduplicated"
        return {"success": True, "action": "Create", "status": status, "alertId": alert["id"], "alias": alias}

    def _close(self, identifier: str, key: str) -> dict[str, Any]:
        self.closes += 1
        alert = self._open(key, identifier)
        if alert is None:
            return {
                "success": False,
                "action": "Close",
                "status": "Alert does not exist",
                "alertId": "",
                "alias": identifier if key == "alias" else "",
            }
        alert["status"], alert["closed"] = "closed", len(self.received.bodies)
        return {
            "success": True,
            "action": "Close",
            "status": "Closed alert",
            "alertId": alert["id"],
            "alias": alert["alias"],
        }

    def _outcome(self, request_id: str) -> Answer:
        with self.lock:
            outcome, pending = self._outcomes.get(request_id), self._pending.get(request_id, 0)
            if pending:
                self._pending[request_id] = pending - 1
        if outcome is None or pending:
            return self.answer(404, message="Request not found. It might not be processed, yet.")
        return self.answer(200, data=outcome)

    def alerts(self, alias: str) -> list[dict[str, Any]]:
        """The alerts of an alias, oldest first: status (open, closed), count (creates
        deduplicated into it, the first included), opened/closed (sequence numbers of the
        accepted requests that opened/closed it), id, tinyId, message, priority."""
        with self.lock:
            return [dict(a) for a in self._alerts if a["alias"] == alias]

    def opened_count(self, alias: str | None = None) -> int:
        """Alerts ever opened, for one alias or in total."""
        with self.lock:
            return sum(1 for a in self._alerts if alias is None or a["alias"] == alias)

    def open_aliases(self) -> set[str]:
        with self.lock:
            return {a["alias"] for a in self._alerts if a["status"] == "open"}


class VictorOpsReceiver(IncidentHistory, ContractReceiver):
    """REST endpoint ``/integrations/generic/20131114/alert/{api_key}/{routing_key}``: both
    secrets in the path, one alert per POST. CRITICAL opens an incident per entity_id (or
    updates the open one); WARNING updates an open one but opens none (VictorOps' default:
    only an account rule makes a WARNING page); ACKNOWLEDGEMENT acknowledges it, RECOVERY
    resolves it, INFO only joins the timeline. No answer ever carries the api key."""

    API_KEY = "7c2e9a41-3b5d-4f60-8e1a-d94c0b7f2a35"
    ROUTING_KEY = "printers"
    TYPES = ("CRITICAL", "WARNING", "INFO", "ACKNOWLEDGEMENT", "RECOVERY")
    MAX_SECONDS = 10**11  # epoch seconds stay below this until the year 5138; milliseconds do not

    def __init__(self) -> None:
        super().__init__()
        self.timeline: list[dict[str, Any]] = []  # every accepted alert, with its routing_key
        self._incidents: dict[str, list[dict[str, Any]]] = defaultdict(list)

    def handle(self, path: str, headers: Any, body: bytes) -> Answer:
        route = re.fullmatch(r"/integrations/generic/20131114/alert/([^/]+)/([^/]+)", path)
        if route is None:
            return 404, {"result": "failure", "message": "Not found"}, {}
        if route[1] != self.API_KEY or self.auth_broken:
            return 403, {"result": "failure", "message": "Invalid API key"}, {}
        alert = json_object(body)
        if alert is None:
            return 400, {"result": "failure", "message": "Could not parse the body as a JSON object"}, {}
        kind = alert.get("message_type")
        alert = {**alert, "message_type": kind.upper() if isinstance(kind, str) else kind}
        problem = self._problem(alert)
        if problem:
            return 400, {"result": "failure", "message": problem}, {}
        kind, entity = alert["message_type"], alert.get("entity_id") or str(uuid.uuid4())
        with self.lock:
            self.received.bodies.append(alert)
            self.timeline.append({**alert, "routing_key": route[2]})
            history = self._incidents[entity]
            current = history[-1] if history and history[-1]["status"] != "resolved" else None
            if kind == "CRITICAL" or (kind == "WARNING" and current is not None):
                if current is None:
                    current = {
                        "status": "triggered",
                        "alerts": 0,
                        "opened": len(self.timeline),
                        "resolved": None,
                        "routing_key": route[2],
                    }
                    history.append(current)
                current["alerts"] += 1
                current["message_type"] = kind
            elif current is not None and kind in ("ACKNOWLEDGEMENT", "RECOVERY"):
                current["status"] = "acknowledged" if kind == "ACKNOWLEDGEMENT" else "resolved"
                current["resolved"] = len(self.timeline) if kind == "RECOVERY" else None
            if isinstance(alert.get("event_id"), str):
                self.received.event_ids[alert["event_id"]] += 1
                self.arrived((alert["event_id"],))
        return 200, {"result": "success", "entity_id": entity}, {}

    def _problem(self, alert: dict[str, Any]) -> str | None:
        kind = alert.get("message_type")
        for key in ("timestamp", "state_start_time"):
            value = alert.get(key, 0)
            if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < self.MAX_SECONDS:
                return f"{key} must be whole epoch seconds"
        return first(
            field_problem(alert, "message_type", str, required=True, choices=self.TYPES),
            field_problem(alert, "entity_id", str, required=kind != "INFO"),
            field_problem(alert, "entity_display_name", str),
            field_problem(alert, "state_message", str),
            "event refused" if alert.get("event_id") in self.refuse_ids else None,
        )

    def open_entities(self) -> set[str]:
        return self.open_keys()


class DeadMansSwitch(ContractReceiver):
    """A dead-man's-switch service (healthchecks.io, Dead Man's Snitch): ``POST
    /ping/<check token>`` records a ping (200 "OK"); an unknown token is 404."""

    TOKEN = "0c8e1f9a-6b2d-4e7a-9c3f-5d1b8a2e7f40"

    def __init__(self) -> None:
        super().__init__()
        self.pings: list[float] = []  # time.monotonic() of each ping

    @property
    def check_url(self) -> str:
        return f"{self.url}/ping/{self.TOKEN}"

    def handle(self, path: str, headers: Any, body: bytes) -> Answer:
        if path != f"/ping/{self.TOKEN}":
            return 404, {"error": "not found"}, {}
        with self.lock:
            self.pings.append(time.monotonic())
        return 200, {"ok": True}, {}
