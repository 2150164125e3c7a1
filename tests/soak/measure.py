"""The soak run's figures: per receiver what was expected, delivered, lost and duplicated,
end-to-end latency, duplicate incidents; memory growth and lag; the table and the JSON.

Units differ by receiver, as each vendor shows deliveries differently:

* events — Splunk, Datadog, Elasticsearch, Syslog, Grafana, New Relic, NSCA show each
  event by its id; latency is event time → first arrival;
* transitions — PagerDuty, Opsgenie, VictorOps get a trigger and a resolve per incident
  (an event that changes nothing is not sent); latency per transition;
* Pushgateway — counters per (type, severity) say how many events were delivered (a
  counter above the events produced is a duplicate); latency for the up/down changes,
  which each printer's push carries with their event time.
"""

from __future__ import annotations

import statistics
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from continuum_events.devtools.receivers import UUID
from tests.soak.traffic import KINDS, Cycle

STEADY = "steady"


def percentile(ordered: Sequence[float], q: float) -> float | None:
    """Nearest-rank percentile of sorted values (None when there are none)."""
    if not ordered:
        return None
    rank = max(1, -(-len(ordered) * q // 100))  # ceil(n·q/100)
    return ordered[int(min(rank, len(ordered))) - 1]


def latency_summary(values: Iterable[float]) -> dict[str, float | int | None]:
    ordered = sorted(values)
    return {
        "n": len(ordered),
        **{f"p{q}": percentile(ordered, q) for q in (50, 95, 99)},
        "max": ordered[-1] if ordered else None,
    }


@dataclass
class Figures:
    receiver: str
    unit: str
    expected: int
    delivered: int
    lost: int
    duplicated: int
    latency: dict[str, Any] = field(default_factory=dict)  # steady phase
    latency_burst: dict[str, Any] = field(default_factory=dict)
    duplicate_incidents: int | None = None
    notes: dict[str, Any] = field(default_factory=dict)
    steady_latencies: list[float] = field(default_factory=list, repr=False)

    def as_json(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("steady_latencies")
        return data


def _latencies(pairs: Iterable[tuple[str, float]]) -> tuple[list[float], list[float]]:
    steady, burst = [], []
    for phase, seconds in pairs:
        (steady if phase == STEADY else burst if phase == "burst" else []).append(seconds)
    return steady, burst


def event_figures(
    name: str,
    category: str,
    sent: Mapping[str, tuple[int, int, str]],
    arrivals: Mapping[str, float],
    counts: Mapping[str, int],
    notes: Mapping[str, Any] | None = None,
) -> Figures:
    """For receivers that show each event by id; ``counts`` is how often each id arrived."""
    expected = delivered = 0
    pairs = []
    for event_id, (ts_us, kind, phase) in sent.items():
        if category not in KINDS[kind].categories:
            continue
        expected += 1
        arrived = arrivals.get(event_id)
        if arrived is not None:
            delivered += 1
            pairs.append((phase, arrived - ts_us / 1e6))
    steady, burst = _latencies(pairs)
    duplicated = sum(n - 1 for n in counts.values() if n > 1)
    return Figures(
        name,
        "events",
        expected,
        delivered,
        expected - delivered,
        duplicated,
        latency_summary(steady),
        latency_summary(burst),
        notes=dict(notes or {}),
        steady_latencies=steady,
    )


def grafana_counts(bodies: Iterable[Mapping[str, Any]]) -> Counter[str]:
    """How often each event was annotated: an annotation names its event; a region's patch
    repeats its opener's id before naming the event that closed it (counted once, for the
    closer)."""
    counts: Counter[str] = Counter()
    for body in bodies:
        ids = UUID.findall(str(body.get("text", "")))
        if "time" in body:
            counts.update(ids)
        elif ids:  # a PATCH
            counts[ids[-1]] += 1
    return counts


def incident_figures(
    name: str,
    cycles: Sequence[Cycle],
    transitions: Sequence[tuple[str, str, float]],
    opened: Mapping[str, int],
    retriggers: int,
    still_open: int,
) -> Figures:
    """Expected: a trigger and a resolve per cycle; the k-th trigger (resolve) of a key that
    arrived is the k-th cycle's."""
    by_key: dict[str, list[Cycle]] = defaultdict(list)
    for cycle in cycles:
        by_key[cycle.key].append(cycle)
    arrived: dict[tuple[str, str], list[float]] = defaultdict(list)
    for key, action, t in transitions:
        arrived[(key, action)].append(t)
    expected = delivered = 0
    pairs = []
    for key, keyed in by_key.items():
        keyed.sort(key=lambda c: c.trigger_us)
        for action in ("trigger", "resolve"):
            times = sorted(arrived.get((key, action), []))
            for cycle, t in zip(keyed, times, strict=False):
                stamp = cycle.trigger_us if action == "trigger" else cycle.resolve_us
                pairs.append((cycle.phase, t - (stamp or 0) / 1e6))
            expected += len(keyed)
            delivered += min(len(keyed), len(times))
    extra = sum(len(times) for times in arrived.values()) - delivered
    extra_opens = sum(max(0, opened.get(key, 0) - len(keyed)) for key, keyed in by_key.items())
    extra_opens += sum(n for key, n in opened.items() if key not in by_key)
    steady, burst = _latencies(pairs)
    return Figures(
        name,
        "transitions",
        expected,
        delivered,
        expected - delivered,
        extra,
        latency_summary(steady),
        latency_summary(burst),
        duplicate_incidents=extra_opens + retriggers,
        notes={
            "incidents_expected": len(cycles),
            "incidents_opened": sum(opened.values()),
            "extra_opens": extra_opens,
            "retriggers_while_open": retriggers,
            "still_open_at_end": still_open,
        },
        steady_latencies=steady,
    )


def gateway_figures(
    sent: Mapping[str, tuple[int, int, str]],
    up_changes: Mapping[tuple[str, float], str],
    pushed: Mapping[tuple[str, float], float],
    expected_counts: Mapping[tuple[str, str], int],
    counters: Mapping[tuple[str, str], float],
    final: Mapping[str, tuple[float | None, float | None]],
    pushes: int,
) -> Figures:
    """``counters`` and ``final`` (printer -> (up, last change s)) as the real gateway holds
    them at the end; ``pushed``: when each (printer, change time) was first pushed. A change
    folded into the same batch as a later one of its printer is never pushed by itself (the
    gateway holds state, not events): it counts as superseded when a later change was."""
    expected = sum(expected_counts.values())
    keys = set(expected_counts) | set(counters)
    lost = sum(max(0, expected_counts.get(k, 0) - int(counters.get(k, 0))) for k in keys)
    duplicated = sum(max(0, int(counters.get(k, 0)) - expected_counts.get(k, 0)) for k in keys)
    by_printer: dict[str, list[tuple[float, str]]] = defaultdict(list)
    for (printer, at), event_id in up_changes.items():
        by_printer[printer].append((at, event_id))
    pairs, superseded, missing, wrong_final = [], 0, 0, 0
    for printer, changes in by_printer.items():
        changes.sort()
        shown = [(printer, at) in pushed for at, _ in changes]
        for i, (at, event_id) in enumerate(changes):
            if shown[i]:
                pairs.append((sent[event_id][2], pushed[(printer, at)] - at))
            elif any(shown[i + 1 :]):
                superseded += 1
            else:
                missing += 1
        at, event_id = changes[-1]
        up = 0.0 if KINDS[sent[event_id][1]].event_type == "printer.offline" else 1.0
        if final.get(printer) != (up, at):
            wrong_final += 1
    steady, burst = _latencies(pairs)
    return Figures(
        "pushgateway",
        "events (counters)",
        expected,
        expected - lost,
        lost,
        duplicated,
        latency_summary(steady),
        latency_summary(burst),
        notes={
            "up_down_changes": len(up_changes),
            "changes_superseded_in_a_batch": superseded,
            "changes_not_shown": missing,
            "printers_final_state_wrong": wrong_final,
            "pushes": pushes,
        },
        steady_latencies=steady,
    )


# -- memory and lag ---------------------------------------------------------------------------
def memory_growth(
    samples: Sequence[tuple[float, Mapping[str, int | None]]], process: str, warm_until: float, steady_end: float
) -> dict[str, Any]:
    """RSS growth of ``process`` over the steady phase after the warm-up: the median of the
    last tenth of it against the median of the first tenth (at least one sample each)."""
    window = [(t, s[process]) for t, s in samples if warm_until <= t <= steady_end and s.get(process)]
    if not window:
        return {"samples": 0}
    span = max(steady_end - warm_until, 1e-9)
    head = [v for t, v in window if t <= warm_until + span / 10] or [window[0][1]]
    tail = [v for t, v in window if t >= steady_end - span / 10] or [window[-1][1]]
    baseline, end = statistics.median(head), statistics.median(tail)
    peak = max(v for _, v in window)
    return {
        "samples": len(window),
        "baseline_mb": round(baseline / 2**20, 1),
        "end_mb": round(end / 2**20, 1),
        "peak_mb": round(peak / 2**20, 1),
        "growth_pct": round(100 * (end / baseline - 1), 2),
        "peak_over_baseline_pct": round(100 * (peak / baseline - 1), 2),
    }


def peak_lag(samples: Sequence[tuple[float, Mapping[str, int]]], since: float) -> dict[str, int]:
    peaks: dict[str, int] = {}
    for t, lags in samples:
        if t < since or "error" in lags:
            continue
        for group, lag in lags.items():
            peaks[group] = max(peaks.get(group, 0), lag)
    return peaks


# -- the table ------------------------------------------------------------------------------------
def ms(value: float | None) -> str:
    return "-" if value is None else f"{value * 1000:,.0f}"


def table(figures: Sequence[Figures]) -> str:
    head = (
        f"{'receiver':<14}{'unit':<19}{'expected':>10}{'delivered':>11}{'lost':>7}{'dups':>7}"
        f"{'p50 ms':>9}{'p95 ms':>9}{'p99 ms':>9}{'max ms':>9}{'burst p99':>11}{'dup inc.':>9}"
    )
    lines = [head, "-" * len(head)]
    for f in figures:
        lines.append(
            f"{f.receiver:<14}{f.unit:<19}{f.expected:>10,}{f.delivered:>11,}{f.lost:>7,}{f.duplicated:>7,}"
            f"{ms(f.latency.get('p50')):>9}{ms(f.latency.get('p95')):>9}{ms(f.latency.get('p99')):>9}"
            f"{ms(f.latency.get('max')):>9}{ms(f.latency_burst.get('p99')):>11}"
            f"{'-' if f.duplicate_incidents is None else f.duplicate_incidents:>9}"
        )
    return "\n".join(lines)
