"""Prometheus Pushgateway: the fleet as metrics, not a log of events.

Each printer is one group, ``/metrics/job/<job>/printer/<printer_id>``, pushed with POST
(only the metrics named in the push are replaced, so one the batch knows nothing about
survives): ``continuum_printer_up`` (1 online, 0 offline), ``continuum_printer_toner_level_percent``,
``continuum_printer_last_change_timestamp_seconds`` (event time of the last up/down change) and
``continuum_printer_info{name,model,location,department,ip} 1``. ``printer.removed`` deletes
the printer's group. Every event counts in ``continuum_events_total{event_type,severity}``, the
group ``/metrics/job/<job>/instance/<instance>``, pushed whole with PUT, together with
``continuum_printer_last_event_timestamp_seconds{printer}``: the event time of the last event
applied to each printer (kept after ``printer.removed``)::

    sink = PushgatewaySink(PushgatewayConfig("http://pushgateway:9091"))
    sink.open(context)        # reads counters and printers back, so they continue after a restart
    sink.write(events)        # -> BatchResult, or raise Retry / ConfigError / Split

Every push sets absolute values, so a batch sent again changes nothing: a batch is folded
into a new state, which replaces the old one only once all its pushes succeeded.

Duplicates, redeliveries and late records: a printer's event is applied and counted only when
its event time is later than the printer's last applied event time, so a redelivered old
``printer.offline`` cannot set a printer that came back online down again, and a batch the
runtime delivers again after a crash is not counted again. The last event times and the
counters travel in the same PUT, so they change together and are read back together at
start. What holds, and what does not:

- a printer event is counted at most once, across restarts; one that arrives after a later
  event of its printer (a late record) is neither applied nor counted, nor is a second event
  of a printer with the very same event time (a replay cannot be told from it);
- a crash after the printers' POSTs but before the PUT re-applies that batch's printer events
  on replay, which sets the same absolute values again and counts them once;
- events without a printer (system, redirect, job) are counted once per event id by a
  running connector (the last :data:`SEEN_IDS` ids); after a restart, those of the
  uncommitted batch are counted again;
- a removed printer keeps its last event time, so an older event replayed later does not
  bring its group back.
Answers: 200/202 ok; 400 malformed -> Split; 400 type inconsistent with another pusher, 401/403/404 -> config; 5xx,
timeouts, refused connections -> Retry.
"""

from __future__ import annotations

import base64
import logging
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import requests
from pydantic import SecretStr

from continuum_events.connectors.base import BatchResult, ConfigError, Limits, Retry, SinkContext, Split
from continuum_events.connectors.http import HttpClient, raise_for_common
from continuum_events.events import Event

log = logging.getLogger(__name__)

#: Metrics need not be real-time: fewer, larger batches mean fewer pushes per printer.
LIMITS = Limits(max_records=500, max_bytes=1_000_000, linger_s=1.0, timeout_s=10.0)
COUNTER = "continuum_events_total"
LAST_EVENT = "continuum_printer_last_event_timestamp_seconds"
#: How many ids of events without a printer a running connector remembers, to count each once.
SEEN_IDS = 100_000
METRICS = {  # name -> (type, help), in the order a group lists them
    "continuum_printer_up": ("gauge", "1 when the printer last reported online, 0 offline."),
    "continuum_printer_toner_level_percent": ("gauge", "Toner level last reported by the printer."),
    "continuum_printer_last_change_timestamp_seconds": ("gauge", "Event time of the last up/down change."),
    "continuum_printer_info": ("gauge", "Printer facts as labels; always 1."),
    COUNTER: ("counter", "Events delivered to the Pushgateway, by type and severity."),
    LAST_EVENT: ("gauge", "Event time of the last event applied to the printer; older ones are ignored."),
}
_ORDER = {name: i for i, name in enumerate(METRICS)}
UP = {"printer.online": 1, "printer.offline": 0}
INFO_FIELDS = {
    "name": "printer_name",
    "model": "printer_model",
    "location": "printer_location",
    "department": "printer_department",
    "ip": "printer_ip",
}
_PLAIN = re.compile(r"[A-Za-z0-9_~-][A-Za-z0-9._~-]*")  # no leading dot: "." and ".." are path steps


