"""The soak run (issue 9): SOAK_RATE events a second for SOAK_SECONDS through the real router
and all eleven connectors to their receivers, then a 10× burst. Not part of the suite:
``make soak`` runs it (``SOAK_SECONDS=90 SOAK_RATE=300 make soak`` for a short trial).

Everything is real but the SaaS vendors: the embedded broker, ``continuum-events router``
and ``continuum-events connectors`` as processes of their own, integrations connected
through the config topic with secrets by reference, rsyslog, prometheus-pushgateway and
nsca; the eight SaaS vendors are the strict contract receivers. Thresholds, each checked
and reported with its figures:

* end-to-end p99 ≤ 2 s at every receiver (event time → arrival, steady phase);
* RSS growth of the router and the connectors < 10 % after the warm-up (first 20 %);
* 0 events lost at any receiver, 0 duplicate incidents at PagerDuty, Opsgenie, VictorOps;
* the burst (10× the rate for SOAK_BURST_SECONDS) is absorbed as lag, not drops: 0 lost
  once it drained; the lag peak and the drain time are reported.

The table is printed and the figures written to ``.state/reports/soak.json``. Other knobs
(environment): SOAK_BURST_SECONDS (30), SOAK_PRINTERS (2,000), SOAK_DRAIN_TIMEOUT (900 s),
SOAK_NSCA_CONFIRM_S (the NSCA sink's confirm wait; unset: its default).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from continuum_events import operations
from continuum_events.broker import KafkaBroker, default_engine, free_port, local_broker
from continuum_events.devtools.receivers import (
    ContractReceiver,
    DatadogReceiver,
    ElasticsearchReceiver,
    GrafanaReceiver,
    NewRelicReceiver,
    OpsgenieReceiver,
    PagerDutyReceiver,
    SplunkReceiver,
    VictorOpsReceiver,
)
from continuum_events.history import history_consumer, watermarks
from continuum_events.integrations import IntegrationSpec
from continuum_events.producers.app import EventProducer
from continuum_events.settings import KafkaSettings
from continuum_events.status import StatusBoard, combine
from continuum_events.topology import (
    EVENTS_DLQ_TOPIC,
    EVENTS_TOPIC,
    category_topic,
    connector_group,
    integration_dlq_topic,
)
from tests import daemons
from tests.daemons import Nsca, PushgatewayFront
from tests.integration.test_syslog import Rsyslog, rsyslog  # noqa: F401  (the real rsyslog, as its tests start it)
from tests.router_helpers import RouterProcess
from tests.soak import measure
from tests.soak.observe import (
    FileTail,
    GroupLag,
    RouterStage,
    Sampler,
    SoakElasticsearch,
    SoakGateway,
    SoakOpsgenie,
    SoakPagerDuty,
    SoakVictorOps,
    StallProbe,
    Tailer,
    rss_bytes,
)
from tests.soak.traffic import Traffic

SECONDS = float(os.environ.get("SOAK_SECONDS", 1800))
RATE = float(os.environ.get("SOAK_RATE", 1000))
BURST_FACTOR = 10
BURST_SECONDS = float(os.environ.get("SOAK_BURST_SECONDS", 30))
PRINTERS = int(os.environ.get("SOAK_PRINTERS", 2000))
WARMUP = 0.2  # of the steady phase, before memory growth is measured
HOLD_S = min(30.0, SECONDS / 5)  # an incident's life, offline to online
BURST_HOLD_S = min(HOLD_S, BURST_SECONDS / 3)
RSS_EVERY_S = min(10.0, max(1.0, SECONDS / 30))
P99_LIMIT_S, GROWTH_LIMIT_PCT = 2.0, 10.0
DRAIN_TIMEOUT_S = float(os.environ.get("SOAK_DRAIN_TIMEOUT", 900))
#: The NSCA sink waits confirm_s (1.5 s by default) after each batch for nsca to drop it:
#: a wait every NSCA delivery pays. Unset, the soak runs the default, as deployed.
NSCA_CONFIRM = {"confirm_s": float(os.environ["SOAK_NSCA_CONFIRM_S"])} if os.environ.get("SOAK_NSCA_CONFIRM_S") else {}
STALL_S = 120.0  # no delivery anywhere for this long while something is owed: it is lost
REPORT = Path(__file__).resolve().parents[2] / ".state" / "reports" / "soak.json"

pytestmark = [pytest.mark.soak, pytest.mark.timeout(int(SECONDS + BURST_SECONDS + DRAIN_TIMEOUT_S + 900))]


# -- the eleven integrations -----------------------------------------------------------------
@dataclass(frozen=True)
class Vendor:
    vendor: str
    options: Callable[[Any], dict[str, Any]]  # receiver -> options
    secrets: dict[str, str]  # config field -> value (given to the connectors by environment)

    @property
    def name(self) -> str:
        return f"soak-{self.vendor}"

    def spec(self, receiver: Any) -> IntegrationSpec:
        return IntegrationSpec(
            name=self.name,
            vendor=self.vendor,
            options=self.options(receiver),
            secrets={k: {"env": self.env(k)} for k in self.secrets},
            allow_insecure_http=True,
            allow_private_network=True,
        )

    def env(self, secret: str) -> str:
        return f"SOAK_{self.vendor.upper()}_{secret.upper()}"


VENDORS = (
    Vendor("splunk", lambda r: {"url": r.url, "index": "printers"}, {"token": SplunkReceiver.TOKEN}),
    Vendor("datadog", lambda r: {"url": r.url}, {"api_key": DatadogReceiver.API_KEY}),
    Vendor("elasticsearch", lambda r: {"url": r.url}, {"api_key": ElasticsearchReceiver.API_KEY}),
    Vendor(
        "syslog",
        lambda r: {
            "host": "127.0.0.1",
            "port": r.tcp,
            "transport": "tcp",
            "framing": "octet-counting",
            "format": "rfc5424",
        },
        {},
    ),
    Vendor(
        "pushgateway",
        lambda r: {"url": r.url, "username": PushgatewayFront.USERNAME},
        {"password": PushgatewayFront.PASSWORD},
    ),
    Vendor("grafana", lambda r: {"url": r.url}, {"token": GrafanaReceiver.TOKEN}),
    Vendor(
        "newrelic",
        lambda r: {"url": r.url, "account_id": NewRelicReceiver.ACCOUNT_ID},
        {"license_key": NewRelicReceiver.LICENSE_KEY},
    ),
    Vendor(
        "nsca",
        lambda r: {"host": "127.0.0.1", "port": r.port, "encryption": "xor", **NSCA_CONFIRM},
        {"password": daemons.PASSWORD},
    ),
    Vendor("pagerduty", lambda r: {"url": r.url}, {"routing_key": PagerDutyReceiver.ROUTING_KEY}),
    Vendor("opsgenie", lambda r: {"url": r.url}, {"api_key": OpsgenieReceiver.API_KEY}),
    Vendor(
        "victorops",
        lambda r: {"url": r.url},
        {"api_key": VictorOpsReceiver.API_KEY, "routing_key": VictorOpsReceiver.ROUTING_KEY},
    ),
)
CATEGORY = {
    "splunk": "logging",
    "datadog": "logging",
    "elasticsearch": "logging",
    "syslog": "logging",
    "pushgateway": "monitoring",
    "grafana": "monitoring",
    "newrelic": "monitoring",
    "nsca": "monitoring",
    "pagerduty": "alerting",
    "opsgenie": "alerting",
    "victorops": "alerting",
}


class Connectors:
    """``continuum-events connectors``: one process delivering every connected integration."""

    def __init__(self, bootstrap: str, env: dict[str, str], log: Path) -> None:
        self.log = log
        with open(log, "ab") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "continuum_events", "--log-level", "warning", "connectors", "-b", bootstrap],
                stdout=out,
                stderr=subprocess.STDOUT,
                env={**os.environ, **env, "PYTHONUNBUFFERED": "1"},
            )

    def stop(self, timeout: float = 90) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def tail(self, lines: int = 30) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])


# -- what each receiver shows ------------------------------------------------------------------
@dataclass
class Rig:
    traffic: Traffic
    http: dict[str, ContractReceiver]  # the eight SaaS receivers
    gateway: SoakGateway
    syslog: FileTail
    nsca: FileTail

    def progress(self) -> dict[str, tuple[int, int]]:
        """Per receiver (owed, shown so far), in its own unit; cheap enough to poll."""
        t = self.traffic
        with t.lock:
            routed = dict(t.routed)
            transitions = sum(1 + (c.resolve is not None) for c in t.cycles)
            counted = sum(t.monitoring_counts.values())
        shown = {name: len(r.arrivals or {}) for name, r in self.http.items()}
        shown.update(
            syslog=len(self.syslog.arrivals),
            nsca=len(self.nsca.arrivals),
            pushgateway=int(sum(self.gateway.counters.values())),
        )
        for name in ("pagerduty", "opsgenie", "victorops"):
            shown[name] = len(self.http[name].transitions)  # type: ignore[attr-defined]
        owed = {
            name: transitions
            if category == "alerting"
            else counted
            if name == "pushgateway"
            else routed.get(category, 0)
            for name, category in CATEGORY.items()
        }
        return {name: (owed[name], shown[name]) for name in CATEGORY}

    def backlog(self) -> dict[str, int]:
        return {name: max(0, owed - shown) for name, (owed, shown) in self.progress().items()}

    def has(self, event_id: str, ts_us: int, key: str, printer: str) -> set[str]:
        """The receivers that show this event (an incident transition for the alerting ones)."""
        found = {name for name, r in self.http.items() if event_id in (r.arrivals or {})}
        found |= {"syslog"} if event_id in self.syslog.arrivals else set()
        found |= {"nsca"} if event_id in self.nsca.arrivals else set()
        found |= {"pushgateway"} if (printer, ts_us / 1e6) in self.gateway.changes else set()
        for name in ("pagerduty", "opsgenie", "victorops"):
            if any(k == key for k, *_ in self.http[name].transitions):  # type: ignore[attr-defined]
                found.add(name)
        return found


def wait_for(predicate: Callable[[], bool], timeout: float, what: Callable[[], str]) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out after {timeout:.0f} s waiting for {what()}"
        time.sleep(0.2)


@contextlib.contextmanager
def receivers() -> Iterator[tuple[dict[str, ContractReceiver], SoakGateway]]:
    with contextlib.ExitStack() as stack:
        http: dict[str, ContractReceiver] = {
            "splunk": SplunkReceiver(),
            "datadog": DatadogReceiver(),
            "elasticsearch": SoakElasticsearch(),
            "grafana": GrafanaReceiver(),
            "newrelic": NewRelicReceiver(),
            "pagerduty": SoakPagerDuty(),
            "opsgenie": SoakOpsgenie(),
            "victorops": SoakVictorOps(),
        }
        for receiver in http.values():
            receiver.arrivals = {}
            stack.enter_context(receiver)
        gateway = stack.enter_context(SoakGateway())
        yield http, gateway


# -- the run -----------------------------------------------------------------------------------------
def test_soak(rsyslog: Rsyslog, tmp_path: Path) -> None:  # noqa: F811 (the fixture imported above)
    started = time.time()
    report: dict[str, Any] = {
        "config": {
            "seconds": SECONDS,
            "rate": RATE,
            "burst_factor": BURST_FACTOR,
            "burst_seconds": BURST_SECONDS,
            "printers": PRINTERS,
            "warmup": WARMUP,
            "incident_hold_s": HOLD_S,
            "rss_every_s": RSS_EVERY_S,
            "nsca_confirm_s": NSCA_CONFIRM.get("confirm_s", "sink default"),
        }
    }
    with contextlib.ExitStack() as stack:
        # Full JIT: the suite's quick start trades exactly the long-run speed a soak measures.
        broker = stack.enter_context(
            KafkaBroker(log_path=tmp_path / "kafka.log", quick_start=False)
            if default_engine() == "kafka"
            else local_broker(log_path=tmp_path / "tansu.log")
        )
        settings = KafkaSettings(bootstrap_servers=broker.bootstrap_servers)
        http, gateway = stack.enter_context(receivers())
        nsca = Nsca(Path(tempfile.mkdtemp(prefix="soak-nsca-", dir=tmp_path)), free_port()).start()
        stack.callback(nsca.stop)
        nsca.command_file.touch()
        syslog_tail = FileTail(rsyslog.out, r'event_id="?([0-9a-f-]{36})').skip_existing()
        nsca_tail = FileTail(nsca.command_file, r"\[event ([0-9a-f-]{36})\]").skip_existing()
        stack.callback(lambda: rsyslog.out.unlink(missing_ok=True))  # a full run leaves ~1 GB there
        stack.enter_context(Tailer([syslog_tail, nsca_tail]))

        targets = {**http, "pushgateway": gateway, "syslog": rsyslog, "nsca": nsca}
        env = {}
        for vendor in VENDORS:
            operations.connect(settings, vendor.spec(targets[vendor.vendor]))
            env.update({vendor.env(k): v for k, v in vendor.secrets.items()})
        router = RouterProcess(broker.bootstrap_servers, name="soak-router").start()
        stack.callback(router.stop)
        connectors = Connectors(broker.bootstrap_servers, env, tmp_path / "connectors.log")
        stack.callback(connectors.stop)
        producer = stack.enter_context(EventProducer(settings, spool_path=tmp_path / "spool.db"))
        traffic = Traffic(producer, printers=PRINTERS)
        rig = Rig(traffic, http, gateway, syslog_tail, nsca_tail)

        def missing(event_id: str, key: str) -> Callable[[], str]:
            ts_us = traffic.sent[event_id][0]
            return lambda: (
                f"{event_id} at {sorted(set(CATEGORY) - rig.has(event_id, ts_us, key, key.split('/')[1]))}"
                f"\nrouter:\n{router.tail()}\nconnectors:\n{connectors.tail()}"
            )

        # Every receiver reached (router and eleven connectors up) before anything is measured.
        primer, key = traffic.prime()
        producer.flush(10)
        wait_for(
            lambda: len(rig.has(primer, traffic.sent[primer][0], key, key.split("/")[1])) == 11,
            180,
            missing(primer, key),
        )
        closer = traffic.unprime()
        producer.flush(10)
        wait_for(lambda: all(o <= s for o, s in rig.progress().values()), 60, missing(closer, key))

        stage = RouterStage(
            settings, [category_topic(c) for c in ("logging", "monitoring", "alerting")], also=[EVENTS_TOPIC]
        ).start()
        stack.callback(stage.stop)
        stalls = StallProbe(lambda: stage.phase).start()
        stack.callback(stalls.stop)
        lag = GroupLag(
            settings,
            {
                "continuum-router": EVENTS_TOPIC,
                **{connector_group(v.name): category_topic(CATEGORY[v.vendor]) for v in VENDORS},
            },
            stage.high,
            stage.partitions,
        )
        pids = {
            "router": router.process.pid,
            "connectors": connectors.process.pid,
            "broker": broker.pids[0],
            "receivers": os.getpid(),
        }
        rss = Sampler(lambda: {name: rss_bytes(pid) for name, pid in pids.items()}, RSS_EVERY_S, "soak-rss")
        lags = Sampler(lag, 2.0, "soak-lag")
        backlog = Sampler(rig.backlog, 1.0, "soak-backlog")
        origin = time.monotonic()
        for sampler in (rss, lags, backlog):
            sampler.start(origin)
            stack.callback(sampler.stop)

        print(
            f"\nsoak: {RATE:g} events/s for {SECONDS:g} s over {PRINTERS} printers, then "
            f"{RATE * BURST_FACTOR:g}/s for {BURST_SECONDS:g} s",
            flush=True,
        )
        stage.phase = "steady"
        traffic.play("steady", RATE, SECONDS, HOLD_S)
        steady_end = time.monotonic() - origin
        stage.phase = "burst"
        traffic.play("burst", RATE * BURST_FACTOR, BURST_SECONDS, BURST_HOLD_S)
        producer.flush(60)
        burst_end = time.monotonic() - origin
        stage.phase = "drain"

        # The burst drains: wait until every receiver shows everything, or nothing moves any more.
        last_shown, moved = -1, time.monotonic()
        while time.monotonic() - origin - burst_end < DRAIN_TIMEOUT_S:
            progress = rig.progress()
            if all(owed <= shown for owed, shown in progress.values()):
                break
            shown = sum(s for _, s in progress.values())
            if shown != last_shown:
                last_shown, moved = shown, time.monotonic()
            elif time.monotonic() - moved > STALL_S:
                break
            time.sleep(0.2)
        drained_at = time.monotonic() - origin
        drained = all(owed <= shown for owed, shown in rig.progress().values())
        time.sleep(3)  # late duplicates, and the last status reports
        for sampler in (rss, lags, backlog):
            sampler.stop()
        stage.stop()
        stalls.stop()

        board = StatusBoard(settings).start()
        board.wait_ready(15)
        status = {v.name: combine(board.reports(v.name, stale_s=60)) for v in VENDORS}
        board.stop()
        reader = history_consumer(settings, "soak-dlq")
        dead_letters = {
            name: sum(r.end - r.start for r in watermarks(reader, topic).values())
            for name, topic in [
                ("router", EVENTS_DLQ_TOPIC),
                *((v.name, integration_dlq_topic(v.name)) for v in VENDORS),
            ]
        }
        reader.close()
        gateway_counters, gateway_printers = gateway.gateway_counters(), gateway.gateway_printers()
        connectors.stop()
        router.stop()
        stats = producer.stats()

        figures = collect(rig, gateway_counters, gateway_printers, status)

    pooled = [s for f in figures for s in f.steady_latencies]
    warm_until = WARMUP * steady_end  # sample times count from the start of the steady phase
    memory = {
        p: measure.memory_growth(rss.samples, p, warm_until, steady_end)
        for p in ("router", "connectors", "broker", "receivers")
    }
    backlog_burst = [(t, b) for t, b in backlog.samples if t >= steady_end and isinstance(b, dict) and "error" not in b]
    peak_backlog = {name: max((b.get(name, 0) for _, b in backlog_burst), default=0) for name in CATEGORY}
    lag_steady = measure.peak_lag([(t, s) for t, s in lags.samples if warm_until <= t < steady_end], warm_until)
    lag_burst = measure.peak_lag(lags.samples, steady_end)
    report.update(
        {
            "produced": {
                phase: {"events": n, "seconds": round(s, 1), "per_second": round(n / s, 1) if s else None}
                for phase, (n, s) in traffic.achieved.items()
            }
            | {"total": len(traffic.sent)},
            "receivers": {f.receiver: f.as_json() for f in figures},
            "latency_all_receivers_steady": measure.latency_summary(pooled),
            "router_stage_latency": {
                phase: measure.latency_summary(values) for phase, values in stage.latencies.items()
            },
            "observer_stalls": {
                phase: {
                    "wake_late_s": measure.latency_summary(values),
                    "full_gc_s": measure.latency_summary(stalls.full_collections_s.get(phase, [])),
                    "full_gc_total_s": round(sum(stalls.full_collections_s.get(phase, [])), 3),
                }
                for phase, values in stalls.late_s.items()
            },
            "memory": memory,
            "rss_samples": [
                (round(t, 1), {k: v and round(v / 2**20, 1) for k, v in s.items()})
                for t, s in rss.samples
                if isinstance(s, dict) and "error" not in s
            ],
            "lag_peak_steady": lag_steady,
            "lag_sample_errors": sorted({str(v["error"]) for _, v in lags.samples if "error" in v}),
            "lag_series_from_burst": [
                (
                    round(t - steady_end, 1),
                    lags_at.get("continuum-router"),
                    max((v for k, v in lags_at.items() if k != "continuum-router"), default=None),
                )
                for t, lags_at in lags.samples
                if t >= steady_end and "error" not in lags_at
            ],
            "burst": {
                "lag_peak": lag_burst,
                "backlog_peak": peak_backlog,
                "drain_s": round(drained_at - burst_end, 1) if drained else None,
                "drained": drained,
                "router_lag_peak": lag_burst.get("continuum-router", 0),
                "connector_lag_peak": max((v for k, v in lag_burst.items() if k != "continuum-router"), default=0),
            },
            "producer": {
                "dispatched": stats.dispatched,
                "delivered": stats.delivered,
                "spooled_total": stats.spooled_total,
                "dropped": stats.dropped,
            },
            "dead_letters": dead_letters,
            "wall_s": round(time.time() - started, 1),
        }
    )
    failures = verdicts(figures, report)
    report["thresholds"] = {
        "p99_s": P99_LIMIT_S,
        "rss_growth_pct": GROWTH_LIMIT_PCT,
        "lost": 0,
        "duplicate_incidents": 0,
        "failures": failures,
    }
    REPORT.parent.mkdir(parents=True, exist_ok=True)
    REPORT.write_text(json.dumps(report, indent=2, default=str))
    print(summary(figures, report), flush=True)
    assert not failures, "soak thresholds missed:\n  " + "\n  ".join(failures) + f"\n(figures in {REPORT})"


def collect(
    rig: Rig,
    gateway_counters: dict[tuple[str, str], float],
    gateway_printers: dict[str, tuple[float | None, float | None]],
    status: dict[str, dict[str, Any]],
) -> list[measure.Figures]:
    """Every receiver's figures, in the order of the table."""
    sent, http, traffic = rig.traffic.sent, rig.http, rig.traffic
    elastic: Any = http["elasticsearch"]  # one document per _id: a resent event is a 409, not a copy
    figures = [
        *(
            measure.event_figures(name, "logging", sent, http[name].arrivals or {}, http[name].received.event_ids)
            for name in ("splunk", "datadog")
        ),
        measure.event_figures(
            "elasticsearch",
            "logging",
            sent,
            http["elasticsearch"].arrivals or {},
            {},
            {"documents": len(elastic.documents), "second_creates_absorbed": elastic.conflicts},
        ),
        measure.event_figures("syslog", "logging", sent, rig.syslog.arrivals, rig.syslog.counts),
        measure.gateway_figures(
            sent,
            traffic.up_changes,
            rig.gateway.changes,
            traffic.monitoring_counts,
            gateway_counters,
            gateway_printers,
            rig.gateway.pushes,
        ),
        measure.event_figures(
            "grafana",
            "monitoring",
            sent,
            http["grafana"].arrivals or {},
            measure.grafana_counts(http["grafana"].received.bodies),
            {"regions": len(http["grafana"].regions())},
        ),  # type: ignore[attr-defined]
        measure.event_figures(
            "newrelic", "monitoring", sent, http["newrelic"].arrivals or {}, http["newrelic"].received.event_ids
        ),
        measure.event_figures("nsca", "monitoring", sent, rig.nsca.arrivals, rig.nsca.counts),
        *incident_figures(traffic, http),
    ]
    for f in figures:
        f.notes.update({k: status[f"soak-{f.receiver}"].get(k) for k in ("delivered", "retried", "dead_lettered")})
        if f.receiver == "pagerduty":  # the sink's own throttle keeps it under the limit: 0 expected
            f.notes["answered_429"] = http["pagerduty"].throttled  # type: ignore[attr-defined]
    return figures


