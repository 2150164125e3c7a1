"""The contract receivers are strict: hand-written requests, good and bad, against each one.

Every documented rejection must actually happen, or a connector test against the receiver
could never fail. State (incidents, alerts, regions) must move as the vendor's does.
"""

from __future__ import annotations

import gzip
import json
import re
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import quote

import pytest
import requests

from continuum_events.devtools.receivers import (
    ContractReceiver,
    DatadogReceiver,
    GrafanaReceiver,
    NewRelicReceiver,
    OpsgenieReceiver,
    PagerDutyReceiver,
    VictorOpsReceiver,
)

EVENT_ID = "0b7f4a52-33a4-4f7e-9a0e-2a3f8e3a9c11"
OTHER_ID = "5c2d9e10-8f3b-4a6e-b1d7-c4e2a0f9b833"
TIMEOUT = 5


class _Drop:
    def __repr__(self) -> str:
        return "DROP"


DROP = _Drop()  # as a value in a parametrized override: leave the field out


def override(body: dict[str, Any], bad: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in {**body, **bad}.items() if v is not DROP}


def now_ms() -> int:
    return int(time.time() * 1000)


def case_id(case: Any, width: int) -> str:
    """A case's test id, the same in every process: times taken from the clock (9 digits or
    more) read as ``T``, so xdist workers collecting at different moments agree."""
    return re.sub(r"\d{9,}", "T", repr(case))[:width]


def running(cls: type[ContractReceiver]) -> Callable[[], Iterator[Any]]:
    def fixture() -> Iterator[Any]:
        with cls() as receiver:
            yield receiver

    return fixture


grafana = pytest.fixture(running(GrafanaReceiver), name="grafana")
newrelic = pytest.fixture(running(NewRelicReceiver), name="newrelic")
pagerduty = pytest.fixture(running(PagerDutyReceiver), name="pagerduty")
opsgenie = pytest.fixture(running(OpsgenieReceiver), name="opsgenie")
victorops = pytest.fixture(running(VictorOpsReceiver), name="victorops")


# -- the base class ------------------------------------------------------------------------
def test_existing_receivers_answer_as_before_and_other_methods_get_405() -> None:
    with DatadogReceiver() as dd:
        key = {"DD-API-KEY": DatadogReceiver.API_KEY}
        dd.script.append((429, {"errors": ["slow down"]}, {"Retry-After": "3"}))
        assert requests.get(f"{dd.url}/api/v1/validate", headers=key, timeout=TIMEOUT).json() == {"valid": True}
        first = requests.post(
            f"{dd.url}/api/v2/logs", json=[{"message": "m", "event_id": EVENT_ID}], headers=key, timeout=TIMEOUT
        )
        assert (first.status_code, first.headers["Retry-After"]) == (429, "3")  # GET left the script alone
        again = requests.post(
            f"{dd.url}/api/v2/logs", json=[{"message": "m", "event_id": EVENT_ID}], headers=key, timeout=TIMEOUT
        )
        assert again.status_code == 202 and dd.received.event_ids[EVENT_ID] == 1
        assert requests.put(f"{dd.url}/api/v2/logs", json=[], headers=key, timeout=TIMEOUT).status_code == 405
        assert dd.received.requests == 3


@pytest.mark.parametrize(
    "index",
    [
        "Printers",
        "printers events",
        "a/b",
        "a*",
        "a?",
        'a"',
        "a<",
        "a>",
        "a|",
        "a,b",
        "a#",
        "a:b",
        "-a",
        "_a",
        "+a",
        ".",
        "..",
        "a" * 256,
        "é" * 128,
    ],
)
def test_elasticsearch_refuses_items_for_index_names_it_will_not_take(index: str) -> None:
    from continuum_events.devtools.receivers import ElasticsearchReceiver

    with ElasticsearchReceiver() as es:
        body = (
            "\n".join(
                json.dumps(x)
                for x in (
                    {"create": {"_index": index, "_id": EVENT_ID}},
                    {"@timestamp": "2026-01-01T00:00:00Z", "event_id": EVENT_ID},
                )
            )
            + "\n"
        )
        answer = requests.post(
            f"{es.url}/_bulk",
            data=body,
            timeout=TIMEOUT,
            headers={
                "Authorization": f"ApiKey {ElasticsearchReceiver.API_KEY}",
                "Content-Type": "application/x-ndjson",
            },
        )
        [item] = answer.json()["items"]
        assert answer.status_code == 200 and answer.json()["errors"] and item["create"]["status"] == 400
        assert item["create"]["error"]["type"] == "invalid_index_name_exception" and not es.documents


