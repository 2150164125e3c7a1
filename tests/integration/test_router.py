"""The Faust router against the real embedded broker: the routing table, live rules,
the dead-letter path, SIGKILLs and a second worker."""

from __future__ import annotations

import contextlib
import json
import os
import threading
import time
import types
from collections import Counter, defaultdict
from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka import Producer

from continuum_events.broker import LocalBroker, default_engine, local_broker
from continuum_events.cli.router import GUARANTEE_ENV
from continuum_events.config import delete_rule, write_rule
from continuum_events.events import EventType
from continuum_events.monitor import FlowMonitor
from continuum_events.producers import EventProducer
from continuum_events.rules import MASK, Rule
from continuum_events.settings import KafkaSettings
from continuum_events.topology import EVENTS_DLQ_TOPIC, category_topic
from tests.kafka_helpers import Received, read_topic
from tests.router_helpers import RouterProcess
from tests.samples import ALL_TYPES, expected_categories, full_payload

pytestmark = pytest.mark.broker
REPORTS = Path(".state/reports")


@pytest.fixture(scope="module")
def rbroker() -> Iterator[LocalBroker]:
    """A broker of this module's own: the router reads all of printer-events."""
    with local_broker() as broker:
        yield broker


@pytest.fixture(scope="module")
def router(rbroker: LocalBroker) -> Iterator[RouterProcess]:
    worker = RouterProcess(rbroker.bootstrap_servers).start()
    yield worker
    assert worker.stop() == 0, worker.tail()


@pytest.fixture
def producer(rbroker: LocalBroker, tmp_path: Path) -> Iterator[EventProducer]:
    with EventProducer(KafkaSettings(bootstrap_servers=rbroker.bootstrap_servers), spool_path=tmp_path / "s.db") as p:
        yield p


def collect(
    bootstrap: str,
    ids: set[str],
    categories=("logging", "monitoring", "alerting"),
    timeout: float = 60,
    expect: dict[str, int] | None = None,
) -> dict[str, list[Received]]:
    """Records of ``ids`` on each category topic; waits until ``expect`` counts (or idle)."""
    out = {}
    for c in categories:
        want = (expect or {}).get(c)
        got = read_topic(
            bootstrap,
            category_topic(c),
            timeout=timeout,
            idle=4,
            until=(lambda rs, w=want: len({r.event.event_id for r in rs} & ids) >= w) if want else None,
        )
        out[c] = [r for r in got if r.event.event_id in ids]
    return out


def test_every_event_type_reaches_exactly_its_categories(router, producer, rbroker) -> None:
    sent = {}
    for i, t in enumerate(ALL_TYPES):
        payload = full_payload(t.family, i)
        sent[producer.dispatch(t, payload)] = t.value
    assert producer.flush(10) == 0
    expect = Counter(c for t in sent.values() for c in expected_categories(t))
    routed = collect(rbroker.bootstrap_servers, set(sent), expect=expect)
    for event_id, event_type in sent.items():
        reached = {c for c, records in routed.items() if any(r.event.event_id == event_id for r in records)}
        assert reached == expected_categories(event_type), event_type
    sample = routed["alerting"][0]
    assert sample.headers["continuum.rule"] == b"alerting-default"
    assert sample.headers["continuum.category"] == b"alerting"
    assert sample.key.startswith(b"printer:") or sample.key.startswith(b"system:")


def test_the_router_logs_while_it_runs(router, producer, rbroker) -> None:
    """Its summary line every 10 s reaches its log (the kept CLI handler once wrote into a
    stdout Faust had pointed back at a logger, and every line was dropped)."""
    producer.dispatch(ALL_TYPES[0], full_payload(ALL_TYPES[0].family, 0))
    assert producer.flush(10) == 0
    deadline = time.monotonic() + 30
    while "routed: " not in router.tail(200) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert "routed: " in router.tail(200), router.tail()


