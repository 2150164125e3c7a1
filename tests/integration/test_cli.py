from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from continuum_events.broker import default_engine, free_port
from continuum_events.cli.main import app
from tests.kafka_helpers import read_topic

runner = CliRunner()


def test_help_names_every_command() -> None:
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for command in ("run", "broker", "topics", "send", "tail", "bench"):
        assert command in result.output


@pytest.mark.broker
def test_send_dispatches_one_event_and_prints_its_id(broker) -> None:
    result = runner.invoke(
        app,
        [
            "send",
            "printer.jam",
            json.dumps({"printer_id": "cli-p1", "conditions": ["jammed"]}),
            "-b",
            broker.bootstrap_servers,
        ],
    )
    assert result.exit_code == 0, result.output
    event_id = result.stdout.strip().splitlines()[-1]
    found = read_topic(
        broker.bootstrap_servers,
        "printer-events",
        until=lambda got: any(r.event.event_id == event_id for r in got),
        timeout=20,
    )
    event = next(r.event for r in found if r.event.event_id == event_id)
    assert event.event_type == "printer.jam" and event.severity == "warning" and event.source == "continuum-cli"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["send", "printer.jam", "{not json"], "payload is not JSON"),
        # `send` is strict: what dispatch_event would adjust is an error here, naming the field.
        (["send", "printer.jam", '{"printer_id": 5}'], "payload.printer_id: int given"),
        (["send", "printer.explode", "{}"], "'printer.explode' is not"),
    ],
)
def test_send_explains_bad_input(args: list[str], message: str) -> None:
    result = runner.invoke(app, [*args, "-b", "127.0.0.1:1"])
    assert result.exit_code == 2
    assert message in " ".join(result.output.split()).replace("│", "").replace("  ", " ") or message in result.output


@pytest.mark.broker
def test_tail_prints_decoded_events(broker) -> None:
    runner.invoke(
        app,
        [
            "send",
            "system.critical",
            '{"component": "tail-test", "message": "disk full"}',
            "-b",
            broker.bootstrap_servers,
        ],
    )
    result = runner.invoke(
        app, ["tail", "--from-beginning", "--json", "--idle-exit", "2", "-b", broker.bootstrap_servers]
    )
    assert result.exit_code == 0, result.output
    events = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    assert any(e["payload"].get("component") == "tail-test" and e["severity"] == "critical" for e in events)


@pytest.mark.broker
def test_run_with_nothing_configured_delivers_the_demo_to_local_receivers(monkeypatch, tmp_path) -> None:
    monkeypatch.delenv("CONTINUUM_KAFKA_BOOTSTRAP_SERVERS", raising=False)
    monkeypatch.chdir(tmp_path)  # no integrations.yaml here
    result = runner.invoke(
        app,
        [
            "run",
            "--duration",
            "25",
            "--no-view",
            "--rate",
            "40",
            "--probe-printers",
            "0",
            "--broker-port",
            str(free_port()),
            "--state",
            str(tmp_path / "state"),
        ],
    )
    assert result.exit_code == 0, result.output
    last = " ".join(result.output.split()).rsplit("events: dispatched", 1)[1]
    assert "local demo receivers" in result.output and f"(local {default_engine()} broker" in result.output
    dispatched = int(last.split(",")[0])
    seen = int(last.split("seen on printer-events ")[1].split(" ")[0])
    routed = {c: int(last.split(f"{c} ")[1].split(",")[0].split(";")[0]) for c in ("logging", "monitoring", "alerting")}
    delivered = {
        n: int(last.split(f"{n} ")[1].split("delivered ")[1].split(" ")[0])
        for n in ("demo-splunk", "demo-grafana", "demo-pagerduty")
    }
    assert dispatched > 500 and seen == dispatched and routed["logging"] == dispatched
    assert delivered["demo-splunk"] == routed["logging"], "every routed event reached the logging receiver"
    assert delivered["demo-grafana"] == routed["monitoring"] > 0
    assert 0 < delivered["demo-pagerduty"] <= routed["alerting"]
    assert "undecodable 0" in last and "refused 0" in last and "dlq 0" in last and "dead-lettered 0" in last


@pytest.mark.broker
def test_rules_set_list_and_test_explain_routing(broker) -> None:
    b = ["-b", broker.bootstrap_servers]
    event = json.dumps(
        {
            "event_type": "printer.jam",
            "severity": "warning",
            "payload": {"printer_id": "p-9", "printer_department": "Finance"},
        }
    )
    before = runner.invoke(app, ["rules", "test", event, *b])
    assert before.exit_code == 0, before.output
    assert before.stdout.strip().splitlines()[-1] == "reaches: logging, monitoring"

    result = runner.invoke(
        app,
        [
            "rules",
            "set",
            "cli-finance-jams",
            "--category",
            "alerting",
            "-t",
            "printer.jam",
            "--where",
            "printer_department=Finance",
            "--mask",
            "printer_ip",
            *b,
        ],
    )
    assert result.exit_code == 0, result.output
    try:
        listed = runner.invoke(app, ["rules", "list", "--json", *b])
        names = [r["name"] for r in json.loads(listed.stdout)]
        assert "cli-finance-jams" in names and "logging-default" in names
        after = runner.invoke(app, ["rules", "test", event, *b])
        assert after.stdout.strip().splitlines()[-1] == "reaches: logging, monitoring, alerting"
        assert "cli-finance-jams" in after.stdout
    finally:
        runner.invoke(app, ["rules", "delete", "cli-finance-jams", *b])