def test_datadog_accepts_logs_older_than_18_hours_but_never_indexes_them() -> None:
    with DatadogReceiver() as dd:
        old_s = time.time() - 19 * 3600
        logs = [
            {"message": "fresh", "event_id": EVENT_ID, "timestamp": now_ms()},
            {"message": "old", "event_id": OTHER_ID, "timestamp": int(old_s * 1000)},
            {
                "message": "old iso",
                "event_id": str(uuid.uuid4()),
                "timestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(old_s)),
            },
            {"message": "unstamped", "event_id": str(uuid.uuid4())},
        ]
        answer = requests.post(
            f"{dd.url}/api/v2/logs", json=logs, headers={"DD-API-KEY": DatadogReceiver.API_KEY}, timeout=TIMEOUT
        )
        assert answer.status_code == 202 and dd.unindexed == 2
        assert set(dd.received.event_ids) == {EVENT_ID, logs[3]["event_id"]}


@pytest.mark.parametrize(
    "cls", [GrafanaReceiver, NewRelicReceiver, PagerDutyReceiver, OpsgenieReceiver, VictorOpsReceiver]
)
def test_every_new_receiver_honours_script_and_down(cls: type[ContractReceiver]) -> None:
    with cls() as receiver:
        receiver.script.append((429, {"message": "slow down"}, {"Retry-After": "7"}))
        answer = requests.post(f"{receiver.url}/anything", data=b"{}", timeout=TIMEOUT)
        assert (answer.status_code, answer.headers["Retry-After"]) == (429, "7")
        receiver.down = True
        assert requests.post(f"{receiver.url}/anything", data=b"{}", timeout=TIMEOUT).status_code == 503
        assert requests.patch(f"{receiver.url}/anything", data=b"{}", timeout=TIMEOUT).status_code == 503


# -- Grafana -------------------------------------------------------------------------------
def annotate(g: GrafanaReceiver, body: Any, token: str = GrafanaReceiver.TOKEN) -> requests.Response:
    return requests.post(
        f"{g.url}/api/annotations", json=body, headers={"Authorization": f"Bearer {token}"}, timeout=TIMEOUT
    )


def patch_annotation(g: GrafanaReceiver, annotation_id: int, body: Any) -> requests.Response:
    return requests.patch(
        f"{g.url}/api/annotations/{annotation_id}",
        json=body,
        headers={"Authorization": f"Bearer {GrafanaReceiver.TOKEN}"},
        timeout=TIMEOUT,
    )


def annotation(**fields: Any) -> dict[str, Any]:
    return {
        "text": f"Printer HQ FIN 1 is offline [event {EVENT_ID}]",
        "tags": ["printer", "offline"],
        "time": now_ms(),
        "dashboardUID": "printers",
        "panelId": 2,
        **fields,
    }


def test_grafana_adds_annotations_and_counts_the_event_ids_in_their_text(grafana: GrafanaReceiver) -> None:
    assert annotate(grafana, annotation()).json() == {"message": "Annotation added", "id": 1}
    answer = annotate(grafana, {"text": f"[event {OTHER_ID}]"})  # time defaults to now, as in Grafana
    assert (answer.status_code, answer.json()["id"]) == (200, 2)
    assert grafana.received.event_ids == {EVENT_ID: 1, OTHER_ID: 1}
    assert grafana.annotations[1]["tags"] == ["printer", "offline"] and grafana.regions() == []


def test_grafana_region_is_opened_and_closed_by_patching_time_end(grafana: GrafanaReceiver) -> None:
    start = now_ms()
    annotate(grafana, annotation(time=start, timeEnd=start))
    answer = patch_annotation(grafana, 1, {"timeEnd": start + 60_000, "text": f"back online [event {OTHER_ID}]"})
    assert (answer.status_code, answer.json()) == (200, {"message": "Annotation patched"})
    [region] = grafana.regions()
    assert (region["time"], region["timeEnd"], region["tags"]) == (start, start + 60_000, ["printer", "offline"])
    assert grafana.received.event_ids == {EVENT_ID: 1, OTHER_ID: 1}


def test_grafana_finds_the_newest_annotations(grafana: GrafanaReceiver) -> None:
    auth = {"Authorization": f"Bearer {GrafanaReceiver.TOKEN}"}
    annotate(grafana, annotation(time=now_ms() - 1000, text="older"))
    annotate(grafana, annotation(text="newer"))
    found = requests.get(f"{grafana.url}/api/annotations?limit=1", headers=auth, timeout=TIMEOUT)
    assert found.status_code == 200 and [a["text"] for a in found.json()] == ["newer"]
    assert requests.get(f"{grafana.url}/api/annotations", timeout=TIMEOUT).status_code == 401