def continuum_calls(dispatch_event, EventType) -> list[str]:
    """Calls as Continuum's code writes them, with its models' values: integer ids, a health
    check's float (or None) where a count is expected, protocols as a comma string, integer
    error codes, upper-case severities, extra context keys, the usage example without an id.
    Each inside ``try/except Exception`` as the app does: an exception is a lost event."""
    printer = types.SimpleNamespace(
        id=42, name="Finance 3F", ip_address="10.1.2.3", location="HQ", protocols="raw,ipp,lpd"
    )
    redirect_obj = types.SimpleNamespace(id=7, source_printer_id=42, target_printer_id=43, port="9100")
    calls = [
        (
            EventType.PRINTER_ADDED,
            {
                "printer_id": printer.id,
                "printer_name": printer.name,
                "printer_ip": printer.ip_address,
                "protocols": printer.protocols,
                "created_by": "admin",
            },
            "info",
        ),
        (
            EventType.PRINTER_OFFLINE,
            {"printer_id": printer.id, "printer_name": printer.name, "consecutive_failures": 1532.4},
            "warning",
        ),
        (EventType.PRINTER_OFFLINE, {"printer_id": printer.id, "consecutive_failures": None}, "WARNING"),
        (EventType.PRINTER_ONLINE, {"printer_id": printer.id, "response_time_ms": 12}, "info"),
        (
            EventType.PRINTER_ERROR,
            {"printer_id": printer.id, "error_code": 500, "error_message": "Fuser fault", "tray": 2},
            "ERROR",
        ),
        (
            EventType.REDIRECT_CREATED,
            {
                "redirect_id": redirect_obj.id,
                "source_printer_id": redirect_obj.source_printer_id,
                "target_printer_id": redirect_obj.target_printer_id,
                "port": redirect_obj.port,
                "protocol": "raw",
            },
            "info",
        ),
        (
            EventType.REDIRECT_FAILED,
            {
                "redirect_id": redirect_obj.id,
                "source_printer_id": 42,
                "error_code": 111,
                "error_message": "Connection refused",
            },
            "Error",
        ),
        (EventType.PRINTER_OFFLINE, {"printer_name": "Lobby", "printer_ip": "10.0.0.9"}, "warning"),
        (EventType.GROUP_CREATED, {"group_id": 3, "group_name": "Floor 2", "printer_ids": [42, 43]}, None),
        (EventType.JOB_FAILED, {"job_id": 1001, "printer_id": printer.id, "pages": 3.0, "user": "alice"}, None),
        (EventType.SYSTEM_ERROR, {"component": "scheduler", "message": "queue stalled", "error_code": 2}, "CRITICAL"),
    ]
    ids = []
    for event_type, data, severity in calls:
        try:
            ids.append(dispatch_event(event_type, data, severity=severity))
        except Exception as exc:  # what Continuum does: log, and the event is gone
            ids.append(f"lost: {exc}")
    return ids


def test_continuums_own_calls_with_model_values_arrive_routed(router, rbroker, tmp_path) -> None:
    from continuum_events import dropin
    from continuum_events.producers import configure

    producer = configure(
        settings=KafkaSettings(bootstrap_servers=rbroker.bootstrap_servers), spool_path=tmp_path / "s.db"
    )
    try:
        dropin.install()
        from app.services.integrations import EventType as ContinuumTypes  # the app's import path
        from app.services.integrations import dispatch_event

        ids = continuum_calls(dispatch_event, ContinuumTypes)
        assert producer.flush(10) == 0
        stats = producer.stats()
    finally:
        producer.close()
    assert not [i for i in ids if i.startswith("lost")], ids
    assert (stats.refused, stats.adjusted) == (0, len(ids))
    routed = collect(rbroker.bootstrap_servers, set(ids), expect={"logging": len(ids)})
    logged = {r.event.event_id: r.event for r in routed["logging"]}
    assert set(logged) == set(ids)
    for event_id, event in logged.items():
        reached = {c for c, records in routed.items() if any(r.event.event_id == event_id for r in records)}
        assert reached == expected_categories(event.event_type.value), event
    first, offline, _, _, error, redirect, failed, lobby, *_ = (logged[i] for i in ids)
    assert first.payload["printer_id"] == "42" and first.payload["protocols"] == ["raw", "ipp", "lpd"]
    assert offline.details["consecutive_failures"] == "1532.4" and offline.payload["consecutive_failures"] is None
    assert error.payload["error_code"] == "500" and error.details["tray"] == "2" and error.severity == "error"
    assert redirect.payload["port"] == 9100 and failed.severity == "error"
    assert lobby.payload["printer_id"] == "10.0.0.9"


