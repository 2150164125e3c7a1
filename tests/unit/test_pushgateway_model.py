"""The Pushgateway connector without a gateway: folding events into state, the text
exposition, grouping keys, reading state back, and what a failed push leaves behind."""

from __future__ import annotations

import base64
import re

import pytest
import requests
from pydantic import SecretStr

from continuum_events.connectors.base import ConfigError, Retry, Split
from continuum_events.connectors.http import HttpClient
from continuum_events.connectors.pushgateway import (
    Changes,
    Printer,
    PushgatewayConfig,
    PushgatewaySink,
    State,
    counter_samples,
    escape,
    fold,
    grouping_path,
    instance_samples,
    number,
    printer_samples,
    render,
    state_from_api,
)
from continuum_events.events import Event, EventType, Severity

T0 = 1_795_800_000_000_000  # µs


def ev(
    kind: EventType, printer_id: str | None = "p-1", at_s: float = 0, severity: str | None = None, **payload: object
) -> Event:
    body = {"printer_id": printer_id, **payload} if printer_id is not None else dict(payload)
    level = Severity(severity) if severity else Severity.WARNING
    return Event(f"id-{at_s}", kind, level, T0 + int(at_s * 1_000_000), body)


# -- folding -----------------------------------------------------------------------------
def test_offline_then_online_is_up_since_the_online_event() -> None:
    state, changes = fold(State(), [ev(EventType.PRINTER_OFFLINE, at_s=1), ev(EventType.PRINTER_ONLINE, at_s=2.5)])
    assert state.printers["p-1"].up == 1
    assert state.printers["p-1"].last_change_s == (T0 + 2_500_000) / 1e6
    assert changes.touched == ("p-1",) and changes.removed == ()


def test_a_repeated_state_is_not_a_change() -> None:
    state, _ = fold(State(), [ev(EventType.PRINTER_OFFLINE, at_s=1)])
    state, _ = fold(state, [ev(EventType.PRINTER_OFFLINE, at_s=9), ev(EventType.PRINTER_ERROR, at_s=10)])
    assert state.printers["p-1"].up == 0 and state.printers["p-1"].last_change_s == (T0 + 1_000_000) / 1e6


def test_toner_and_facts_are_kept_until_reported_again() -> None:
    state, _ = fold(
        State(),
        [
            ev(EventType.PRINTER_LOW_TONER, toner_level_percent=12, printer_name="HQ 1", printer_ip="10.0.0.9"),
            ev(EventType.PRINTER_ONLINE, at_s=1, printer_name="HQ 1 renamed", printer_model="", printer_location=None),
            ev(EventType.PRINTER_ERROR, at_s=2, toner_level_percent="lots"),  # not a number: ignored, not retried
        ],
    )
    printer = state.printers["p-1"]
    assert printer.toner_percent == 12 and printer.up == 1
    assert printer.info == {"name": "HQ 1 renamed", "ip": "10.0.0.9"}


def test_no_up_value_is_invented_for_events_that_do_not_say() -> None:
    state, _ = fold(State(), [ev(EventType.PRINTER_LOW_TONER, toner_level_percent=5)])
    assert state.printers["p-1"].up is None and state.printers["p-1"].last_change_s is None


def test_removed_printers_are_deleted_and_may_come_back() -> None:
    start, _ = fold(State(), [ev(EventType.PRINTER_ONLINE, "a"), ev(EventType.PRINTER_ONLINE, "b")])
    state, changes = fold(
        start,
        [
            ev(EventType.PRINTER_REMOVED, "a", at_s=1),
            ev(EventType.PRINTER_OFFLINE, "b", at_s=1),
            ev(EventType.PRINTER_REMOVED, "c"),
            ev(EventType.PRINTER_ONLINE, "c", at_s=3),
        ],
    )
    assert "a" not in state.printers and state.printers["c"] == Printer(1, None, (T0 + 3_000_000) / 1e6, {})
    assert changes.removed == ("a", "c") and changes.touched == ("b", "c")  # c: delete first, then push


def test_every_event_counts_by_type_and_severity() -> None:
    events = [
        ev(EventType.PRINTER_OFFLINE, at_s=1, severity="warning"),
        ev(EventType.PRINTER_OFFLINE, at_s=2, severity="error"),
        ev(EventType.PRINTER_OFFLINE, at_s=3, severity="warning"),
        ev(EventType.SYSTEM_ERROR, None, component="db"),
        ev(EventType.PRINTER_REMOVED, "gone"),
    ]
    state, changes = fold(State(counters={("printer.offline", "warning"): 40}), events)
    assert state.counters == {
        ("printer.offline", "warning"): 42,
        ("printer.offline", "error"): 1,
        ("system.error", "warning"): 1,
        ("printer.removed", "warning"): 1,
    }
    assert changes.touched == ("p-1",)  # the system event has no printer