def test_grafana_patch_checks_like_post_and_knows_its_annotations(grafana: GrafanaReceiver) -> None:
    start = now_ms()
    annotate(grafana, annotation(time=start))
    assert patch_annotation(grafana, 1, {"timeEnd": start - 1}).status_code == 400
    assert patch_annotation(grafana, 1, {"time": start // 1000}).status_code == 400
    assert patch_annotation(grafana, 1, {"text": ""}).status_code == 400
    assert grafana.annotations[1]["time"] == start and grafana.regions() == []
    missing = patch_annotation(grafana, 7, {"timeEnd": start + 1})
    assert (missing.status_code, missing.json()) == (404, {"message": "Could not find annotation to update"})


@pytest.mark.parametrize(
    "headers", [{}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Basic {GrafanaReceiver.TOKEN}"}]
)
def test_grafana_wants_its_bearer_token(grafana: GrafanaReceiver, headers: dict[str, str]) -> None:
    answer = requests.post(f"{grafana.url}/api/annotations", json=annotation(), headers=headers, timeout=TIMEOUT)
    assert (answer.status_code, answer.json()) == (401, {"message": "Unauthorized"})
    assert (
        requests.patch(f"{grafana.url}/api/annotations/1", json={}, headers=headers, timeout=TIMEOUT).status_code == 401
    )
    grafana.auth_broken = True
    assert annotate(grafana, annotation()).status_code == 401 and grafana.annotations == {}


@pytest.mark.parametrize(
    "bad",
    [
        {"text": DROP},
        {"text": ""},
        {"text": "   "},
        {"text": 5},
        {"tags": "printer"},
        {"tags": ["printer", 1]},
        {"time": int(time.time())},
        {"time": float(now_ms())},
        {"time": str(now_ms())},
        {"time": True},
        {"timeEnd": int(time.time())},
        {"time": now_ms(), "timeEnd": now_ms() - 60_000},
        {"dashboardUID": 5},
        {"panelId": "2"},
    ],
    ids=lambda bad: case_id(bad, 60),
)
def test_grafana_refuses_bad_annotations(grafana: GrafanaReceiver, bad: dict[str, Any]) -> None:
    answer = annotate(grafana, override(annotation(), bad))
    assert (answer.status_code, answer.json()["message"]) == (400, "bad request data")
    assert grafana.annotations == {} and not grafana.received.event_ids


def test_grafana_refuses_bodies_that_are_not_a_json_object(grafana: GrafanaReceiver) -> None:
    auth = {"Authorization": f"Bearer {GrafanaReceiver.TOKEN}"}
    for body, content_type in (
        (b"text=x", "application/json"),
        (json.dumps(annotation()).encode(), "text/plain"),
        (json.dumps([annotation()]).encode(), "application/json"),
    ):
        answer = requests.post(
            f"{grafana.url}/api/annotations", data=body, headers={**auth, "Content-Type": content_type}, timeout=TIMEOUT
        )
        assert answer.status_code == 400, body
    assert grafana.annotations == {}


def test_grafana_refuses_a_text_naming_a_refused_event(grafana: GrafanaReceiver) -> None:
    grafana.refuse_ids.add(EVENT_ID)
    assert annotate(grafana, annotation()).json() == {"message": "bad request data", "error": "refused"}
    assert annotate(grafana, annotation(text=f"[event {OTHER_ID}]")).status_code == 200
    assert grafana.received.event_ids == {OTHER_ID: 1}


# -- New Relic -----------------------------------------------------------------------------
def nr_event(**fields: Any) -> dict[str, Any]:
    return {
        "eventType": "ContinuumPrinterEvent",
        "event_id": EVENT_ID,
        "printer_id": "p-1",
        "consecutive_failures": 3,
        "toner_ratio": 0.25,
        "timestamp": int(time.time()),
        **fields,
    }


def nr_post(
    n: NewRelicReceiver,
    events: Any,
    *,
    key: str = NewRelicReceiver.LICENSE_KEY,
    header: str = "Api-Key",
    gzip_body: bool = False,
    account: str = NewRelicReceiver.ACCOUNT_ID,
    extra: dict[str, str] | None = None,
) -> requests.Response:
    body = events if isinstance(events, bytes) else json.dumps(events).encode()
    headers = {header: key, "Content-Type": "application/json", **(extra or {})}
    if gzip_body:
        body, headers["Content-Encoding"] = gzip.compress(body), "gzip"
    return requests.post(f"{n.url}/v1/accounts/{account}/events", data=body, headers=headers, timeout=TIMEOUT)


def test_newrelic_accepts_flat_events_plain_or_gzipped_with_either_key_header(newrelic: NewRelicReceiver) -> None:
    for header in ("Api-Key", "X-Insert-Key"):
        for gzip_body in (False, True):
            answer = nr_post(
                newrelic,
                [nr_event(), nr_event(event_id=OTHER_ID, timestamp=now_ms())],
                header=header,
                gzip_body=gzip_body,
            )
            assert answer.status_code == 200 and answer.json()["success"] is True
            uuid.UUID(answer.json()["uuid"])
    assert newrelic.received.event_ids == {EVENT_ID: 4, OTHER_ID: 4}
    assert len(newrelic.received.bodies) == 8


def test_newrelic_refuses_other_keys_and_accounts(newrelic: NewRelicReceiver) -> None:
    assert nr_post(newrelic, [nr_event()], key="not-the-key").status_code == 403
    assert nr_post(newrelic, [nr_event()], header="X-Other").status_code == 403
    assert nr_post(newrelic, [nr_event()], account="2718281").status_code == 403
    newrelic.auth_broken = True
    assert nr_post(newrelic, [nr_event()]).status_code == 403
    assert not newrelic.received.event_ids


def test_newrelic_media_type_encoding_and_the_one_megabyte_limit(newrelic: NewRelicReceiver) -> None:
    assert nr_post(newrelic, [nr_event()], extra={"Content-Type": "text/plain"}).status_code == 415
    assert nr_post(newrelic, [nr_event()], extra={"Content-Encoding": "deflate"}).status_code == 415
    big = [nr_event(note="x" * 4000, n=i) for i in range(260)]  # ~1.05 MB of JSON
    assert nr_post(newrelic, big).status_code == 413
    assert nr_post(newrelic, big, gzip_body=True).status_code == 200  # the limit is on the bytes as sent


@pytest.mark.parametrize(
    "bad",
    [
        {"eventType": DROP},
        {"eventType": "Printer Event"},
        {"eventType": "Printer-Event"},
        {"eventType": "E" * 256},
        {"eventType": 5},
        {"online": True},
        {"location": None},
        {"protocols": ["ipp"]},
        {"printer": {"id": "p-1"}},
        {"note": "x" * 4097},
        {"note": "é" * 2049},
        {"n" * 256: 1},
        {f"a{i}": i for i in range(250)},
        {"timestamp": int(time.time()) - 25 * 3600},
        {"timestamp": now_ms() - 25 * 3600 * 1000},
        {"timestamp": int(time.time()) + 25 * 3600},
        {"timestamp": now_ms() * 1000},
        {"timestamp": "2026-01-01"},
    ],
    ids=lambda bad: case_id(bad, 60),
)
def test_newrelic_refuses_the_whole_post_for_one_bad_event(newrelic: NewRelicReceiver, bad: dict[str, Any]) -> None:
    answer = nr_post(newrelic, [nr_event(), override(nr_event(event_id=OTHER_ID), bad)])
    assert answer.status_code == 400 and answer.json()["success"] is False
    assert not newrelic.received.event_ids and newrelic.received.bodies == []


@pytest.mark.parametrize(
    "body",
    [json.dumps(nr_event()).encode(), b"[{", b'[{"eventType": "E", "v": NaN}]'],
    ids=["object-not-array", "broken-json", "nan"],
)
def test_newrelic_refuses_bodies_that_are_not_an_array_of_events(newrelic: NewRelicReceiver, body: bytes) -> None:
    assert nr_post(newrelic, body).status_code == 400


def test_newrelic_refuses_a_gzip_header_on_a_plain_body_and_refused_events(newrelic: NewRelicReceiver) -> None:
    assert nr_post(newrelic, [nr_event()], extra={"Content-Encoding": "gzip"}).status_code == 400
    newrelic.refuse_ids.add(OTHER_ID)
    assert nr_post(newrelic, [nr_event(), nr_event(event_id=OTHER_ID)]).status_code == 400
    assert nr_post(newrelic, [nr_event()]).status_code == 200
    assert newrelic.received.event_ids == {EVENT_ID: 1}


# -- PagerDuty -----------------------------------------------------------------------------
KEY = "printer/p-1/offline"


def pd_event(
    action: str = "trigger", dedup_key: str | None = KEY, event_id: str = EVENT_ID, **payload: Any
) -> dict[str, Any]:
    event: dict[str, Any] = {"routing_key": PagerDutyReceiver.ROUTING_KEY, "event_action": action}
    if dedup_key is not None:
        event["dedup_key"] = dedup_key
    if action == "trigger":
        event["payload"] = override(
            {
                "summary": "Printer HQ FIN 1 is offline",
                "source": "continuum",
                "severity": "warning",
                "timestamp": "2026-05-09T07:35:25.123+00:00",
                "component": "p-1",
                "group": "Finance",
                "class": "printer.offline",
                "custom_details": {"event_id": event_id},
            },
            payload,
        )
    return event


def pd_post(p: PagerDutyReceiver, event: Any) -> requests.Response:
    body = event if isinstance(event, bytes) else json.dumps(event).encode()
    return requests.post(
        f"{p.url}/v2/enqueue", data=body, headers={"Content-Type": "application/json"}, timeout=TIMEOUT
    )


def test_pagerduty_incidents_follow_dedup_key_like_pagerduty(pagerduty: PagerDutyReceiver) -> None:
    answer = pd_post(pagerduty, pd_event())
    assert (answer.status_code, answer.json()) == (
        202,
        {"status": "success", "message": "Event processed", "dedup_key": KEY},
    )
    assert pd_post(pagerduty, pd_event(event_id=OTHER_ID)).status_code == 202  # joins the open incident
    [incident] = pagerduty.incidents(KEY)
    assert (incident["status"], incident["alerts"], pagerduty.open_keys()) == ("triggered", 2, {KEY})
    pd_post(pagerduty, pd_event("acknowledge"))
    assert pagerduty.incidents(KEY)[0]["status"] == "acknowledged"
    pd_post(pagerduty, pd_event("resolve"))
    assert pagerduty.incidents(KEY)[0]["status"] == "resolved" and pagerduty.open_keys() == set()
    assert pd_post(pagerduty, pd_event("resolve")).status_code == 202  # nothing open: accepted, nothing happens
    third = str(uuid.uuid4())
    pd_post(pagerduty, pd_event(event_id=third))  # after a resolve the same key opens a new incident
    old, new = pagerduty.incidents(KEY)
    assert old["resolved"] < new["opened"] and new["status"] == "triggered"
    assert (pagerduty.opened_count(KEY), pagerduty.opened_count(), pagerduty.resolves) == (2, 2, 2)
    assert pagerduty.received.event_ids == {EVENT_ID: 1, OTHER_ID: 1, third: 1}


def test_pagerduty_trigger_without_dedup_key_gets_one_and_a_lone_ack_changes_nothing(
    pagerduty: PagerDutyReceiver,
) -> None:
    key = pd_post(pagerduty, pd_event(dedup_key=None)).json()["dedup_key"]
    assert key and pagerduty.open_keys() == {key}
    assert pd_post(pagerduty, pd_event("acknowledge", dedup_key="nothing/open")).status_code == 202
    assert pagerduty.incidents("nothing/open") == [] and pagerduty.opened_count() == 1


@pytest.mark.parametrize("routing_key", [DROP, "0" * 32, PagerDutyReceiver.ROUTING_KEY.upper()], ids=repr)
def test_pagerduty_refuses_a_wrong_routing_key(pagerduty: PagerDutyReceiver, routing_key: Any) -> None:
    answer = pd_post(pagerduty, override(pd_event(), {"routing_key": routing_key}))
    assert (answer.status_code, answer.json()["errors"]) == (400, ["Invalid routing key"])
    pagerduty.auth_broken = True
    assert pd_post(pagerduty, pd_event()).json()["errors"] == ["Invalid routing key"]
    assert pagerduty.opened_count() == 0


@pytest.mark.parametrize(
    "event",
    [
        pd_event("create"),
        override(pd_event(), {"event_action": DROP}),
        pd_event("resolve", dedup_key=None),
        pd_event("acknowledge", dedup_key=None),
        pd_event(dedup_key="k" * 256),
        {**pd_event(), "dedup_key": 5},
        override(pd_event(), {"payload": DROP}),
        pd_event(summary=DROP),
        pd_event(summary=""),
        pd_event(summary="s" * 1025),
        pd_event(source=DROP),
        pd_event(source=" "),
        pd_event(severity=DROP),
        pd_event(severity="fatal"),
        pd_event(severity="CRITICAL"),
        pd_event(timestamp="yesterday"),
        pd_event(timestamp=1_778_312_125),
        pd_event(component=5),
        pd_event(custom_details="printer offline"),
        pd_event(custom_details={"blob": "x" * 600_000}),
        [pd_event()],
        b"{not json",
    ],
    ids=lambda e: case_id(e, 70),
)
def test_pagerduty_refuses_invalid_events(pagerduty: PagerDutyReceiver, event: Any) -> None:
    answer = pd_post(pagerduty, event)
    assert (answer.status_code, answer.json()["status"]) == (400, "invalid event")
    assert pagerduty.opened_count() == 0 and not pagerduty.received.event_ids


def test_pagerduty_throttles_per_rolling_window(pagerduty: PagerDutyReceiver) -> None:
    clock = [1000.0]
    pagerduty.rate_limit, pagerduty.rate_window_s, pagerduty.clock = 3, 60.0, lambda: clock[0]
    assert [pd_post(pagerduty, pd_event()).status_code for _ in range(3)] == [202] * 3
    throttled = pd_post(pagerduty, pd_event())
    assert (throttled.status_code, throttled.json()) == (429, PagerDutyReceiver.THROTTLED)
    clock[0] += 59.0
    assert pd_post(pagerduty, pd_event()).status_code == 429
    clock[0] += 1.5  # the first three left the window
    assert pd_post(pagerduty, pd_event()).status_code == 202
    assert pagerduty.incidents(KEY)[0]["alerts"] == 4


def test_pagerduty_refuses_a_refused_event(pagerduty: PagerDutyReceiver) -> None:
    pagerduty.refuse_ids.add(EVENT_ID)
    assert pd_post(pagerduty, pd_event()).status_code == 400
    assert pagerduty.opened_count() == 0 and not pagerduty.received.event_ids


# -- Opsgenie ------------------------------------------------------------------------------
GENIE = {"Authorization": f"GenieKey {OpsgenieReceiver.API_KEY}"}


def og_alert(alias: str = KEY, event_id: str = EVENT_ID, **fields: Any) -> dict[str, Any]:
    return {
        "message": "Printer HQ FIN 1 is offline",
        "alias": alias,
        "description": "3 failed checks",
        "details": {"event_id": event_id, "printer_id": "p-1"},
        "tags": ["printer", "offline"],
        "entity": "p-1",
        "source": "continuum",
        "priority": "P3",
        **fields,
    }


def og_create(o: OpsgenieReceiver, body: Any, headers: dict[str, str] = GENIE) -> requests.Response:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    return requests.post(
        f"{o.url}/v2/alerts", data=data, headers={**headers, "Content-Type": "application/json"}, timeout=TIMEOUT
    )


def og_close(o: OpsgenieReceiver, identifier: str, kind: str = "alias", body: Any = None) -> requests.Response:
    return requests.post(
        f"{o.url}/v2/alerts/{quote(identifier, safe='')}/close?identifierType={kind}",
        json=body,
        headers=GENIE,
        timeout=TIMEOUT,
    )


def og_outcome(o: OpsgenieReceiver, answer: requests.Response) -> dict[str, Any]:
    assert answer.status_code == 202 and answer.json()["result"] == "Request will be processed", answer.text
    polled = requests.get(f"{o.url}/v2/alerts/requests/{answer.json()['requestId']}", headers=GENIE, timeout=TIMEOUT)
    assert polled.status_code == 200
    return polled.json()["data"]


def test_opsgenie_one_open_alert_per_alias_and_outcomes_read_later(opsgenie: OpsgenieReceiver) -> None:
    created = og_outcome(opsgenie, og_create(opsgenie, og_alert()))
    assert (created["success"], created["action"], created["alias"]) == (True, "Create", KEY)
    again = og_outcome(opsgenie, og_create(opsgenie, og_alert(event_id=OTHER_ID)))
    assert again["alertId"] == created["alertId"]  # deduplicated into the open alert
    [alert] = opsgenie.alerts(KEY)
    assert (alert["status"], alert["count"], opsgenie.open_aliases()) == ("open", 2, {KEY})
    closed = og_outcome(opsgenie, og_close(opsgenie, KEY, body={"source": "continuum", "note": "back online"}))
    assert (closed["success"], closed["action"], opsgenie.open_aliases()) == (True, "Close", set())
    missing = og_outcome(opsgenie, og_close(opsgenie, KEY))  # 202 at once; the outcome tells
    assert (missing["success"], missing["status"]) == (False, "Alert does not exist")
    third = str(uuid.uuid4())
    og_create(opsgenie, og_alert(event_id=third))  # a closed alias opens a new alert
    old, new = opsgenie.alerts(KEY)
    assert old["closed"] < new["opened"] and (old["status"], new["status"]) == ("closed", "open")
    assert (opsgenie.opened_count(KEY), opsgenie.opened_count(), opsgenie.closes) == (2, 2, 2)
    assert opsgenie.received.event_ids == {EVENT_ID: 1, OTHER_ID: 1, third: 1}


def test_opsgenie_close_needs_the_alias_url_encoded(opsgenie: OpsgenieReceiver) -> None:
    alias = "printer/p-1/offline (HQ FIN 1)"
    og_create(opsgenie, og_alert(alias))
    raw = requests.post(f"{opsgenie.url}/v2/alerts/{alias}/close?identifierType=alias", headers=GENIE, timeout=TIMEOUT)
    assert raw.status_code == 404 and opsgenie.open_aliases() == {alias}
    assert og_outcome(opsgenie, og_close(opsgenie, alias))["success"] is True
    assert opsgenie.open_aliases() == set()


def test_opsgenie_close_by_id_or_tiny_id_and_refuses_other_identifier_types(opsgenie: OpsgenieReceiver) -> None:
    first_id = og_outcome(opsgenie, og_create(opsgenie, og_alert("a")))["alertId"]
    og_create(opsgenie, og_alert("b"))
    assert og_outcome(opsgenie, og_close(opsgenie, first_id, kind="id"))["success"] is True
    assert og_outcome(opsgenie, og_close(opsgenie, "2", kind="tiny"))["success"] is True
    assert og_close(opsgenie, "a", kind="name").status_code == 422
    assert og_close(opsgenie, "a", body={"note": 5}).status_code == 422
    assert opsgenie.open_aliases() == set()


@pytest.mark.parametrize(
    "headers", [{}, {"Authorization": "GenieKey wrong"}, {"Authorization": f"Bearer {OpsgenieReceiver.API_KEY}"}]
)
def test_opsgenie_wants_its_genie_key(opsgenie: OpsgenieReceiver, headers: dict[str, str]) -> None:
    answer = og_create(opsgenie, og_alert(), headers=headers)
    assert (answer.status_code, answer.json()["message"]) == (401, "Could not authenticate")
    accepted = og_create(opsgenie, og_alert()).json()["requestId"]
    assert (
        requests.get(f"{opsgenie.url}/v2/alerts/requests/{accepted}", headers=headers, timeout=TIMEOUT).status_code
        == 401
    )
    opsgenie.auth_broken = True
    assert og_create(opsgenie, og_alert()).status_code == 401 and opsgenie.opened_count() == 1


@pytest.mark.parametrize(
    "bad",
    [
        {"message": DROP},
        {"message": ""},
        {"message": "m" * 131},
        {"message": 5},
        {"alias": "a" * 513},
        {"description": "d" * 15001},
        {"details": {"event_id": EVENT_ID, "failures": 3}},
        {"details": ["p-1"]},
        {"tags": "printer,offline"},
        {"tags": ["printer", 1]},
        {"tags": [f"t{i}" for i in range(21)]},
        {"tags": ["t" * 51]},
        {"priority": "P6"},
        {"priority": "high"},
        {"entity": 5},
        {"source": "s" * 101},
        {"user": 5},
        {"note": "n" * 25001},
        {"details": {"event_id": EVENT_ID, "trace": "t" * 7990}},
    ],
    ids=lambda bad: case_id(bad, 60),
)
def test_opsgenie_refuses_invalid_alerts_with_422(opsgenie: OpsgenieReceiver, bad: dict[str, Any]) -> None:
    answer = og_create(opsgenie, override(og_alert(), bad))
    assert answer.status_code == 422 and answer.json()["errors"], answer.text
    assert opsgenie.opened_count() == 0 and not opsgenie.received.event_ids


def test_opsgenie_refuses_broken_json_other_media_types_and_refused_events(opsgenie: OpsgenieReceiver) -> None:
    assert og_create(opsgenie, b'{"message": ').status_code == 400
    assert og_create(opsgenie, [og_alert()]).status_code == 400
    plain = requests.post(
        f"{opsgenie.url}/v2/alerts",
        data=json.dumps(og_alert()),
        headers={**GENIE, "Content-Type": "text/plain"},
        timeout=TIMEOUT,
    )
    assert plain.status_code == 415
    opsgenie.refuse_ids.add(EVENT_ID)
    assert og_create(opsgenie, og_alert()).status_code == 422
    assert opsgenie.opened_count() == 0 and not opsgenie.received.event_ids


def test_opsgenie_outcome_may_not_be_ready_yet(opsgenie: OpsgenieReceiver) -> None:
    opsgenie.pending_polls = 2
    request_id = og_create(opsgenie, og_alert()).json()["requestId"]
    url = f"{opsgenie.url}/v2/alerts/requests/{request_id}"
    assert [requests.get(url, headers=GENIE, timeout=TIMEOUT).status_code for _ in range(3)] == [404, 404, 200]
    assert (
        requests.get(f"{opsgenie.url}/v2/alerts/requests/{uuid.uuid4()}", headers=GENIE, timeout=TIMEOUT).status_code
        == 404
    )


# -- VictorOps -----------------------------------------------------------------------------
def vo_post(
    v: VictorOpsReceiver,
    body: Any,
    api_key: str = VictorOpsReceiver.API_KEY,
    routing_key: str = VictorOpsReceiver.ROUTING_KEY,
) -> requests.Response:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    answer = requests.post(
        f"{v.url}/integrations/generic/20131114/alert/{api_key}/{routing_key}",
        data=data,
        headers={"Content-Type": "application/json"},
        timeout=TIMEOUT,
    )
    assert VictorOpsReceiver.API_KEY not in answer.text and api_key not in answer.text
    return answer


def vo_alert(
    message_type: str = "CRITICAL", entity_id: str | None = KEY, event_id: str = EVENT_ID, **fields: Any
) -> dict[str, Any]:
    alert = {
        "message_type": message_type,
        "entity_display_name": "HQ FIN 1 offline",
        "state_message": "3 failed checks",
        "timestamp": int(time.time()),
        "state_start_time": int(time.time()),
        "event_id": event_id,
        "monitoring_tool": "continuum",
        **fields,
    }
    return alert if entity_id is None else {**alert, "entity_id": entity_id}


def test_victorops_incidents_follow_entity_id(victorops: VictorOpsReceiver) -> None:
    answer = vo_post(victorops, vo_alert())
    assert (answer.status_code, answer.json()) == (200, {"result": "success", "entity_id": KEY})
    vo_post(victorops, vo_alert("warning", event_id=OTHER_ID))  # case-insensitive; updates the open incident
    vo_post(victorops, vo_alert("INFO", event_id=str(uuid.uuid4())))  # timeline only
    [incident] = victorops.incidents(KEY)
    assert (incident["status"], incident["alerts"], incident["routing_key"]) == ("triggered", 2, "printers")
    vo_post(victorops, vo_alert("ACKNOWLEDGEMENT", event_id=str(uuid.uuid4())))
    assert victorops.incidents(KEY)[0]["status"] == "acknowledged" and victorops.open_entities() == {KEY}
    vo_post(victorops, vo_alert("Recovery", event_id=str(uuid.uuid4())))
    assert victorops.open_entities() == set()
    assert vo_post(victorops, vo_alert("RECOVERY", entity_id="never/opened")).status_code == 200
    vo_post(victorops, vo_alert(event_id=str(uuid.uuid4())))  # after recovery: a new incident
    old, new = victorops.incidents(KEY)
    assert old["resolved"] < new["opened"] and victorops.opened_count(KEY) == victorops.opened_count() == 2
    assert len(victorops.timeline) == 7 and sum(victorops.received.event_ids.values()) == 7


def test_victorops_warning_alone_opens_no_incident(victorops: VictorOpsReceiver) -> None:
    assert vo_post(victorops, vo_alert("WARNING")).status_code == 200
    assert victorops.opened_count() == 0 and victorops.open_entities() == set() and len(victorops.timeline) == 1
    vo_post(victorops, vo_alert("CRITICAL", event_id=OTHER_ID))
    assert victorops.open_entities() == {KEY}


def test_victorops_info_needs_no_entity_id(victorops: VictorOpsReceiver) -> None:
    answer = vo_post(victorops, vo_alert("INFO", entity_id=None))
    assert answer.status_code == 200 and answer.json()["entity_id"]
    assert victorops.opened_count() == 0 and len(victorops.timeline) == 1


def test_victorops_refuses_a_wrong_api_key_without_echoing_it(victorops: VictorOpsReceiver) -> None:
    answer = vo_post(victorops, vo_alert(), api_key="0" * 36)
    assert (answer.status_code, answer.json()["result"]) == (403, "failure")
    victorops.auth_broken = True
    assert vo_post(victorops, vo_alert()).status_code == 403
    assert victorops.opened_count() == 0 and not victorops.received.event_ids


@pytest.mark.parametrize(
    "alert",
    [
        override(vo_alert(), {"message_type": DROP}),
        vo_alert("PAGE"),
        vo_alert("CRIT"),
        {**vo_alert(), "message_type": 5},
        vo_alert(entity_id=None),
        vo_alert("RECOVERY", entity_id=None),
        vo_alert(entity_id=""),
        {**vo_alert(), "entity_id": 5},
        vo_alert(timestamp=now_ms()),
        vo_alert(timestamp=time.time()),
        vo_alert(timestamp=str(int(time.time()))),
        vo_alert(timestamp=True),
        vo_alert(state_start_time=now_ms()),
        vo_alert(entity_display_name=5),
        vo_alert(state_message=["offline"]),
        [vo_alert()],
        b"message_type=CRITICAL",
    ],
    ids=lambda a: case_id(a, 70),
)
def test_victorops_refuses_invalid_alerts(victorops: VictorOpsReceiver, alert: Any) -> None:
    answer = vo_post(victorops, alert)
    assert (answer.status_code, answer.json()["result"]) == (400, "failure")
    assert victorops.timeline == [] and not victorops.received.event_ids


def test_victorops_refuses_a_refused_event(victorops: VictorOpsReceiver) -> None:
    victorops.refuse_ids.add(EVENT_ID)
    assert vo_post(victorops, vo_alert()).status_code == 400
    assert vo_post(victorops, vo_alert(event_id=OTHER_ID)).status_code == 200
    assert victorops.received.event_ids == {OTHER_ID: 1}


def test_grafana_answers_500_for_a_tag_longer_than_its_sql_column(grafana: GrafanaReceiver) -> None:
    assert annotate(grafana, annotation(tags=["location:" + "x" * 100])).status_code == 200
    assert annotate(grafana, annotation(tags=["location:" + "x" * 101])).status_code == 500