@dataclass(frozen=True)
class PushgatewayConfig:
    url: str  # e.g. http://pushgateway:9091 (with the path prefix of a proxy, if any)
    job: str = "continuum"
    #: Grouping key of the event counters; one per connector deployment.
    instance: str = "continuum-events"
    #: Basic auth, for a gateway behind a web config or a proxy.
    username: str | None = None
    password: SecretStr | None = None

    def __post_init__(self) -> None:
        if not self.url.startswith(("http://", "https://")):
            raise ValueError(f"Pushgateway url must start with http:// or https://, got {self.url!r}")
        if self.password is not None and self.username is None:
            raise ValueError("Pushgateway password given without a username")


@dataclass(frozen=True)
class Printer:
    """What the gateway shows of one printer; None is not known yet."""

    up: int | None = None
    toner_percent: float | None = None
    last_change_s: float | None = None
    info: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class State:
    counters: Mapping[tuple[str, str], float] = field(default_factory=dict)  # (event_type, severity) -> n
    printers: Mapping[str, Printer] = field(default_factory=dict)
    #: printer_id -> event time (µs) of the last event applied; pushed with the counters.
    last_event_us: Mapping[str, int] = field(default_factory=dict)
    #: Ids of events without a printer counted by this process, oldest first (not pushed).
    seen: Mapping[str, None] = field(default_factory=dict)


@dataclass(frozen=True)
class Changes:
    """The pushes a batch needs: groups to delete first, then printers to push."""

    removed: tuple[str, ...] = ()
    touched: tuple[str, ...] = ()


def fold(state: State, events: Iterable[Event]) -> tuple[State, Changes]:
    """The state after ``events`` and the pushes that bring the gateway there; ``state`` is untouched.

    A printer's event not later than the last one applied to that printer is skipped: neither
    applied nor counted. Other events count once per event id."""
    counters, printers, last_event_us = dict(state.counters), dict(state.printers), dict(state.last_event_us)
    seen = dict(state.seen)
    removed: dict[str, None] = {}
    touched: dict[str, None] = {}  # ordered sets
    for event in events:
        printer_id = event.payload.get("printer_id")
        if event.family != "printer" or not isinstance(printer_id, str):
            if event.event_id not in seen:
                seen[event.event_id] = None
                key = (event.event_type.value, event.severity.value)
                counters[key] = counters.get(key, 0) + 1
            continue
        if event.timestamp_us <= last_event_us.get(printer_id, -math.inf):
            continue  # a duplicate, a redelivery or a late record: the printer has moved on
        last_event_us[printer_id] = event.timestamp_us
        key = (event.event_type.value, event.severity.value)
        counters[key] = counters.get(key, 0) + 1
        if event.event_type.value == "printer.removed":
            printers.pop(printer_id, None)
            touched.pop(printer_id, None)
            removed[printer_id] = None
        else:
            printers[printer_id] = apply(printers.get(printer_id, Printer()), event)
            touched[printer_id] = None
    while len(seen) > SEEN_IDS:
        del seen[next(iter(seen))]
    return State(counters, printers, last_event_us, seen), Changes(tuple(removed), tuple(touched))


def apply(printer: Printer, event: Event) -> Printer:
    up, changed = printer.up, printer.last_change_s
    if event.event_type.value in UP:
        up = UP[event.event_type.value]
        if up != printer.up:
            changed = event.timestamp_us / 1_000_000
    toner = event.payload.get("toner_level_percent")
    if not isinstance(toner, int | float) or isinstance(toner, bool):
        toner = None  # a transform rule may have put anything there; not worth a retry loop
    facts = {
        label: str(event.payload[name])
        for label, name in INFO_FIELDS.items()
        if event.payload.get(name) not in (None, "")
    }
    return Printer(up, printer.toner_percent if toner is None else float(toner), changed, {**printer.info, **facts})


Sample = tuple[str, Mapping[str, str], float]


def printer_samples(printer: Printer) -> list[Sample]:
    values = (
        ("continuum_printer_up", printer.up),
        ("continuum_printer_toner_level_percent", printer.toner_percent),
        ("continuum_printer_last_change_timestamp_seconds", printer.last_change_s),
    )
    samples: list[Sample] = [(name, {}, value) for name, value in values if value is not None]
    if printer.info:
        samples.append(("continuum_printer_info", printer.info, 1))
    return samples