def test_a_redelivered_old_offline_does_not_set_an_online_printer_down() -> None:
    offline, online = ev(EventType.PRINTER_OFFLINE, at_s=1), ev(EventType.PRINTER_ONLINE, at_s=2)
    state, _ = fold(State(), [offline, online])
    state, changes = fold(state, [offline])  # redelivered after the online
    assert state.printers["p-1"].up == 1 and state.printers["p-1"].last_change_s == (T0 + 2_000_000) / 1e6
    assert changes.touched == ()
    state, _ = fold(State(), [online, offline])  # late in one batch: the older offline arrives last
    assert state.printers["p-1"].up == 1 and state.last_event_us == {"p-1": T0 + 2_000_000}


def test_a_redelivered_batch_is_not_counted_again() -> None:
    batch = [
        ev(EventType.PRINTER_OFFLINE, "a", at_s=1),
        ev(EventType.PRINTER_ONLINE, "a", at_s=2),
        ev(EventType.PRINTER_OFFLINE, "b", at_s=1),
        ev(EventType.SYSTEM_ERROR, None, at_s=5, component="db"),
    ]
    once, _ = fold(State(), batch)
    twice, changes = fold(once, batch)
    assert (
        twice.counters
        == once.counters
        == {("printer.offline", "warning"): 2, ("printer.online", "warning"): 1, ("system.error", "warning"): 1}
    )
    assert changes == Changes()
    newer, _ = fold(twice, [ev(EventType.PRINTER_OFFLINE, "a", at_s=3)])
    assert newer.counters[("printer.offline", "warning")] == 3 and newer.printers["a"].up == 0


def test_a_late_removal_keeps_the_printer_and_old_events_do_not_bring_a_removed_one_back() -> None:
    state, _ = fold(State(), [ev(EventType.PRINTER_ONLINE, "a", at_s=5), ev(EventType.PRINTER_REMOVED, "a", at_s=4)])
    assert state.printers["a"].up == 1
    state, changes = fold(
        state, [ev(EventType.PRINTER_REMOVED, "a", at_s=6), ev(EventType.PRINTER_OFFLINE, "a", at_s=5.5)]
    )
    assert "a" not in state.printers and changes == Changes(removed=("a",))
    assert state.last_event_us == {"a": T0 + 6_000_000}  # kept, so a replay cannot bring it back


def test_the_last_event_times_are_pushed_with_the_counters_and_read_back_exactly() -> None:
    exact = Event("e-ab", EventType.PRINTER_OFFLINE, Severity.ERROR, T0 + 1_000_001, {"printer_id": "a/b"})
    state, _ = fold(State(), [exact, ev(EventType.PRINTER_ONLINE, "c")])
    text = render(instance_samples(state)).decode()
    assert "# TYPE continuum_printer_last_event_timestamp_seconds gauge" in text
    assert 'continuum_printer_last_event_timestamp_seconds{printer="a/b"} 1795800001.000001' in text
    answer = {
        "status": "success",
        "data": [
            {
                "labels": {"job": "continuum", "instance": "continuum-events"},
                "continuum_printer_last_event_timestamp_seconds": {
                    "metrics": [
                        {"labels": {"printer": "a/b"}, "value": "1.795800001000001e+09"},
                        {"labels": {"printer": "c"}, "value": "1.7958e+09"},
                    ]
                },
            }
        ],
    }
    assert state_from_api(answer, "continuum", "continuum-events").last_event_us == state.last_event_us


def test_events_without_a_printer_count_once_per_event_id() -> None:
    system = ev(EventType.SYSTEM_ERROR, None, component="db")
    state, _ = fold(State(), [system, system])
    state, _ = fold(state, [system])
    assert state.counters == {("system.error", "warning"): 1}


def test_folding_leaves_the_old_state_alone() -> None:
    old, _ = fold(State(), [ev(EventType.PRINTER_OFFLINE)])
    before = (dict(old.counters), dict(old.printers))
    fold(old, [ev(EventType.PRINTER_ONLINE, at_s=1), ev(EventType.PRINTER_REMOVED)])
    assert (dict(old.counters), dict(old.printers)) == before


