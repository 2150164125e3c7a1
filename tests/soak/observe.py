"""What the soak run watches: when each event reaches its receiver, how much memory the
router and the connectors hold, and how far behind the consumer groups are.

The SaaS receivers are the strict contract receivers (continuum_events/devtools/receivers.py)
with their arrival record kept; the alerting ones also log each incident transition
(a resolve carries no event id at PagerDuty or Opsgenie). The three real daemons show
deliveries in their own way: rsyslog and nsca write lines to a file, tailed here; the
Pushgateway is reached through a forwarding front that notes each printer push and the
counters pushed last, and the gateway itself is read back at the end.
"""

from __future__ import annotations

import gc
import json
import re
import threading
import time
from array import array
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from confluent_kafka import OFFSET_END, TIMESTAMP_CREATE_TIME, Consumer, TopicPartition

from continuum_events.devtools.receivers import (
    Answer,
    ElasticsearchReceiver,
    OpsgenieReceiver,
    PagerDutyReceiver,
    VictorOpsReceiver,
)
from continuum_events.settings import KafkaSettings
from tests.daemons import PushgatewayFront
from tests.kafka_helpers import committed_offsets

Transition = tuple[str, str, float]  # (incident key, "trigger" | "resolve", arrival time)


# -- receivers ----------------------------------------------------------------------------
class _SlimDocuments(dict):
    """Elasticsearch's documents by _id, holding only the event id: a 30-minute run would
    otherwise keep every event's whole source in this process."""

    def __setitem__(self, doc_id: str, source: Any) -> None:
        super().__setitem__(doc_id, source["event_id"] if isinstance(source, Mapping) else source)


class SoakElasticsearch(ElasticsearchReceiver):
    def __init__(self) -> None:
        super().__init__()
        self.documents = _SlimDocuments()


class _Transitions:
    """Logs every incident transition the vendor accepted, with its arrival time."""

    transitions: list[Transition]
    lock: threading.Lock

    def transition(self, method: str, path: str, body: bytes, status: int) -> Transition | None:
        raise NotImplementedError

    def handle_request(self, method: str, path: str, headers: Any, body: bytes) -> Answer:
        answer = super().handle_request(method, path, headers, body)  # type: ignore[misc]
        seen = self.transition(method, path, body, answer[0])
        if seen is not None:
            with self.lock:
                self.transitions.append(seen)
        return answer


def _json(body: bytes) -> dict[str, Any]:
    try:
        value = json.loads(body)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


class SoakPagerDuty(_Transitions, PagerDutyReceiver):
    def __init__(self) -> None:
        super().__init__()
        self.transitions = []

    def transition(self, method: str, path: str, body: bytes, status: int) -> Transition | None:
        event = _json(body)
        if status != 202 or event.get("event_action") not in ("trigger", "resolve"):
            return None
        return event.get("dedup_key", ""), event["event_action"], time.time()


class SoakOpsgenie(_Transitions, OpsgenieReceiver):
    CLOSE = re.compile(r"/v2/alerts/([^/]+)/close")

    def __init__(self) -> None:
        super().__init__()
        self.transitions = []

    def transition(self, method: str, path: str, body: bytes, status: int) -> Transition | None:
        if status != 202 or method != "POST":
            return None
        close = self.CLOSE.fullmatch(urlsplit(path).path)
        if close:
            return unquote(close[1]), "resolve", time.time()
        return _json(body).get("alias", ""), "trigger", time.time()


class SoakVictorOps(_Transitions, VictorOpsReceiver):
    def __init__(self) -> None:
        super().__init__()
        self.transitions = []

    def transition(self, method: str, path: str, body: bytes, status: int) -> Transition | None:
        alert = _json(body)
        kind = str(alert.get("message_type", "")).upper()
        if status != 200 or kind not in ("CRITICAL", "WARNING", "RECOVERY"):
            return None
        return alert.get("entity_id", ""), "resolve" if kind == "RECOVERY" else "trigger", time.time()