def counter_samples(counters: Mapping[tuple[str, str], float]) -> list[Sample]:
    return [(COUNTER, {"event_type": t, "severity": s}, n) for (t, s), n in sorted(counters.items())]


def instance_samples(state: State) -> list[Sample]:
    """The counters and the printers' last event times: one group, pushed whole, so both change together."""
    return counter_samples(state.counters) + [
        (LAST_EVENT, {"printer": p}, t / 1_000_000) for p, t in sorted(state.last_event_us.items())
    ]


def render(samples: Iterable[Sample]) -> bytes:
    """Text exposition format 0.0.4: HELP and TYPE once per metric, no timestamps (refused)."""
    lines, seen = [], set()
    for name, labels, value in sorted(samples, key=lambda s: _ORDER[s[0]]):
        if name not in seen:
            seen.add(name)
            lines += [f"# HELP {name} {METRICS[name][1]}", f"# TYPE {name} {METRICS[name][0]}"]
        pairs = ",".join(f'{k}="{escape(v)}"' for k, v in sorted(labels.items()))
        lines.append(f"{name}{{{pairs}}} {number(value)}" if pairs else f"{name} {number(value)}")
    return ("\n".join(lines) + "\n").encode("utf-8", "replace") if lines else b""


def number(value: float) -> str:
    """Shortest text that reads back the same float; whole numbers without a fraction."""
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def grouping_path(labels: Sequence[tuple[str, str]]) -> str:
    """``/metrics/job/j/printer/p``; a value that is empty or not plain in a path goes @base64."""
    path = "/metrics"
    for name, value in labels:
        if _PLAIN.fullmatch(value):
            path += f"/{name}/{value}"
        else:
            path += f"/{name}@base64/{base64.urlsafe_b64encode(value.encode()).decode() or '='}"
    return path


def _label(value: object) -> str:
    """Label values are text on the gateway; anything else would reach render() and fail every push."""
    if not isinstance(value, str):
        raise ValueError(f"label value {value!r} is not text")
    return value


def _count(value: object) -> float:
    """A counter's value as read back: a count, or ValueError (``+Inf``, NaN and negatives cannot be
    continued from, and pushing them on would make every rate computed from them meaningless)."""
    number = float(value)  # type: ignore[arg-type]  # ValueError/TypeError for what is not a number
    if not math.isfinite(number) or number < 0:
        raise ValueError(f"counter value {value!r} is not a count")
    return number


def state_from_api(answer: object, job: str, instance: str) -> State:
    """What a ``GET /api/v1/metrics`` answer holds of our groups (values come as strings).

    Raises ValueError for an answer that is not the gateway's."""
    if not isinstance(answer, dict) or answer.get("status") != "success" or not isinstance(answer.get("data"), list):
        raise ValueError("not a Pushgateway metrics answer")
    counters: dict[tuple[str, str], float] = {}
    printers: dict[str, Printer] = {}
    last_event_us: dict[str, int] = {}
    for group in answer["data"]:
        labels, values = group.get("labels", {}), {n: group[n]["metrics"] for n in METRICS if n in group}
        if labels == {"job": job, "instance": instance}:
            counters = {
                (_label(m["labels"]["event_type"]), _label(m["labels"]["severity"])): _count(m["value"])
                for m in values.get(COUNTER, [])
            }
            last_event_us = {
                _label(m["labels"]["printer"]): _event_time_us(m["value"]) for m in values.get(LAST_EVENT, [])
            }
        elif labels.keys() == {"job", "printer"} and labels["job"] == job:
            first = {n: m[0] for n, m in values.items() if m}
            gauge = {n: float(m["value"]) for n, m in first.items()}
            info = {
                k: _label(v)
                for k, v in first.get("continuum_printer_info", {}).get("labels", {}).items()
                if k in INFO_FIELDS
            }
            up = gauge.get("continuum_printer_up")
            printers[labels["printer"]] = Printer(
                None if up is None else int(up),
                gauge.get("continuum_printer_toner_level_percent"),
                gauge.get("continuum_printer_last_change_timestamp_seconds"),
                info,
            )
    return State(counters, printers, last_event_us)


