"""The pipeline watching itself: the router's and the probe's metrics as served, and the
Grafana dashboard and Prometheus alert rules in deploy/ tied to the names the code really
exposes — a renamed metric breaks a test here, not a dashboard in production. The rules
are checked by `promtool check rules` (Debian's prometheus package; `make system-deps`)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections import Counter
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from continuum_events.connectors.runtime import Metrics
from continuum_events.metrics import ProbeMetrics, RouterMetrics, rules_version
from continuum_events.producers.health import PrinterHealth
from continuum_events.producers.probe import SweepStats
from continuum_events.rules import DEFAULTS

DEPLOY = Path(__file__).parents[2] / "deploy"
DASHBOARD = DEPLOY / "grafana" / "continuum-events-dashboard.json"
ALERTS = DEPLOY / "prometheus" / "continuum-events-alerts.yml"
#: PromQL's own words, which look like names in an expression.
PROMQL = {
    "sum",
    "max",
    "min",
    "count",
    "by",
    "rate",
    "increase",
    "deriv",
    "histogram_quantile",
    "and",
    "or",
    "time",
    "le",
    "without",
    "on",
    "avg",
}


def samples(registry) -> dict[str, float]:
    text = generate_latest(registry).decode()
    return {
        s.name + (json.dumps(s.labels, sort_keys=True) if s.labels else ""): s.value
        for f in text_string_to_metric_families(text)
        for s in f.samples
    }


def router_metrics() -> RouterMetrics:
    counts = Counter(
        {
            "in": 40,
            "logging": 40,
            "monitoring": 12,
            "alerting": 3,
            "to-hygiene": 2,
            "dead-lettered": 1,
            "send-failed": 4,
        }
    )
    store = SimpleNamespace(ruleset=lambda: DEFAULTS)
    state = SimpleNamespace(live=lambda: {"group/HQ": {}, "held/p-1": {}})
    metrics = RouterMetrics(counts, store=store, state=state)
    metrics.lag = 7
    return metrics


def probe_metrics() -> ProbeMetrics:
    metrics = ProbeMetrics(interval_s=60)
    health = {"a": PrinterHealth(status="online"), "b": PrinterHealth(status="offline"), "c": PrinterHealth()}
    metrics.observe(SweepStats(printers=3, seconds=41.5, answered=2, events=Counter({"printer.offline": 1})), health)
    return metrics


def exposed_names() -> set[str]:
    names = set()
    for registry in (Metrics().registry, router_metrics().registry, probe_metrics().registry):
        text = generate_latest(registry).decode()
        names |= {s.name for f in text_string_to_metric_families(text) for s in f.samples}
        names |= {f.name for f in text_string_to_metric_families(text)}  # a family without samples yet
    connectors = Metrics()
    connectors.delivered.labels("x").inc()
    connectors.latency.labels("x").observe(0.1)
    for counter in (connectors.retried, connectors.dead_lettered, connectors.throttled):
        counter.labels("x").inc()
    connectors.lag.labels("x").set(1)
    connectors.healthy.labels("x").set(1)
    text = generate_latest(connectors.registry).decode()
    return names | {s.name for f in text_string_to_metric_families(text) for s in f.samples}


def metric_names(expr: str) -> set[str]:
    """The metric names in a PromQL expression (not its functions, label sets, groupings
    by label, ranges or numbers)."""
    without_strings = re.sub(r'"[^"]*"|\{[^}]*\}|\[[^\]]*\]|\b(by|without)\s*\([^)]*\)', "", expr)
    return {
        n for n in re.findall(r"[a-zA-Z_:][a-zA-Z0-9_:]*", without_strings) if n not in PROMQL and not n.isdigit()
    } - {"e"}


def test_the_router_serves_what_it_routed_read_at_each_scrape() -> None:
    metrics = router_metrics()
    got = samples(metrics.registry)
    assert got["continuum_router_events_total"] == 40
    assert got['continuum_router_routed_total{"category": "monitoring"}'] == 12
    assert got["continuum_router_hygiene_pages_total"] == 2 and got["continuum_router_dead_letters_total"] == 1
    assert got["continuum_router_send_failures_total"] == 4
    assert got["continuum_router_lag"] == 7 and got["continuum_router_hygiene_held"] == 2
    assert got[f'continuum_router_rules{{"version": "{rules_version(DEFAULTS)}"}}'] == 1
    metrics.counts["in"] += 5
    metrics.lag = None  # unknown (the broker did not answer): absent, never a stale number
    again = samples(metrics.registry)
    assert again["continuum_router_events_total"] == 45 and "continuum_router_lag" not in again


def test_the_probe_serves_its_last_sweep() -> None:
    got = samples(probe_metrics().registry)
    assert got["continuum_probe_sweep_seconds"] == 41.5 and got["continuum_probe_sweep_interval_seconds"] == 60
    assert got['continuum_probe_printers{"status": "offline"}'] == 1
    assert got['continuum_probe_printers{"status": "unknown"}'] == 1
    assert got["continuum_probe_snmp_unanswered_total"] == 1 and got["continuum_probe_sweeps_total"] == 1
    assert got['continuum_probe_events_total{"event_type": "printer.offline"}'] == 1


def test_the_dashboard_loads_and_asks_only_for_metrics_the_code_exposes() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["uid"] and dashboard["title"] and dashboard["schemaVersion"] >= 36
    assert [v["name"] for v in dashboard["templating"]["list"]] == ["datasource"]
    panels = [p for p in dashboard["panels"] if p["type"] != "row"]
    assert len(panels) >= 12 and len({p["id"] for p in dashboard["panels"]}) == len(dashboard["panels"])
    exposed, asked = exposed_names(), set()
    for panel in panels:
        assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            asked |= metric_names(target["expr"])
    assert asked and asked <= exposed, f"not exposed by the code: {sorted(asked - exposed)}"
    for prefix in ("continuum_connector_", "continuum_router_", "continuum_probe_"):
        assert any(n.startswith(prefix) for n in asked), f"no panel for {prefix}*"


def test_the_alert_rules_name_real_metrics_and_say_what_to_do() -> None:
    rules = [r for g in yaml.safe_load(ALERTS.read_text())["groups"] for r in g["rules"]]
    names = {r["alert"] for r in rules}
    assert {
        "ContinuumIntegrationUnhealthy",
        "ContinuumIntegrationLagGrowing",
        "ContinuumIntegrationDeadLetters",
        "ContinuumRouterLagGrowing",
        "ContinuumProbeSweepOverInterval",
        "ContinuumProbeSilent",
    } <= names
    exposed = exposed_names()
    for rule in rules:
        assert rule["labels"]["severity"] in {"critical", "warning"}, rule["alert"]
        assert rule["annotations"]["summary"] and rule["annotations"]["description"], rule["alert"]
        assert metric_names(rule["expr"]) <= exposed, (rule["alert"], metric_names(rule["expr"]) - exposed)


@pytest.mark.skipif(not shutil.which("promtool"), reason="promtool (Debian's prometheus) is not installed")
def test_promtool_accepts_the_rules_and_would_refuse_a_broken_one(tmp_path) -> None:
    checked = subprocess.run(["promtool", "check", "rules", str(ALERTS)], capture_output=True, text=True)
    assert checked.returncode == 0 and "SUCCESS" in checked.stdout, checked.stdout + checked.stderr
    broken = tmp_path / "broken.yml"
    broken.write_text(ALERTS.read_text().replace("== 0", "== = 0", 1))
    refused = subprocess.run(["promtool", "check", "rules", str(broken)], capture_output=True, text=True)
    assert refused.returncode != 0, "promtool accepted a broken expression: the check proves nothing"