class SoakGateway(PushgatewayFront):
    """The real Pushgateway behind the contract front: notes when each printer's up/down
    change (told apart by the change's event time, which the push carries) first reached
    the gateway, and the event counters of the last push."""

    CHANGE = re.compile(rb"^continuum_printer_last_change_timestamp_seconds (\S+)$", re.M)
    COUNTER = re.compile(r'^continuum_events_total\{event_type="([^"]+)",severity="([^"]+)"\} (\S+)$', re.M)

    def __init__(self) -> None:
        super().__init__()
        self.changes: dict[tuple[str, float], float] = {}  # (printer, change time s) -> first push
        self.counters: dict[tuple[str, str], float] = {}
        self.pushes = 0

    def handle_request(self, method: str, path: str, headers: Any, body: bytes) -> Answer:
        answer = super().handle_request(method, path, headers, body)
        if 200 <= answer[0] < 300 and method in ("POST", "PUT"):
            now = time.time()
            with self.lock:
                self.pushes += 1
                printer = self._PRINTER.fullmatch(path)
                if printer and (change := self.CHANGE.search(body)):
                    self.changes.setdefault((printer[1], float(change[1])), now)
                elif method == "PUT" and b"continuum_events_total" in body:
                    self.counters = {(t, s): float(n) for t, s, n in self.COUNTER.findall(body.decode())}
        return answer

    def gateway_counters(self) -> dict[tuple[str, str], float]:
        """The counters the real gateway holds (read back from its /metrics)."""
        return self.gateway.counters("continuum")

    def gateway_printers(self) -> dict[str, tuple[float | None, float | None]]:
        """printer -> (up, last change time s), as the real gateway holds them."""
        up = {
            labels["printer"]: v
            for labels, v in self.gateway.samples("continuum_printer_up", job="continuum")
            if "printer" in labels
        }
        changed = {
            labels["printer"]: v
            for labels, v in self.gateway.samples("continuum_printer_last_change_timestamp_seconds", job="continuum")
            if "printer" in labels
        }
        return {p: (up.get(p), changed.get(p)) for p in up.keys() | changed.keys()}


# -- the daemons' files -----------------------------------------------------------------------
class FileTail:
    """Reads a growing file from where it stopped and notes each event id's first
    appearance (and how often it appeared)."""

    def __init__(self, path: Path, pattern: str) -> None:
        self.path, self.pattern = path, re.compile(pattern.encode())
        self.arrivals: dict[str, float] = {}
        self.counts: Counter[str] = Counter()
        self._offset, self._rest = 0, b""

    def skip_existing(self) -> FileTail:
        """Start at the file's current end: what it held before is not ours."""
        self._offset = self.path.stat().st_size if self.path.exists() else 0
        return self

    def poll(self) -> None:
        try:
            with open(self.path, "rb") as f:
                f.seek(self._offset)
                data = f.read()
        except FileNotFoundError:
            return
        if not data:
            return
        now = time.time()
        self._offset += len(data)
        data, _, self._rest = (self._rest + data).rpartition(b"\n")
        for match in self.pattern.finditer(data):
            event_id = match[1].decode()
            self.counts[event_id] += 1
            self.arrivals.setdefault(event_id, now)


class Tailer:
    """Polls the tails every ``interval`` s in a thread of its own."""

    def __init__(self, tails: list[FileTail], interval: float = 0.05) -> None:
        self.tails, self.interval = tails, interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="soak-tailer", daemon=True)

    def __enter__(self) -> Tailer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)
        for tail in self.tails:
            tail.poll()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            for tail in self.tails:
                tail.poll()


