"""End to end: `continuum-events run` on the embedded broker, with the demo source, the
probe over a simulated fleet and integrations from a file pointing at strict receivers;
an event dispatched by the app producer arrives at every receiver its rules name."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from continuum_events.broker import free_port
from continuum_events.devtools.receivers import GrafanaReceiver, PagerDutyReceiver, SplunkReceiver
from continuum_events.events import Event, EventType, Severity, new_event_id, now_micros
from continuum_events.producers.app import EventProducer
from continuum_events.rules import DEFAULTS, explain
from continuum_events.settings import KafkaSettings

pytestmark = pytest.mark.broker


def test_an_event_dispatched_by_the_app_reaches_every_receiver_its_rules_name(tmp_path: Path) -> None:
    with SplunkReceiver() as splunk, GrafanaReceiver() as grafana, PagerDutyReceiver() as pagerduty:
        receivers = {"logging": splunk, "monitoring": grafana, "alerting": pagerduty}
        LOCAL = {"allow_private_network": True, "allow_insecure_http": True}
        (tmp_path / "integrations.yaml").write_text(
            json.dumps(
                {
                    "integrations": [
                        {
                            "name": "e2e-splunk",
                            "vendor": "splunk",
                            "options": {"url": splunk.url},
                            **LOCAL,
                            "secrets": {"token": {"env": "E2E_SPLUNK"}},
                        },
                        {
                            "name": "e2e-grafana",
                            "vendor": "grafana",
                            "options": {"url": grafana.url},
                            **LOCAL,
                            "secrets": {"token": {"file": str(_secret(tmp_path, "grafana", GrafanaReceiver.TOKEN))}},
                        },
                        {
                            "name": "e2e-pagerduty",
                            "vendor": "pagerduty",
                            "options": {"url": pagerduty.url},
                            **LOCAL,
                            "secrets": {"routing_key": {"env": "E2E_PD"}},
                        },
                    ]
                }
            )
        )
        port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("CONTINUUM_KAFKA_")}
        env.update(E2E_SPLUNK=SplunkReceiver.TOKEN, E2E_PD=PagerDutyReceiver.ROUTING_KEY)
        log = (tmp_path / "run.log").open("wb")
        run = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "continuum_events",
                "run",
                "--no-view",
                "--broker-port",
                str(port),
                "--rate",
                "10",
                "--probe-printers",
                "6",
                "--state",
                str(tmp_path / "state"),
            ],
            cwd=tmp_path,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            _wait(lambda: b"pipeline on" in (tmp_path / "run.log").read_bytes(), 60, run, tmp_path)
            payload = {
                "printer_id": "e2e-1",
                "printer_name": "Finance 3F",
                "consecutive_failures": 3,
                "printer_location": "HQ-3F",
            }
            expected = {
                v.category
                for v in explain(
                    Event(new_event_id(), EventType.PRINTER_OFFLINE, Severity.CRITICAL, now_micros(), payload), DEFAULTS
                )
                if v.matched and v.integration is None
            }
            assert expected == {"logging", "monitoring", "alerting"}
            with EventProducer(
                KafkaSettings(bootstrap_servers=f"127.0.0.1:{port}"), spool_path=tmp_path / "app-spool.db"
            ) as app:
                event_id = app.dispatch(EventType.PRINTER_OFFLINE, payload, "critical")
                assert app.flush(10) == 0
            for category in expected:
                _wait(lambda r=receivers[category]: event_id in r.received.event_ids, 90, run, tmp_path)
            demo_seen = len(splunk.received.event_ids)
            assert demo_seen > 10, "the demo source flows to the logging receiver too"

            # A part that dies is restarted and reported; what it owed is delivered after all.
            for part in ("router", "connectors"):
                os.kill(_pid_of(part, port), signal.SIGKILL)
            with EventProducer(
                KafkaSettings(bootstrap_servers=f"127.0.0.1:{port}"), spool_path=tmp_path / "app-spool-2.db"
            ) as app:
                second = app.dispatch(EventType.PRINTER_OFFLINE, {**payload, "printer_id": "e2e-2"}, "critical")
                assert app.flush(10) == 0
            for category in expected:
                _wait(lambda r=receivers[category]: second in r.received.event_ids, 120, run, tmp_path)
        finally:
            run.send_signal(signal.SIGTERM)
            code = run.wait(90)
            log.close()
        output = (tmp_path / "run.log").read_text()
        assert code == 0, output[-3000:]
        assert "Traceback" not in output
        assert SplunkReceiver.TOKEN not in output and PagerDutyReceiver.ROUTING_KEY not in output
        for name in ("router", "connectors", "probe"):
            assert (tmp_path / "state" / f"{name}.log").exists()
        assert "router exited with -9; restarting" in output and "connectors exited with -9; restarting" in output
        assert "sweep: 6 printers" in (tmp_path / "state" / "probe.log").read_text(), "the probe polled the fleet"


def _pid_of(part: str, port: int) -> int:
    """The supervised process running ``continuum-events <part>`` against this run's broker."""
    found = subprocess.run(
        ["pgrep", "-f", f"continuum_events {part} .*-b 127.0.0.1:{port}"], capture_output=True, text=True
    ).stdout.split()
    assert len(found) == 1, found
    return int(found[0])