def test_a_rule_change_applies_to_the_next_events_without_restart(router, producer, rbroker) -> None:
    settings = KafkaSettings(bootstrap_servers=rbroker.bootstrap_servers)
    rule = Rule(
        name="finance-jams",
        category="alerting",
        event_types=("printer.jam", "printer.offline"),
        where={"printer_department": "Finance"},
        mask=("printer_ip",),
        priority=10,
    )
    write_rule(settings, rule)
    try:
        time.sleep(1.5)  # followers poll the config topic continuously; well under a second in practice
        finance = producer.dispatch(
            EventType.PRINTER_JAM, {"printer_id": "f-1", "printer_department": "Finance", "printer_ip": "10.9.9.9"}
        )
        legal = producer.dispatch(EventType.PRINTER_JAM, {"printer_id": "l-1", "printer_department": "Legal"})
        legal_offline = producer.dispatch(
            EventType.PRINTER_OFFLINE, {"printer_id": "l-2", "printer_department": "Legal"}
        )
        producer.flush(10)
        routed = collect(
            rbroker.bootstrap_servers,
            {finance, legal, legal_offline},
            ("alerting", "logging"),
            expect={"logging": 3, "alerting": 1},
        )
        alerts = {r.event.event_id: r for r in routed["alerting"]}
        assert set(alerts) == {finance}, "a configured rule replaces the category's built-in default"
        assert alerts[finance].headers["continuum.rule"] == b"finance-jams"
        assert alerts[finance].event.payload["printer_ip"] == MASK
        assert {r.event.event_id for r in routed["logging"]} == {finance, legal, legal_offline}
    finally:
        delete_rule(settings, rule.name)
    time.sleep(1.5)
    back = producer.dispatch(EventType.PRINTER_OFFLINE, {"printer_id": "l-3", "printer_department": "Legal"})
    producer.flush(10)
    assert collect(rbroker.bootstrap_servers, {back}, ("alerting",), expect={"alerting": 1})["alerting"], (
        "deleting the rule restores the default"
    )


def test_bad_records_are_dead_lettered_with_reasons_and_the_stream_continues(router, producer, rbroker) -> None:
    raw = Producer({"bootstrap.servers": rbroker.bootstrap_servers})
    bad = [b"not avro at all", b"\xc3\x01" + bytes(8) + b"\x02", producer.codec.prefix("printer-events") + b"\xff\xff"]
    for i, value in enumerate(bad):
        raw.produce("printer-events", value, f"printer:bad-{i}".encode())
    raw.flush(10)
    good = producer.dispatch(EventType.PRINTER_ONLINE, {"printer_id": "bad-0"})  # same key: same partition, after
    producer.flush(10)
    assert collect(rbroker.bootstrap_servers, {good}, ("logging",), expect={"logging": 1})["logging"]

    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer({"bootstrap.servers": rbroker.bootstrap_servers, "group.id": "dlq-reader"})
    consumer.assign([TopicPartition(EVENTS_DLQ_TOPIC, 0, 0)])
    letters, deadline = [], time.monotonic() + 20
    while len(letters) < 3 and time.monotonic() < deadline:
        msg = consumer.poll(0.5)
        if msg is not None and not msg.error() and msg.value() in bad:
            letters.append(msg)
    consumer.close()
    assert sorted(m.value() for m in letters) == sorted(bad), "every bad record kept, bytes unchanged"
    for m in letters:
        headers = {k: v.decode() for k, v in m.headers()}
        assert headers["dlq.stage"] == "router" and headers["dlq.exception"] == "DecodeError"
        assert headers["dlq.topic"] == "printer-events" and int(headers["dlq.offset"]) >= 0
        assert headers["dlq.reason"].startswith(f"cannot decode printer-events[{headers['dlq.partition']}]@")
    reasons = " | ".join(dict(m.headers())["dlq.reason"].decode() for m in letters)
    assert "unknown framing" in reasons and "unknown schema fingerprint" in reasons and "corrupt Avro body" in reasons


