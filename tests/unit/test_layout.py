"""Where code lives: the services a deployment runs never import the development aids
(continuum_events/devtools: the demo's receivers, the simulated fleet) nor the command
line's modules they do not need, and the benchmarks never import the command line."""

from __future__ import annotations

import subprocess
import sys

import pytest

SERVICES = [
    "continuum_events.processors.worker",
    "continuum_events.connectors.host",
    "continuum_events.producers.probe",
    "continuum_events.producers.app",
    "continuum_events.admin",
    "continuum_events.dropin",
    "continuum_events.metrics",
    "continuum_events.egress",
]
BENCHMARKS = [
    "continuum_events.benchmarks.broker",
    "continuum_events.benchmarks.connector",
    "continuum_events.benchmarks.probe",
    "continuum_events.benchmarks.producer",
    "continuum_events.benchmarks.router",
]


def imported_after(module: str) -> set[str]:
    code = f"import sys, {module}; print('\\n'.join(sys.modules))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    return set(done.stdout.split())


@pytest.mark.parametrize("module", SERVICES)
def test_a_service_never_imports_the_development_aids(module: str) -> None:
    loaded = imported_after(module)
    assert not {m for m in loaded if m.startswith("continuum_events.devtools")}, module
    assert "snmpsim" not in loaded


@pytest.mark.parametrize("module", BENCHMARKS)
def test_a_benchmark_never_imports_the_command_line(module: str) -> None:
    assert not {m for m in imported_after(module) if m.startswith("continuum_events.cli")}, module