# -- the exposition ----------------------------------------------------------------------
SAMPLE_LINE = re.compile(r'[a-z_]+(\{([a-z_]+="([^"\\\n]|\\[\\"n])*",?)*\})? -?[0-9.e+]+')


def test_one_type_line_per_metric_and_no_timestamps() -> None:
    printer = Printer(0, 37.5, 1_795_800_000.123456, {"name": "HQ 1", "ip": "10.0.0.9"})
    text = render(
        printer_samples(printer) + counter_samples({("printer.online", "info"): 3, ("printer.offline", "warning"): 2})
    ).decode()
    lines = text.splitlines()
    assert text.endswith("\n")
    assert [line for line in lines if line.startswith("# TYPE")] == [
        "# TYPE continuum_printer_up gauge",
        "# TYPE continuum_printer_toner_level_percent gauge",
        "# TYPE continuum_printer_last_change_timestamp_seconds gauge",
        "# TYPE continuum_printer_info gauge",
        "# TYPE continuum_events_total counter",
    ]
    samples = [line for line in lines if not line.startswith("#")]
    assert all(SAMPLE_LINE.fullmatch(line) for line in samples), samples  # name, labels, value: nothing after
    assert "continuum_printer_last_change_timestamp_seconds 1795800000.123456" in samples
    assert 'continuum_printer_info{ip="10.0.0.9",name="HQ 1"} 1' in samples
    assert samples[-2:] == [
        'continuum_events_total{event_type="printer.offline",severity="warning"} 2',
        'continuum_events_total{event_type="printer.online",severity="info"} 3',
    ]


def test_label_values_are_escaped() -> None:
    assert escape('a\\b "c"\nd') == 'a\\\\b \\"c\\"\\nd'
    text = render([("continuum_printer_info", {"name": 'cover "B" \\ open\nnow'}, 1)]).decode()
    assert 'continuum_printer_info{name="cover \\"B\\" \\\\ open\\nnow"} 1\n' in text


def test_numbers_read_back_exactly() -> None:
    assert [number(v) for v in (1, 0, 37.0, 12.5, 1_795_800_000.123456)] == [
        "1",
        "0",
        "37",
        "12.5",
        "1795800000.123456",
    ]
    assert render([]) == b""


# -- grouping keys -------------------------------------------------------------------------
@pytest.mark.parametrize("value", ["a/b", "", "..", ".", "x y?#%", "Drucker Ü", "a/b/c"])
def test_values_that_are_not_plain_go_base64(value: str) -> None:
    path = grouping_path([("job", "continuum"), ("printer", value)])
    prefix = "/metrics/job/continuum/printer@base64/"
    assert path.startswith(prefix)
    encoded = path.removeprefix(prefix)
    assert "/" not in encoded
    assert encoded == "=" if value == "" else base64.urlsafe_b64decode(encoded).decode() == value


def test_plain_values_stay_readable() -> None:
    assert grouping_path([("job", "continuum"), ("printer", "p-17.hq_2")]) == "/metrics/job/continuum/printer/p-17.hq_2"
    assert grouping_path([("job", "c/x"), ("instance", "continuum-events")]).startswith("/metrics/job@base64/Yy94/")


# -- reading the gateway's state back ------------------------------------------------------------
def _metric(labels: dict[str, str], value: str) -> dict:
    return {"time_stamp": "2026-11-27T20:47:07Z", "type": "GAUGE", "metrics": [{"labels": labels, "value": value}]}


API_ANSWER = {
    "status": "success",
    "data": [
        {
            "labels": {"job": "continuum", "instance": "continuum-events"},
            "last_push_successful": True,
            "continuum_events_total": {
                "type": "COUNTER",
                "metrics": [
                    {
                        "labels": {
                            "event_type": "printer.offline",
                            "instance": "continuum-events",
                            "job": "continuum",
                            "severity": "error",
                        },
                        "value": "3",
                    },
                    {
                        "labels": {
                            "event_type": "printer.online",
                            "instance": "continuum-events",
                            "job": "continuum",
                            "severity": "info",
                        },
                        "value": "1e+06",
                    },
                ],
            },
            "push_time_seconds": _metric({"instance": "continuum-events", "job": "continuum"}, "1.79e+09"),
        },
        {
            "labels": {"job": "continuum", "printer": "a/b"},
            "continuum_printer_up": _metric({"instance": "", "job": "continuum", "printer": "a/b"}, "0"),
            "continuum_printer_last_change_timestamp_seconds": _metric({"job": "continuum"}, "1.7958e+09"),
            "continuum_printer_info": _metric(
                {"instance": "", "job": "continuum", "printer": "a/b", "name": "HQ"}, "1"
            ),
        },
        {
            "labels": {"job": "other", "instance": "continuum-events"},
            "continuum_events_total": {
                "metrics": [{"labels": {"event_type": "printer.offline", "severity": "error"}, "value": "99"}]
            },
        },
    ],
}


