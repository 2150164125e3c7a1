"""The benchmark commands run end to end at a small size: each measures its subject and its
baseline on each local engine it starts, then sets the engines side by side. Only their
shape is checked here — figures come from `make bench`, never from timed tests."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from continuum_events.broker import LocalBroker

pytestmark = pytest.mark.xdist_group("bench")  # starts brokers of its own: keep to one worker


def _bench(*args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "continuum_events", "bench", *args],
        capture_output=True,
        text=True,
        timeout=300,
        env={**{k: v for k, v in os.environ.items() if not k.startswith("CONTINUUM_KAFKA_")}, "COLUMNS": "200"},
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done.stdout


def _rate(row: str) -> list[float]:
    return [float(x.replace(",", "")) for x in re.findall(r"\d[\d,]*(?:\.\d+)?", row)]


@pytest.mark.parametrize(
    ("command", "subject"),
    [
        (["producer", "--events", "3000", "--rounds", "1"], "dispatch_event"),
        (["connector", "--events", "3000", "--per-event", "200"], "Splunk HEC connector"),
    ],
    ids=["producer", "connector"],
)
def test_a_benchmark_on_both_engines_ends_with_them_side_by_side(command: list[str], subject: str) -> None:
    out = _bench(*command, "--engine", "both")
    assert "the engines side by side" in out, out
    side = out[out.index("the engines side by side") :]
    rows = {line.split("│")[1].strip(): line for line in side.splitlines() if line.count("│") > 4}
    assert {"kafka", "tansu"} <= rows.keys(), side
    for engine in ("kafka", "tansu"):
        rate, baseline, ratio = _rate(rows[engine].split("│", 2)[2])[:3]
        assert rate > 0 and baseline > 0
        assert ratio == pytest.approx(rate / baseline, rel=0.01, abs=0.01)  # the table shows rounded rates
    assert re.search(rf"kafka / tansu: {re.escape(subject)} \d+\.\d\d", out), out


@pytest.mark.broker
def test_a_benchmark_on_a_given_cluster_measures_there_alone(broker: LocalBroker) -> None:
    out = _bench("producer", "--events", "2000", "--rounds", "1", "-b", broker.bootstrap_servers)
    assert "ratio dispatch_event / raw" in out, out
    assert "side by side" not in out
