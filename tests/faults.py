"""What every fault test shares: the completeness checker that judges it, connector
processes that can be killed, and canary secrets that must never show up anywhere.

The checker is Jepsen's: of the event ids sent, which were never seen (lost), which
were seen that nobody sent (unexpected), and how many arrived more than once
(duplicates). A fault test passes only on 0 lost and 0 unexpected, with duplicates
within what its faults can explain (at most a batch per crash)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from continuum_events.devtools.receivers import DatadogReceiver, PagerDutyReceiver, SplunkReceiver

#: Canary secrets: distinctive values that fault tests configure as credentials and then
#: search for in every log, error text, dead-letter header, metric label and CLI output.
CANARY_SPLUNK = "canary-splunk-5c1f0e9d-4b2a-47e3-9d61-c0ffee000001"
CANARY_DATADOG = "canarydatadog7e4b1a9c2f5d8e3b6a0c"
CANARY_PAGERDUTY = "canarypagerduty0a1b2c3d4e5f6a7b"
CANARIES = (CANARY_SPLUNK, CANARY_DATADOG, CANARY_PAGERDUTY)


class CanarySplunk(SplunkReceiver):
    TOKEN = CANARY_SPLUNK


class CanaryDatadog(DatadogReceiver):
    API_KEY = CANARY_DATADOG


class CanaryPagerDuty(PagerDutyReceiver):
    ROUTING_KEY = CANARY_PAGERDUTY


def assert_no_canary(*texts: str | bytes, where: str = "output") -> None:
    for text in texts:
        data = text if isinstance(text, bytes) else text.encode("utf-8", "replace")
        for canary in CANARIES:
            assert canary.encode() not in data, f"a canary secret appeared in {where}"


@dataclass
class Completeness:
    sent: int
    lost: set[str] = field(default_factory=set)
    unexpected: set[str] = field(default_factory=set)
    duplicates: int = 0

    @classmethod
    def judge(cls, sent: Iterable[str], seen: Counter[str]) -> Completeness:
        sent = set(sent)
        return cls(
            len(sent), sent - set(seen), set(seen) - sent, sum(n - 1 for i, n in seen.items() if i in sent and n > 1)
        )

    def check(self, max_duplicates: int) -> None:
        assert not self.lost, f"{len(self.lost)} of {self.sent} events lost"
        assert not self.unexpected, f"{len(self.unexpected)} events seen that were never sent"
        assert self.duplicates <= max_duplicates, (
            f"{self.duplicates} duplicates; the faults explain at most {max_duplicates}"
        )

    def __str__(self) -> str:
        return (
            f"sent {self.sent}, lost {len(self.lost)}, unexpected {len(self.unexpected)}, duplicates {self.duplicates}"
        )


class ConnectorProcess:
    """``continuum-events connector NAME ...`` as a child process, killable at will; its
    output goes to a log file the test reads back (for canaries)."""

    def __init__(self, bootstrap: str, name: str, args: list[str], env: dict[str, str]) -> None:
        self.cmd = [
            sys.executable,
            "-m",
            "continuum_events",
            "--log-level",
            "info",
            "connector",
            name,
            "-b",
            bootstrap,
            "--allow-private-network",
            "--allow-insecure-http",
            *args,
        ]
        self.name = name
        self.env = {**os.environ, "COLUMNS": "200", **env}
        self.log = Path(tempfile.mkdtemp(prefix=f"{name}-")) / "connector.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.started_at = 0.0

    def start(self, **env: str) -> ConnectorProcess:
        with open(self.log, "ab") as out:
            self.process = subprocess.Popen(self.cmd, stdout=out, stderr=subprocess.STDOUT, env={**self.env, **env})
        self.started_at = time.monotonic()
        return self

    def kill(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()

    def wait_exit(self, timeout: float) -> int:
        assert self.process is not None
        return self.process.wait(timeout)

    def stop(self) -> int | None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            return self.process.wait(60)
        return self.process.returncode if self.process else None

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def tail(self, lines: int = 40) -> str:
        return "\n".join(self.output().splitlines()[-lines:])


def wait_until(predicate: Callable[[], bool], timeout: float, what: str, poll: float = 0.05) -> float:
    """Wait for ``predicate``; returns the seconds it took."""
    started = time.monotonic()
    while not predicate():
        assert time.monotonic() - started < timeout, f"timed out after {timeout:.0f} s waiting for {what}"
        time.sleep(poll)
    return time.monotonic() - started