def _stream(producer: EventProducer, n: int, rate: float, ids: dict[str, str], done: threading.Event) -> None:
    started = time.monotonic()
    for i in range(n):
        t = ALL_TYPES[i % len(ALL_TYPES)]
        payload = full_payload(t.family, i % 300)
        ids[producer.dispatch(t, payload)] = t.value
        if i % 250 == 0:
            ahead = i / rate - (time.monotonic() - started)
            if ahead > 0:
                time.sleep(ahead)
    producer.flush(30)
    done.set()


def _check_complete(bootstrap: str, ids: dict[str, str], timeout: float) -> dict[str, int]:
    expect = Counter(c for t in ids.values() for c in expected_categories(t))
    routed = collect(bootstrap, set(ids), expect=expect, timeout=timeout)
    duplicates = {}
    for category, records in routed.items():
        seen = Counter(r.event.event_id for r in records)
        owed = {i for i, t in ids.items() if category in expected_categories(t)}
        lost = owed - set(seen)
        assert not lost, f"{len(lost)} of {len(owed)} events never reached {category}"
        assert set(seen) <= owed, f"{category} received events it should not"
        duplicates[category] = sum(seen.values()) - len(seen)
    return duplicates


#: `make faults` (CONTINUUM_FAULT_SCALE=full): 5 kills in 50,000 events; the suite: 3 in 20,000.
ROUTER_EVENTS, ROUTER_KILLS = (50_000, 5) if os.environ.get("CONTINUUM_FAULT_SCALE") == "full" else (20_000, 3)


