"""Operating integrations through the CLI, against a real broker and strict receivers:
connect/list/test/disconnect, independent start positions, status, replay by time,
dead-letter list and redrive — and every command's answer to bad input."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from continuum_events.broker import LocalBroker, local_broker
from continuum_events.cli.main import app
from continuum_events.connectors.host import ConnectorHost
from continuum_events.devtools.receivers import SplunkReceiver
from continuum_events.events import EventType
from continuum_events.producers.app import EventProducer
from continuum_events.settings import KafkaSettings
from continuum_events.topology import category_topic, connector_group
from tests.kafka_helpers import committed_offsets

pytestmark = pytest.mark.broker
cli = CliRunner()
HOUR_US = 3600 * 1_000_000
#: Every event of this module is timestamped in this day, in order (replay searches by time).
DAY0_US = 1_700_000_000 * 1_000_000


@pytest.fixture(scope="module")
def ops() -> Iterator[LocalBroker]:
    """A broker of this module's own: replay's time search needs per-partition timestamps in
    order, which other modules' events (timestamped now) would interleave."""
    with local_broker() as broker:
        yield broker


@pytest.fixture
def settings(ops: LocalBroker) -> KafkaSettings:
    return KafkaSettings(bootstrap_servers=ops.bootstrap_servers)


@pytest.fixture
def splunk(monkeypatch: pytest.MonkeyPatch) -> Iterator[SplunkReceiver]:
    monkeypatch.setenv("OPS_SPLUNK_TOKEN", SplunkReceiver.TOKEN)
    with SplunkReceiver() as receiver:
        yield receiver


def write_file(tmp_path: Path, *entries: dict) -> Path:
    path = tmp_path / "integrations.yaml"
    path.write_text(json.dumps({"integrations": list(entries)}, indent=2))  # JSON is YAML
    return path


def splunk_entry(name: str, receiver: SplunkReceiver, **extra) -> dict:
    return {
        "name": name,
        "vendor": "splunk",
        "options": {"url": receiver.url, "index": "printers"},
        "secrets": {"token": {"env": "OPS_SPLUNK_TOKEN"}},
        "allow_private_network": True,
        "allow_insecure_http": True,
        "filters": [{"where": {"printer_location": extra.pop("location")}}],
        **extra,
    }


class Clock:
    """Event times for this module: strictly increasing, from DAY0."""

    now_us = DAY0_US

    @classmethod
    def take(cls, step_us: int = 1_000_000) -> int:
        cls.now_us += step_us
        return cls.now_us


def produce(settings: KafkaSettings, tmp_path: Path, location: str, n: int, step_us: int = 1_000_000) -> list[str]:
    """``n`` events straight onto the logging topic (no router needed), one per printer."""
    with EventProducer(settings, topic=category_topic("logging"), spool_path=tmp_path / f"spool-{time.time_ns()}") as p:
        ids = [
            p.dispatch(
                EventType.PRINTER_OFFLINE,
                {"printer_id": f"{location}-{i}", "printer_location": location, "consecutive_failures": 3},
                timestamp_us=Clock.take(step_us),
            )
            for i in range(n)
        ]
        assert p.flush(10) == 0
    return ids


def invoke(settings: KafkaSettings, *args: str) -> object:
    return cli.invoke(app, [*args, "-b", settings.bootstrap_servers])


def said(result) -> str:
    """A command's output with the terminal's line wrapping undone."""
    return " ".join(result.output.split())


def committed(settings: KafkaSettings, name: str) -> dict[int, int]:
    offsets = committed_offsets(settings.bootstrap_servers, connector_group(name))
    return {partition: offset for (_, partition), offset in offsets.items() if offset >= 0}


class Host:
    """A connector host (what `continuum-events connectors` runs) in a thread."""

    def __init__(self, settings: KafkaSettings, *only: str) -> None:
        self.stop = threading.Event()
        self.host = ConnectorHost(settings, only=only)
        self.thread = threading.Thread(target=self.host.run, args=(self.stop,), daemon=True)

    def __enter__(self) -> Host:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(30)