def incident_figures(traffic: Traffic, http: dict[str, Any]) -> list[measure.Figures]:
    keys = {c.key for c in traffic.cycles}
    out = []
    pd, og, vo = http["pagerduty"], http["opsgenie"], http["victorops"]
    for name, receiver, opened, retriggers, still_open in (
        (
            "pagerduty",
            pd,
            pd.opened_count,
            sum(max(0, i["alerts"] - 1) for k in keys for i in pd.incidents(k)),
            len(pd.open_keys()),
        ),
        (
            "opsgenie",
            og,
            og.opened_count,
            sum(max(0, a["count"] - 1) for k in keys for a in og.alerts(k)),
            len(og.open_aliases()),
        ),
        (
            "victorops",
            vo,
            vo.opened_count,
            sum(max(0, i["alerts"] - 1) for k in keys for i in vo.incidents(k)),
            len(vo.open_entities()),
        ),
    ):
        per_key = {k: opened(k) for k in keys}
        per_key["(other keys)"] = opened() - sum(per_key.values())
        out.append(
            measure.incident_figures(name, traffic.cycles, receiver.transitions, per_key, retriggers, still_open)
        )
    return out


def verdicts(figures: list[measure.Figures], report: dict[str, Any]) -> list[str]:
    failures = []
    for f in figures:
        p99 = f.latency.get("p99")
        if p99 is not None and p99 > P99_LIMIT_S:
            failures.append(
                f"{f.receiver}: p99 end-to-end {p99:.2f} s > {P99_LIMIT_S:g} s "
                f"(p50 {f.latency['p50']:.2f}, p95 {f.latency['p95']:.2f}, n {f.latency['n']})"
            )
        if f.lost:
            failures.append(f"{f.receiver}: {f.lost:,} of {f.expected:,} {f.unit} lost")
        if f.duplicate_incidents:
            failures.append(f"{f.receiver}: {f.duplicate_incidents} duplicate incidents ({f.notes})")
        if f.notes.get("still_open_at_end"):
            failures.append(f"{f.receiver}: {f.notes['still_open_at_end']} incidents still open after every resolve")
        if f.notes.get("changes_not_shown") or f.notes.get("printers_final_state_wrong"):
            failures.append(
                f"{f.receiver}: {f.notes['changes_not_shown']} printer up/down changes never pushed, "
                f"{f.notes['printers_final_state_wrong']} printers left in a wrong state"
            )
    for process in ("router", "connectors"):
        m = report["memory"][process]
        if m.get("samples", 0) < 2:
            failures.append(f"{process}: only {m.get('samples', 0)} RSS samples after the warm-up")
        elif m["growth_pct"] >= GROWTH_LIMIT_PCT:
            failures.append(
                f"{process}: RSS grew {m['growth_pct']:.1f} % after the warm-up "
                f"({m['baseline_mb']} → {m['end_mb']} MB, peak {m['peak_mb']} MB)"
            )
    burst = report["burst"]
    if not burst["drained"]:
        failures.append(f"the burst did not drain: backlog peak {burst['backlog_peak']}, lag peak {burst['lag_peak']}")
    if report["producer"]["dropped"]:
        failures.append(f"the producer dropped {report['producer']['dropped']} events")
    if any(report["dead_letters"].values()):
        failures.append(f"dead letters: {report['dead_letters']}")
    return failures