def test_rules_set_refuses_a_bad_rule_with_the_reason() -> None:
    result = runner.invoke(
        app, ["rules", "set", "bad", "--category", "alerting", "-t", "printer.melted", "-b", "127.0.0.1:1"]
    )
    assert result.exit_code == 2
    assert "matches no event type" in " ".join(result.output.split())


@pytest.mark.broker
def test_rules_defaults_writes_a_categorys_default_rule_once(broker) -> None:
    b = ["-b", broker.bootstrap_servers]
    try:
        first = runner.invoke(app, ["rules", "defaults", "monitoring", *b])
        assert first.exit_code == 0, first.output
        assert "default rule written" in first.output
        listed = json.loads(runner.invoke(app, ["rules", "list", "--json", *b]).stdout)
        assert {"name": "monitoring-default", "category": "monitoring"}.items() <= next(
            r for r in listed if r["name"] == "monitoring-default"
        ).items()
        again = runner.invoke(app, ["rules", "defaults", "monitoring", *b])
        assert "already has routing rules; unchanged" in " ".join(again.output.split())
        bad = runner.invoke(app, ["rules", "defaults", "paging", *b])
        assert bad.exit_code == 2
    finally:
        runner.invoke(app, ["rules", "delete", "monitoring-default", *b])


@pytest.mark.broker
def test_rules_test_explains_what_alert_hygiene_does_with_a_page(broker, tmp_path) -> None:
    b = ["-b", broker.bootstrap_servers]
    page = json.dumps(
        {
            "event_type": "printer.offline",
            "severity": "warning",
            "payload": {"printer_id": "h-9", "printer_location": "HQ-2F"},
        }
    )
    assert "alert hygiene: not configured" in runner.invoke(app, ["rules", "test", page, *b]).stdout
    assert (
        runner.invoke(
            app,
            [
                "rules",
                "hygiene",
                "set",
                "--group-threshold",
                "2",
                "--hold",
                "20",
                "--flap-changes",
                "2",
                "--resolve-grace",
                "300",
                "--update-every",
                "60",
                "--update-growth",
                "0.25",
                *b,
            ],
        ).exit_code
        == 0
    )
    try:
        shown = json.loads(runner.invoke(app, ["rules", "hygiene", "show", *b]).stdout)
        assert shown["grouping"]["threshold"] == 2 and shown["grouping"]["hold_s"] == 20
        assert (
            shown["grouping"]["resolve_grace_s"],
            shown["grouping"]["update_s"],
            shown["grouping"]["update_growth"],
        ) == (300, 60, 0.25)
        alone = runner.invoke(app, ["rules", "test", page, *b])
        assert "alert hygiene: suppressed: held up to 20 s for an outage of location HQ-2F to show" in alone.stdout
        history = tmp_path / "before.jsonl"
        history.write_text(
            "\n".join(
                json.dumps(
                    {
                        "event_type": "printer.offline",
                        "at": f"{10 - n}s",
                        "payload": {"printer_id": f"h-{n}", "printer_location": "HQ-2F"},
                    }
                )
                for n in range(2)
            )
        )
        grouped = runner.invoke(app, ["rules", "test", page, "--after", str(history), *b])
        assert "group.outage (open): more than 2 printers of location HQ-2F offline" in grouped.stdout, grouped.stdout
        flapping = tmp_path / "flapping.jsonl"
        flapping.write_text(
            "\n".join(
                json.dumps(
                    {
                        "event_type": "printer.offline" if n % 2 == 0 else "printer.online",
                        "at": f"{60 - n * 10}s",
                        "payload": {"printer_id": "h-9"},
                    }
                )
                for n in range(4)
            )
        )
        flapped = runner.invoke(app, ["rules", "test", page, "--after", str(flapping), *b])
        assert "alert hygiene: suppressed: flapping: 5 changes in 600 s; held until stable" in flapped.stdout
        bad = runner.invoke(app, ["rules", "hygiene", "set", "--resolve-ratio", "2", *b])
        assert bad.exit_code == 2 and "resolve_ratio" in bad.output
    finally:
        assert runner.invoke(app, ["rules", "hygiene", "off", *b]).exit_code == 0
    assert "not configured" in runner.invoke(app, ["rules", "hygiene", "show", *b]).stdout