@pytest.mark.slow
@pytest.mark.parametrize("guarantee", ["at-least-once", "exactly-once"])
def test_sigkills_while_events_flow_lose_nothing(tmp_path, guarantee: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """At-least-once: nothing lost, about a commit interval of duplicates per kill. Exactly-once
    (Apache Kafka: outputs and input offsets in one transaction, read read_committed): nothing
    lost and nothing twice."""
    if guarantee == "exactly-once" and default_engine() != "kafka":
        pytest.skip("Tansu delivers aborted transactions to read_committed consumers (BROKER.md)")
    monkeypatch.setenv(GUARANTEE_ENV, guarantee)  # read by the router processes
    with local_broker() as broker:
        worker = RouterProcess(broker.bootstrap_servers, "killed").start()
        ids: dict[str, str] = {}
        try:
            kills_at = _kill_while_flowing(broker, worker, ids, tmp_path)
            duplicates = _check_complete(broker.bootstrap_servers, ids, timeout=180)
            assert worker.stop() == 0, worker.tail()
        finally:
            worker.kill()
    REPORTS.mkdir(parents=True, exist_ok=True)
    report = {
        "guarantee": guarantee,
        "events": len(ids),
        "kills": ROUTER_KILLS,
        "outputs_at_kills": kills_at,
        "lost": 0,
        "duplicates": duplicates,
    }
    (REPORTS / f"router-sigkill-{guarantee}.json").write_text(json.dumps(report, indent=2))
    print(
        f"\nrouter ({guarantee}) SIGKILL x{ROUTER_KILLS} over {len(ids)} events (kills after {kills_at} logging "
        f"outputs): 0 lost, duplicates per category {duplicates}"
    )
    if guarantee == "exactly-once":
        assert not any(duplicates.values()), f"duplicates under exactly-once: {duplicates}"


def _kill_while_flowing(broker, worker, ids, tmp_path) -> list[int]:
    done = threading.Event()
    settings = KafkaSettings(bootstrap_servers=broker.bootstrap_servers)
    outputs = FlowMonitor(settings, category_topic("logging")).start()
    kills_at = []
    with EventProducer(settings, spool_path=tmp_path / "s.db") as p:
        feeder = threading.Thread(target=_stream, args=(p, ROUTER_EVENTS, 2_000, ids, done))
        feeder.start()
        for _ in range(ROUTER_KILLS):
            # Kill only a worker that is routing: 1,500 more outputs since it (re)started.
            mark = outputs.snapshot().total
            deadline = time.monotonic() + 60
            while outputs.snapshot().total < mark + 1_500 and time.monotonic() < deadline:
                time.sleep(0.05)
            assert time.monotonic() < deadline, f"the worker made no progress\n{worker.tail()}"
            worker.kill()
            kills_at.append(outputs.snapshot().total)
            worker.start()
        feeder.join()
    outputs.stop()
    assert kills_at[-1] < ROUTER_EVENTS, "the last kill came after all events were routed"
    return kills_at


def _source_partition(r: Received) -> int:
    return int(r.headers["continuum.source"].decode().split("[")[1].split("]")[0])


@pytest.mark.slow
def test_two_workers_split_the_partitions_and_a_clean_stop_hands_over(tmp_path) -> None:
    with local_broker() as broker:
        bootstrap = broker.bootstrap_servers
        first = RouterProcess(bootstrap, "first").start()
        second = RouterProcess(bootstrap, "second").start()
        warmup, steady, after = {}, {}, {}
        with contextlib.ExitStack() as cleanup:
            cleanup.callback(first.kill)
            cleanup.callback(second.kill)
            _split_and_hand_over(bootstrap, first, second, warmup, steady, after, tmp_path)


def _split_and_hand_over(bootstrap, first, second, warmup, steady, after, tmp_path) -> None:
    with EventProducer(KafkaSettings(bootstrap_servers=bootstrap), spool_path=tmp_path / "s.db") as p:
        _stream(p, 2_000, 1_000, warmup, threading.Event())
        collect(bootstrap, set(warmup), ("logging",), expect={"logging": 2_000})
        time.sleep(8)  # past any rebalance the second worker's join caused
        _stream(p, 3_000, 1_000, steady, threading.Event())
        routed = collect(bootstrap, set(steady), ("logging",), expect={"logging": 3_000})["logging"]
        by_worker: dict[bytes, set[int]] = defaultdict(set)
        for r in routed:
            by_worker[r.headers["continuum.router"]].add(_source_partition(r))
        assert len(by_worker) == 2, f"one worker did everything: {dict(by_worker)}"
        assert not set.intersection(*by_worker.values()), f"a partition routed by both: {dict(by_worker)}"
        assert set.union(*by_worker.values()) == set(range(6))

        assert first.stop() == 0, first.tail()
        _stream(p, 3_000, 1_000, after, threading.Event())
    try:
        _check_complete(bootstrap, {**warmup, **steady, **after}, timeout=90)
        routed_after = collect(bootstrap, set(after), ("logging",), expect={"logging": 3_000})["logging"]
        assert {r.headers["continuum.router"] for r in routed_after} == {
            next(w for w in by_worker if w.endswith(str(second.process.pid).encode()))
        }, "after the clean stop, the remaining worker routes everything"
    finally:
        assert second.stop() == 0, second.tail()