def summary(figures: list[measure.Figures], report: dict[str, Any]) -> str:
    produced, burst, pooled = report["produced"], report["burst"], report["latency_all_receivers_steady"]
    lines = [
        "",
        "soak: "
        + ", ".join(
            f"{phase} {p['events']:,} events in {p['seconds']} s ({p['per_second']}/s)"
            for phase, p in produced.items()
            if isinstance(p, dict)
        ),
        measure.table(figures),
        "",
        "router stage (event time → category topic): "
        + "; ".join(
            f"{phase} p50 {measure.ms(r['p50'])} / p99 {measure.ms(r['p99'])} ms"
            for phase, r in report["router_stage_latency"].items()
            if r["n"]
        ),
        "the soak's own process (receivers, load, observers) woke late by: "
        + "; ".join(
            f"{phase} p99 {measure.ms(r['wake_late_s']['p99'])} / max {measure.ms(r['wake_late_s']['max'])} ms, "
            f"{r['full_gc_s']['n']} full collections ({measure.ms(r['full_gc_total_s'])} ms, "
            f"longest {measure.ms(r['full_gc_s']['max'])} ms)"
            for phase, r in report["observer_stalls"].items()
            if r["wake_late_s"]["n"]
        ),
        f"all receivers, steady: p50 {measure.ms(pooled['p50'])} ms, p95 {measure.ms(pooled['p95'])} ms, "
        f"p99 {measure.ms(pooled['p99'])} ms over {pooled['n']:,} deliveries",
        "memory after warm-up: "
        + "; ".join(
            f"{p} {m.get('baseline_mb')} → {m.get('end_mb')} MB ({m.get('growth_pct')} %, peak {m.get('peak_mb')})"
            for p, m in report["memory"].items()
        ),
        f"burst: router lag peak {burst['router_lag_peak']:,}, "
        f"connector lag peak {burst['connector_lag_peak']:,}, "
        f"drain {burst['drain_s']} s; backlog peak by receiver {burst['backlog_peak']}",
        f"producer: {report['producer']}; dead letters: {sum(report['dead_letters'].values())}",
        "incidents: " + "; ".join(f"{f.receiver} {f.notes}" for f in figures if f.unit == "transitions"),
        f"report: {REPORT}",
    ]
    return "\n".join(lines)