def _event_time_us(value: object) -> int:
    """A last event time as read back, in µs (the gateway writes the shortest exact text)."""
    seconds = float(value)  # type: ignore[arg-type]
    if not math.isfinite(seconds):
        raise ValueError(f"last event time {value!r} is not a time")
    return round(seconds * 1_000_000)


class PushgatewaySink:
    limits = LIMITS

    def __init__(self, config: PushgatewayConfig, client: HttpClient | None = None) -> None:
        self.config = config
        self.client = client or HttpClient(LIMITS.timeout_s)
        if config.username is not None:
            password = config.password.get_secret_value() if config.password else ""
            self.client.session.auth = (config.username, password)
        #: None until the counters were read back from the gateway.
        self.state: State | None = None

    def open(self, context: SinkContext) -> None:
        try:
            self.state = self._restore()
        except (Retry, ConfigError) as exc:  # the first batch tries again, where the runtime handles it
            log.warning("%s: counters not read back yet: %s", context.integration, exc)

    def write(self, events: Sequence[Event]) -> BatchResult:
        if self.state is None:
            self.state = self._restore()
        state, changes = fold(self.state, events)
        for printer_id in changes.removed:
            self._send("DELETE", self._printer_path(printer_id))
        for printer_id in changes.touched:
            self._send("POST", self._printer_path(printer_id), render(printer_samples(state.printers[printer_id])))
        # Last: a crash before it re-applies this batch on replay, never counts it twice.
        self._send(
            "PUT",
            grouping_path([("job", self.config.job), ("instance", self.config.instance)]),
            render(instance_samples(state)),
        )
        self.state = state
        return BatchResult()

    def check(self) -> str:
        """The status API answers with the gateway's version; a wrong base URL or login does not."""
        response = self._request("GET", "/api/v1/status")
        try:
            version = response.json()["data"]["build_information"]["version"]
        except (ValueError, KeyError, TypeError):
            raise ConfigError(f"no Pushgateway status API at {self.config.url}") from None
        return f"Pushgateway {version} at {self.config.url} is ready"

    def close(self) -> None:
        self.client.close()

    def _printer_path(self, printer_id: str) -> str:
        return grouping_path([("job", self.config.job), ("printer", printer_id)])

    def _restore(self) -> State:
        """Counters, printers and their last event times as the gateway holds them: counting goes
        on after a restart, a repeated offline is not mistaken for a change, and a replayed batch
        is neither applied nor counted again."""
        response = self._request("GET", "/api/v1/metrics")
        if response.status_code != 200:  # never start from zero on an answer we do not understand
            raise Retry(f"Pushgateway GET /api/v1/metrics: unexpected HTTP {response.status_code}")
        try:
            state = state_from_api(response.json(), self.config.job, self.config.instance)
        except ValueError as exc:  # the gateway's, but holding what we cannot count on from
            raise ConfigError(f"Pushgateway metrics API at {self.config.url}: {str(exc)[:200]}") from None
        except (KeyError, TypeError, AttributeError, IndexError, OverflowError):  # e.g. up = +Inf
            raise ConfigError(f"no Pushgateway metrics API at {self.config.url}") from None
        log.info(
            "Pushgateway: read back %d printers and %d events counted",
            len(state.printers),
            sum(state.counters.values()),
        )
        return state

    def _send(self, method: str, path: str, body: bytes | None = None) -> None:
        response = self._request(method, path, body)
        if response.status_code == 400 and "inconsistent with" in response.text:
            # Another pusher owns the metric name with another type: a setup problem, not the event's.
            raise ConfigError(
                f"Pushgateway {method}: a metric name is taken with another type: {response.text.strip()[:200]}"
            )
        if response.status_code == 400:
            raise Split(f"Pushgateway {method}: HTTP 400 {response.text.strip()[:200]}")
        if response.status_code not in (200, 202):
            raise Retry(f"Pushgateway {method}: unexpected HTTP {response.status_code}")

    def _request(self, method: str, path: str, body: bytes | None = None) -> requests.Response:
        what = f"Pushgateway {method} {path}"
        headers = {"Content-Type": "text/plain; version=0.0.4; charset=utf-8"} if body is not None else {}
        response = self.client.request(method, self.config.url.rstrip("/") + path, body, headers, what=what)
        raise_for_common(response, what=what, retry={408, 429}, config={401, 403, 404})
        return response  # type: ignore[no-any-return]