def wait_until(predicate, timeout: float = 60.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def test_connect_list_test_and_disconnect(settings, splunk, tmp_path) -> None:
    path = write_file(tmp_path, splunk_entry("ops-list", splunk, location="L-list"))
    result = invoke(settings, "integrations", "connect", "ops-list", "--file", str(path))
    assert result.exit_code == 0, result.output
    assert "connected ops-list" in result.stdout and "from now on" in result.stdout

    listed = invoke(settings, "integrations", "list", "--json")
    row = next(r for r in json.loads(listed.stdout) if r["name"] == "ops-list")
    assert row["connected"] and row["category"] == "logging" and row["secrets"] == {"token": "env OPS_SPLUNK_TOKEN"}
    assert SplunkReceiver.TOKEN not in listed.stdout

    verdict = invoke(settings, "integrations", "test", "ops-list")
    assert verdict.exit_code == 0 and "OK" in verdict.stdout, verdict.output
    splunk.auth_broken = True
    verdict = invoke(settings, "integrations", "test", "ops-list")
    assert verdict.exit_code == 1 and "FAILED (configuration)" in verdict.stdout, verdict.output
    assert SplunkReceiver.TOKEN not in verdict.output

    rules = json.loads(invoke(settings, "rules", "list", "--json").stdout)
    assert any(r["name"] == "ops-list.filter.0" and r["integration"] == "ops-list" for r in rules)
    assert any(r["category"] == "logging" and r["integration"] is None for r in rules), "default routing set"

    gone = invoke(settings, "integrations", "disconnect", "ops-list")
    assert gone.exit_code == 0, gone.output
    assert all(r["name"] != "ops-list" for r in json.loads(invoke(settings, "integrations", "list", "--json").stdout))
    assert not any(
        r["name"].startswith("ops-list.") for r in json.loads(invoke(settings, "rules", "list", "--json").stdout)
    )


def test_a_new_integration_starts_where_it_asks_without_moving_others(settings, splunk, tmp_path) -> None:
    location = "L-start"
    with SplunkReceiver() as early, SplunkReceiver() as late:
        path = write_file(
            tmp_path,
            splunk_entry("ops-old", splunk, location=location),
            splunk_entry("ops-early", early, location=location, start_from="earliest"),
            splunk_entry("ops-late", late, location=location),
        )
        assert invoke(settings, "integrations", "connect", "ops-old", "-f", str(path)).exit_code == 0
        history = produce(settings, tmp_path, location, 60)
        with Host(settings, "ops-old"):
            wait_until(lambda: set(history) <= set(splunk.received.event_ids), what="the first integration")
        old_position = committed(settings, "ops-old")
        assert sum(old_position.values()) > 0

        for name in ("ops-early", "ops-late"):
            result = invoke(settings, "integrations", "connect", name, "-f", str(path))
            assert result.exit_code == 0, result.output
        new = produce(settings, tmp_path, location, 25)
        with Host(settings, "ops-early", "ops-late"):
            wait_until(lambda: set(history + new) <= set(early.received.event_ids), what="earliest: all history")
            wait_until(lambda: set(new) <= set(late.received.event_ids), what="latest: the new events")
        assert not set(history) & set(late.received.event_ids), "latest starts at connect time"
        assert all(n == 1 for n in early.received.event_ids.values())
        assert committed(settings, "ops-old") == old_position, "another integration's position never moves"


def test_status_dead_letters_and_redrive_once(settings, splunk, tmp_path) -> None:
    location = "L-dlq"
    path = write_file(tmp_path, splunk_entry("ops-dlq", splunk, location=location))
    assert invoke(settings, "integrations", "connect", "ops-dlq", "-f", str(path)).exit_code == 0
    ids = produce(settings, tmp_path, location, 40)
    refused = set(ids[::8])
    splunk.refuse_ids = set(refused)
    with Host(settings, "ops-dlq"):
        wait_until(lambda: set(ids) - refused <= set(splunk.received.event_ids), what="delivery")

        def reported() -> dict:
            rows = json.loads(invoke(settings, "status", "--json").stdout)
            return next(r for r in rows if r["name"] == "ops-dlq")

        wait_until(
            lambda: reported()["dead_letters_waiting"] == len(refused) and reported()["state"] == "healthy",
            what="status to show dead letters, and health back after the rejections",
        )
        row = reported()
        assert row["lag"] == 0 and row["last_delivery"] and row["instances"] == 1
        assert row["delivered"] == len(ids) - len(refused) and row["dead_lettered"] == len(refused)
        table = invoke(settings, "status")
        assert table.exit_code == 0 and "ops-dlq" in table.stdout and "healthy" in table.stdout

    listed = invoke(settings, "dlq", "list", "ops-dlq", "--json")
    groups = json.loads(listed.stdout)
    assert sum(g["waiting"] for g in groups) == len(refused)
    assert all("refused" in g["reason"] or "invalid" in g["reason"].lower() for g in groups), groups
    assert groups[0]["event_types"] == {"printer.offline": len(refused)}

    nothing = invoke(settings, "dlq", "redrive", "ops-dlq", "--filter", "no such reason")
    assert nothing.exit_code == 0 and "0 selected" in nothing.stdout, nothing.output
    splunk.refuse_ids = set()
    redriven = invoke(settings, "dlq", "redrive", "ops-dlq")
    assert redriven.exit_code == 0, redriven.output
    assert f"{len(refused)} delivered" in redriven.stdout
    again = invoke(settings, "dlq", "redrive", "ops-dlq")
    assert "0 selected" in again.stdout, "a dead letter is redriven once"
    assert {i: splunk.received.event_ids[i] for i in ids} == dict.fromkeys(ids, 1), "nothing lost, nothing doubled"
    assert "no dead letters waiting" in invoke(settings, "dlq", "list", "ops-dlq").stdout
    row = next(r for r in json.loads(invoke(settings, "status", "--json").stdout) if r["name"] == "ops-dlq")
    assert row["dead_letters_waiting"] == 0, "status counts what the redrive ledger holds"


def test_replay_redelivers_a_time_window_to_one_integration(settings, splunk, tmp_path) -> None:
    location = "L-replay"
    with SplunkReceiver() as other:
        path = write_file(
            tmp_path,
            splunk_entry("ops-replay", splunk, location=location),
            splunk_entry("ops-bystander", other, location=location),
        )
        for name in ("ops-replay", "ops-bystander"):
            assert invoke(settings, "integrations", "connect", name, "-f", str(path)).exit_code == 0
        before = produce(settings, tmp_path, location, 30, step_us=HOUR_US // 10)  # 3 hours
        window_start_us = Clock.now_us + 1000  # record timestamps are milliseconds
        window = produce(settings, tmp_path, location, 50, step_us=HOUR_US // 25)  # 2 hours
        window_end_us = Clock.now_us + 1000
        after = produce(settings, tmp_path, location, 20, step_us=HOUR_US // 10)
        everything = before + window + after
        with Host(settings, "ops-replay", "ops-bystander"):
            wait_until(lambda: set(everything) <= set(splunk.received.event_ids), what="live delivery")
            wait_until(lambda: set(everything) <= set(other.received.event_ids), what="bystander delivery")
        positions = {n: committed(settings, n) for n in ("ops-replay", "ops-bystander")}

        iso = lambda us: time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(us / 1e6)) + f".{us % 1_000_000:06d}Z"  # noqa: E731
        result = invoke(settings, "replay", "ops-replay", "--from", iso(window_start_us), "--to", iso(window_end_us))
        assert result.exit_code == 0, result.output
        assert f"{len(window)} delivered" in result.stdout
        assert {i for i in everything if splunk.received.event_ids[i] == 2} == set(window)
        assert all(splunk.received.event_ids[i] == 1 for i in before + after)
        assert all(other.received.event_ids[i] == 1 for i in everything), "only the named integration"
        assert {n: committed(settings, n) for n in positions} == positions, "no consumer group moved"


# -- bad input: a clear message, a non-zero exit, never a traceback ----------------------
@pytest.mark.parametrize(
    "args",
    [
        ["status"],
        ["dlq", "list", "x"],
        ["replay", "x", "--from", "1h"],
        ["connectors"],
    ],
)
def test_an_unreachable_broker_is_a_clear_error(args: list[str]) -> None:
    result = cli.invoke(app, [*args, "-b", "127.0.0.1:1"])
    assert result.exit_code == 1
    assert "cannot reach Kafka at 127.0.0.1:1" in said(result)
    assert ("Traceback" not in result.output and result.exception is None) or isinstance(result.exception, SystemExit)


def test_bad_files_and_names_are_clear_errors(settings, splunk, tmp_path) -> None:
    missing = invoke(settings, "integrations", "connect", "--all", "-f", str(tmp_path / "nope.yaml"))
    assert missing.exit_code == 2 and "nope.yaml does not exist" in said(missing)

    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "integrations:\n  - name: s\n    vendor: splunk\n    options:\n      url: http://x\n"
        "      tokn: abc\n    secrets: {token: {env: T}}\n"
    )
    result = invoke(settings, "integrations", "connect", "--all", "-f", str(bad))
    assert result.exit_code == 2 and "line 6, s.options.tokn: splunk has no option 'tokn'" in said(result)

    unknown = invoke(settings, "integrations", "test", "no-such-thing")
    assert unknown.exit_code == 2 and "no integration named 'no-such-thing'" in said(unknown)
    for args in (
        ["replay", "no-such-thing", "--from", "1h"],
        ["dlq", "redrive", "no-such-thing"],
        ["integrations", "disconnect", "no-such-thing"],
    ):
        result = invoke(settings, *args)
        assert result.exit_code == 2 and "no integration named 'no-such-thing'" in said(result), (args, result.output)
    assert invoke(settings, "replay", "x", "--from", "yesterday-ish").exit_code == 2
    run = cli.invoke(app, ["run", "--integrations", str(bad)])
    assert run.exit_code == 2 and "line 6, s.options.tokn" in said(run), "run refuses a bad file before starting"
    for each in (missing, result, unknown):
        assert "Traceback" not in each.output


def test_the_host_follows_connects_and_disconnects_and_isolates_a_broken_integration(
    settings, splunk, tmp_path, monkeypatch
) -> None:
    location = "L-live"
    monkeypatch.delenv("OPS_MISSING_TOKEN", raising=False)
    broken = splunk_entry("ops-broken", splunk, location=location)
    broken["secrets"] = {"token": {"env": "OPS_MISSING_TOKEN"}}
    path = write_file(tmp_path, splunk_entry("ops-live", splunk, location=location), broken)
    with Host(settings, "ops-live", "ops-broken") as host:
        time.sleep(1)
        assert not host.host.runners(), "nothing connected yet"
        result = invoke(settings, "integrations", "connect", "ops-live", "ops-broken", "-f", str(path))
        assert result.exit_code == 0, result.output
        first = produce(settings, tmp_path, location, 10)
        wait_until(lambda: set(first) <= set(splunk.received.event_ids), what="delivery after a live connect")

        wait_until(
            lambda: (
                {r["name"]: r for r in json.loads(invoke(settings, "status", "--json").stdout)}["ops-broken"]["state"]
                == "unhealthy"
            ),
            what="the broken one reported",
        )
        rows = {r["name"]: r for r in json.loads(invoke(settings, "status", "--json").stdout)}
        assert "environment variable OPS_MISSING_TOKEN is not set" in rows["ops-broken"]["last_error"]
        assert rows["ops-live"]["state"] == "healthy"

        assert invoke(settings, "integrations", "disconnect", "ops-live").exit_code == 0
        wait_until(lambda: "ops-live" not in host.host.running, what="the connector to stop")
        later = produce(settings, tmp_path, location, 5)
        time.sleep(2)
        assert not set(later) & set(splunk.received.event_ids), "a disconnected integration receives nothing"