def _secret(tmp_path: Path, name: str, value: str) -> Path:
    path = tmp_path / f"{name}.secret"
    path.write_text(value + "\n")
    path.chmod(0o600)
    return path


def _wait(predicate, timeout: float, run: subprocess.Popen, tmp_path: Path, log: str = "run.log") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if run.poll() is not None:
            pytest.fail(f"run exited with {run.returncode}: {(tmp_path / log).read_text()[-3000:]}")
        assert time.monotonic() < deadline, (tmp_path / log).read_text()[-3000:]
        time.sleep(0.2)


def test_a_second_run_keeps_the_first_runs_history(tmp_path: Path) -> None:
    """`make run` twice on one state directory (Apache Kafka keeps its data in state/kafka): the
    second run resumes from the first one's commits (nothing delivered twice, no incident opened
    twice) and `replay` re-delivers a window of the first run's events from the second."""
    from continuum_events.broker import default_engine

    if default_engine() != "kafka":
        pytest.skip("Tansu keeps nothing across a restart (memory only)")
    with SplunkReceiver() as splunk, PagerDutyReceiver() as pagerduty:
        LOCAL = {"allow_private_network": True, "allow_insecure_http": True}
        (tmp_path / "integrations.yaml").write_text(
            json.dumps(
                {
                    "integrations": [
                        {
                            "name": "h-splunk",
                            "vendor": "splunk",
                            "options": {"url": splunk.url},
                            **LOCAL,
                            "secrets": {"token": {"env": "H_SPLUNK"}},
                        },
                        {
                            "name": "h-pagerduty",
                            "vendor": "pagerduty",
                            "options": {"url": pagerduty.url},
                            **LOCAL,
                            "secrets": {"routing_key": {"env": "H_PD"}},
                        },
                    ]
                }
            )
        )
        env = {k: v for k, v in os.environ.items() if not k.startswith("CONTINUUM_KAFKA_")}
        env.update(H_SPLUNK=SplunkReceiver.TOKEN, H_PD=PagerDutyReceiver.ROUTING_KEY)
        port = free_port()
        command = [
            sys.executable,
            "-m",
            "continuum_events",
            "run",
            "--no-view",
            "--broker-port",
            str(port),
            "--rate",
            "20",
            "--probe-printers",
            "0",
            "--state",
            str(tmp_path / "state"),
        ]

        first_from = time.time()
        first = subprocess.run(
            [*command, "--duration", "20"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=180
        )
        first_to = time.time()
        assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
        first_ids = set(splunk.received.event_ids)
        paged_first = sum(pagerduty.received.event_ids.values())
        assert len(first_ids) > 100 and paged_first > 0
        assert (tmp_path / "state" / "kafka").is_dir()

        log = (tmp_path / "second.log").open("wb")
        second = subprocess.Popen(command, cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            _wait(lambda: b"pipeline on" in (tmp_path / "second.log").read_bytes(), 90, second, tmp_path, "second.log")
            _wait(lambda: len(set(splunk.received.event_ids) - first_ids) > 100, 90, second, tmp_path, "second.log")
            # Resumed from the commits: nothing of the first run arrived again.
            assert all(splunk.received.event_ids[i] == 1 for i in first_ids)

            window = [f"--from={_iso(first_from)}", f"--to={_iso(first_to)}"]
            replayed = subprocess.run(
                [sys.executable, "-m", "continuum_events", "replay", "h-splunk", *window, "-b", f"127.0.0.1:{port}"],
                cwd=tmp_path,
                env=env,
                capture_output=True,
                text=True,
                timeout=120,
            )
            assert replayed.returncode == 0, replayed.stdout + replayed.stderr
            again = {i for i in first_ids if splunk.received.event_ids[i] == 2}
            assert again == first_ids, (
                f"{len(first_ids - again)} of {len(first_ids)} events of the first run not replayed"
            )
        finally:
            second.send_signal(signal.SIGTERM)
            code = second.wait(90)
            log.close()
        assert code == 0, (tmp_path / "second.log").read_text()[-3000:]
        # An event that happened in the window but reached Splunk only after the restart (the first
        # run stopped with it in flight) is delivered once by the resumed connector and once by the
        # replay; every event that happened after the window arrived exactly once.
        in_window = {i for i, t in splunk.times.items() if first_from <= t <= first_to}
        assert in_window >= first_ids
        assert not [i for i, n in splunk.received.event_ids.items() if i not in in_window and n > 1], (
            "an event of the second run was delivered twice"
        )
        assert all(splunk.received.event_ids[i] == 2 for i in in_window - first_ids)
        assert max(pagerduty.received.event_ids.values()) == 1, "a page was sent twice across the restart"


def _iso(epoch_s: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(epoch_s)) + f".{int(epoch_s % 1 * 1000):03d}+00:00"