def test_state_is_read_back_from_the_metrics_api() -> None:
    state = state_from_api(API_ANSWER, "continuum", "continuum-events")
    assert state.counters == {("printer.offline", "error"): 3, ("printer.online", "info"): 1_000_000}
    assert state.printers == {"a/b": Printer(0, None, 1.7958e9, {"name": "HQ"})}
    assert state_from_api({"status": "success", "data": []}, "continuum", "x") == State()


@pytest.mark.parametrize("answer", [[], {"status": "error"}, {"status": "success", "data": None}, "<html>"])
def test_an_answer_that_is_not_the_gateways_is_refused(answer: object) -> None:
    with pytest.raises(ValueError):
        state_from_api(answer, "continuum", "continuum-events")


# -- the sink's answers, with a scripted client --------------------------------------------------
class ScriptedClient(HttpClient):
    """Answers each request with the next status of ``script`` (200 when it runs out)."""

    def __init__(self, script: list[int] | None = None) -> None:
        super().__init__(1.0)
        self.script, self.calls = list(script or []), []

    def request(self, method, url, body=None, headers=None, *, what="request"):  # type: ignore[override]
        self.calls.append((method, url.removeprefix("http://gw:9091"), body))
        response = requests.Response()
        response.status_code = self.script.pop(0) if self.script else 200
        response._content = b'{"status": "success", "data": []}' if method == "GET" else b"nope"
        return response


def sink_with(*script: int) -> tuple[PushgatewaySink, ScriptedClient]:
    client = ScriptedClient(list(script))
    return PushgatewaySink(PushgatewayConfig("http://gw:9091"), client), client


def test_a_failed_push_leaves_the_state_unchanged() -> None:
    sink, client = sink_with()
    sink.write([ev(EventType.PRINTER_OFFLINE, at_s=1)])
    before = sink.state
    client.script = [200, 503]  # the printer's POST goes through, the counters' PUT fails
    with pytest.raises(Retry):
        sink.write([ev(EventType.PRINTER_ONLINE, at_s=2)])
    assert sink.state is before
    sink.write([ev(EventType.PRINTER_ONLINE, at_s=2)])  # the runtime sends the batch again
    assert sink.state.counters == {("printer.offline", "warning"): 1, ("printer.online", "warning"): 1}
    assert client.calls[-1][2].decode().count("continuum_events_total{") == 2


def test_the_counters_are_read_back_before_the_first_push() -> None:
    sink, client = sink_with()
    sink.write([ev(EventType.PRINTER_REMOVED, "old"), ev(EventType.PRINTER_ONLINE, "new")])
    assert [(m, u) for m, u, _ in client.calls] == [
        ("GET", "/api/v1/metrics"),
        ("DELETE", "/metrics/job/continuum/printer/old"),
        ("POST", "/metrics/job/continuum/printer/new"),
        ("PUT", "/metrics/job/continuum/instance/continuum-events"),
    ]


@pytest.mark.parametrize(
    ("status", "raised"),
    [
        (400, Split),
        (401, ConfigError),
        (403, ConfigError),
        (404, ConfigError),
        (500, Retry),
        (503, Retry),
        (429, Retry),
    ],
)
def test_answers_map_to_outcomes(status: int, raised: type[Exception]) -> None:
    sink, _ = sink_with(200, status)  # the read-back succeeds, the push does not
    with pytest.raises(raised):
        sink.write([ev(EventType.PRINTER_OFFLINE)])
    assert sink.state == State()


def test_a_failed_read_back_is_retried_not_taken_for_zero() -> None:
    sink, client = sink_with(503)
    with pytest.raises(Retry):
        sink.write([ev(EventType.PRINTER_OFFLINE)])
    assert sink.state is None and [m for m, _, _ in client.calls] == ["GET"]


def test_the_password_never_prints() -> None:
    config = PushgatewayConfig("http://gw:9091", username="pusher", password=SecretStr("hunter2"))
    assert "hunter2" not in repr(config)
    with pytest.raises(ValueError):
        PushgatewayConfig("gw:9091")
    with pytest.raises(ValueError):
        PushgatewayConfig("http://gw:9091", password=SecretStr("x"))