# -- processes and groups -------------------------------------------------------------------------
def rss_bytes(pid: int) -> int | None:
    """Resident set size of a live process (VmRSS in /proc/PID/status)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except (FileNotFoundError, ProcessLookupError):
        return None
    return None


@dataclass
class Sampler:
    """Calls ``sample`` every ``interval`` s in a thread; keeps (seconds since start, value)."""

    sample: Callable[[], Any]
    interval: float
    name: str = "soak-sampler"
    samples: list[tuple[float, Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
        self.started = time.monotonic()

    def start(self, origin: float | None = None) -> Sampler:
        """``origin`` (a monotonic time) is the zero of the sample times; default: now."""
        self.started = time.monotonic() if origin is None else origin
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(30)

    def _run(self) -> None:
        while True:
            t = time.monotonic() - self.started
            try:
                value = self.sample()
            except Exception as exc:  # a sample missed is reported, not fatal
                value = {"error": str(exc)}
            self.samples.append((t, value))
            if self._stop.wait(max(0.0, self.interval - (time.monotonic() - self.started - t))):
                return


class GroupLag:
    """Records behind each consumer group's committed offsets on its topic. The true ends
    come from ``high`` (a consumer's cached watermark, exact on the embedded broker, where
    ListOffsets is short)."""

    def __init__(
        self,
        settings: KafkaSettings,
        groups: Mapping[str, str],
        high: Callable[[str, int], int],
        partitions: Callable[[str], list[int]],
    ) -> None:
        self.groups = dict(groups)  # group id -> topic
        self.bootstrap = settings.bootstrap_servers
        self.high, self.partitions = high, partitions

    def __call__(self) -> dict[str, int]:
        ends = {topic: {p: self.high(topic, p) for p in self.partitions(topic)} for topic in set(self.groups.values())}
        lags = {}
        for group, topic in self.groups.items():
            answer = committed_offsets(self.bootstrap, group, [topic])
            committed = {partition: offset for (_, partition), offset in answer.items()}
            if not any(offset >= 0 for offset in committed.values()):
                continue  # no answer (a group between generations): unknown, not everything
            lags[group] = sum(max(0, end - max(committed.get(p, 0), 0)) for p, end in ends[topic].items())
        return lags


class RouterStage:
    """How long events take to reach the category topics (record time, which the router
    keeps, to arrival here): the router's share of the end-to-end latency, per phase. It
    also follows ``printer-events`` (latency not kept), so its fetches know every topic's
    true end (:meth:`high`)."""

    def __init__(self, settings: KafkaSettings, topics: list[str], also: list[str]) -> None:
        self.consumer = Consumer(
            settings.client_config(
                **{"group.id": "soak-router-stage", "enable.auto.commit": False, "fetch.wait.max.ms": 10}
            )
        )
        self.topics, self.also = topics, also
        self.phase = "prime"
        self.latencies: dict[str, array[float]] = {}
        self._partitions: dict[str, list[int]] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="soak-router-stage", daemon=True)

    def start(self) -> RouterStage:
        for topic in (*self.topics, *self.also):
            self._partitions[topic] = sorted(self.consumer.list_topics(topic, timeout=10).topics[topic].partitions)
        self.consumer.assign(
            [TopicPartition(topic, p, OFFSET_END) for topic, partitions in self._partitions.items() for p in partitions]
        )
        self._thread.start()
        return self

    def partitions(self, topic: str) -> list[int]:
        return self._partitions[topic]

    def high(self, topic: str, partition: int) -> int:
        """The high watermark of the latest fetch of that partition."""
        return self.consumer.get_watermark_offsets(TopicPartition(topic, partition), cached=True)[1]

    def stop(self) -> None:
        if not self._stop.is_set():
            self._stop.set()
            self._thread.join(10)
            self.consumer.close()

    def _run(self) -> None:
        timed = set(self.topics)
        while not self._stop.is_set():
            messages = self.consumer.consume(1000, 0.01)  # returns at 1,000 or the timeout
            now_ms = time.time() * 1000
            into = self.latencies.setdefault(self.phase, array("d"))
            for msg in messages:
                if msg.error() or msg.topic() not in timed:
                    continue
                kind, stamp = msg.timestamp()
                if kind == TIMESTAMP_CREATE_TIME:
                    into.append((now_ms - stamp) / 1000)


class StallProbe:
    """How late this process wakes, per phase, and its garbage collector's full passes.

    The receivers, the load generator and the observers all run in the soak's own process;
    when it stalls (the GIL, a full collection over a heap of delivered events), every
    latency measured here grows by the stall, whatever the pipeline did. This says how much
    of a p99 is the observer's."""

    def __init__(self, phase: Callable[[], str], period_s: float = 0.01) -> None:
        self.phase, self.period_s = phase, period_s
        self.late_s: dict[str, array[float]] = {}
        self.full_collections_s: dict[str, array[float]] = {}
        self._gc_started = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="soak-stall-probe", daemon=True)

    def start(self) -> StallProbe:
        gc.callbacks.append(self._on_gc)
        self._thread.start()
        return self

    def stop(self) -> None:
        if not self._stop.is_set():
            self._stop.set()
            self._thread.join(5)
            gc.callbacks.remove(self._on_gc)

    def _on_gc(self, stage: str, info: dict[str, int]) -> None:
        if info.get("generation") != 2:
            return
        if stage == "start":
            self._gc_started = time.perf_counter()
        else:
            took = time.perf_counter() - self._gc_started
            self.full_collections_s.setdefault(self.phase(), array("d")).append(took)

    def _run(self) -> None:
        while not self._stop.is_set():
            started = time.perf_counter()
            time.sleep(self.period_s)
            late = time.perf_counter() - started - self.period_s
            self.late_s.setdefault(self.phase(), array("d")).append(late)
