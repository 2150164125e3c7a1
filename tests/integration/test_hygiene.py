"""Alert hygiene in the real router, on the embedded broker: a site's outage is one
incident, a flapping printer one flapping incident and one resolve, and a router
SIGKILLed in the middle of both neither pages again nor loses a resolve. Table
state recovery is exact (every held page of 1,500 is released after a SIGKILL)."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from continuum_events.broker import LocalBroker, local_broker
from continuum_events.config import write_hygiene
from continuum_events.connectors.incidents import incidents_of
from continuum_events.events import EventType
from continuum_events.history import history_consumer, watermarks
from continuum_events.hygiene import FlapPolicy, GroupPolicy, HygienePolicy
from continuum_events.producers import EventProducer
from continuum_events.settings import KafkaSettings
from continuum_events.topology import HYGIENE_STATE, category_topic
from tests.kafka_helpers import Received, read_topic
from tests.router_helpers import RouterProcess

pytestmark = pytest.mark.broker
POLICY = HygienePolicy(
    flapping=FlapPolicy(changes=4, window_s=300, quiet_s=15),
    grouping=GroupPolicy(threshold=10, window_s=60, hold_s=10, resolve_ratio=1.0, update_s=3, update_growth=0),
)


@pytest.fixture(scope="module")
def hbroker() -> Iterator[LocalBroker]:
    with local_broker() as broker:
        yield broker


@pytest.fixture(scope="module")
def settings(hbroker) -> KafkaSettings:
    settings = KafkaSettings(bootstrap_servers=hbroker.bootstrap_servers)
    write_hygiene(settings, POLICY)
    return settings


@pytest.fixture
def router(hbroker, settings) -> Iterator[RouterProcess]:
    worker = RouterProcess(hbroker.bootstrap_servers).start()
    yield worker
    worker.stop()


def dispatch(settings: KafkaSettings, tmp: Path, pages: list[tuple[str, str, str, float | None]]) -> list[str]:
    """(type, printer, location, seconds ago or None) -> event ids."""
    with EventProducer(settings, spool_path=tmp / f"spool-{time.time_ns()}.db") as producer:
        ids = [
            producer.dispatch(
                EventType(kind),
                {"printer_id": pid, "printer_location": location, "consecutive_failures": 3},
                "warning",
                timestamp_us=None if ago is None else int((time.time() - ago) * 1e6),
            )
            for kind, pid, location, ago in pages
        ]
        assert producer.flush(10) == 0
    return ids


def alerting(settings: KafkaSettings, until=None, timeout: float = 90) -> list[Received]:
    return read_topic(settings.bootstrap_servers, category_topic("alerting"), until=until, timeout=timeout, idle=3)


def transitions(records: list[Received], prefix: str) -> Counter[tuple[str, str]]:
    """Distinct incident transitions (key, action), one per event id: what a vendor pages."""
    seen, out = set(), Counter()
    for r in records:
        if r.event.event_id in seen:
            continue  # a re-emission after a crash is the same event (the ledger sends it once)
        seen.add(r.event.event_id)
        if "previous_count" in r.event.details:
            continue  # a growth update: the same incident told its new count, not another page
        for incident in incidents_of(r.event):
            if incident.key.startswith(prefix):
                out[(incident.key, incident.action)] += 1
    return out


@pytest.mark.slow
def test_a_sites_outage_is_one_incident_even_across_a_router_kill(settings, router, tmp_path) -> None:
    site = "Finance-3F"
    printers = [f"fin-{n:03d}" for n in range(200)]
    dispatch(settings, tmp_path, [("printer.offline", p, site, None) for p in printers[:100]])
    alerting(settings, until=lambda rs: any(r.event.event_type is EventType.GROUP_OUTAGE for r in rs))
    router.kill()  # in the middle: the group is open, half the site still to come
    router.start()
    dispatch(settings, tmp_path, [("printer.offline", p, site, None) for p in printers[100:]])
    logging = read_topic(
        settings.bootstrap_servers,
        category_topic("logging"),
        timeout=90,
        idle=5,
        until=lambda rs: sum(r.event.payload.get("printer_location") == site for r in rs) >= 200,
    )
    assert sum(r.event.payload.get("printer_location") == site for r in logging) >= 200, "logging gets every event"
    time.sleep(POLICY.grouping.hold_s + 4)  # any page wrongly held would be released by now

    records = alerting(settings)
    opened = transitions(records, "group/location:Finance-3F")
    assert opened == {("group/location:Finance-3F/outage", "trigger"): 1}, opened
    assert not transitions(records, "printer/fin-"), "no printer of the site paged on its own"
    outage = next(r.event for r in records if r.event.event_type is EventType.GROUP_OUTAGE)
    assert int(outage.details["count"]) > POLICY.grouping.threshold
    records = alerting(settings, until=lambda rs: any(r.event.details.get("count") == "200" for r in rs))
    updates = [
        r.event for r in records if r.event.event_type is EventType.GROUP_OUTAGE and "previous_count" in r.event.details
    ]
    assert updates and updates[-1].details["count"] == "200", "the grown outage's incident is told its count"
    assert {u.payload["group_id"] for u in updates} == {outage.payload["group_id"]}, "the same incident"

    router.kill()  # and again while they come back
    router.start()
    dispatch(settings, tmp_path, [("printer.online", p, site, None) for p in printers])
    records = alerting(settings, until=lambda rs: any(r.event.details.get("state") == "resolved" for r in rs))
    assert transitions(records, "group/location:Finance-3F") == {
        ("group/location:Finance-3F/outage", "trigger"): 1,
        ("group/location:Finance-3F/outage", "resolve"): 1,
    }
    assert not transitions(records, "printer/fin-"), "nor on the way back"


@pytest.mark.slow
def test_a_flapping_printer_is_one_incident_and_one_resolve_across_a_router_kill(settings, router, tmp_path) -> None:
    pid, toggles = "lab-7", 10
    kinds = ["printer.offline" if n % 2 == 0 else "printer.online" for n in range(toggles)]
    for kind in kinds[:6]:  # ten changes within the five-minute window, as they happen
        dispatch(settings, tmp_path, [(kind, pid, "Lab", None)])
        time.sleep(0.3)
    alerting(settings, until=lambda rs: any(r.event.event_type is EventType.PRINTER_FLAPPING for r in rs))
    router.kill()  # in the middle: flapping, pages held
    router.start()
    for kind in kinds[6:]:
        dispatch(settings, tmp_path, [(kind, pid, "Lab", None)])
        time.sleep(0.3)
    records = alerting(
        settings,
        timeout=120,
        until=lambda rs: any(
            r.event.event_type is EventType.PRINTER_FLAPPING
            and r.event.details.get("state") == "stable"
            and r.event.payload.get("printer_id") == pid
            for r in rs
        ),
    )
    flapping = transitions(records, f"printer/{pid}/flapping")
    assert flapping == {(f"printer/{pid}/flapping", "trigger"): 1, (f"printer/{pid}/flapping", "resolve"): 1}
    own = transitions(records, f"printer/{pid}/offline")
    assert own.get((f"printer/{pid}/offline", "trigger"), 0) == 0, "no offline page: held, then flapping"


@pytest.mark.slow
def test_state_recovery_is_exact_after_a_kill(settings, router, tmp_path) -> None:
    """1,500 pages of 1,500 locations are held; the router is killed once their state is
    written; after the restart every one is released once its hold ends: none lost."""
    count = 1_500
    ids = dispatch(settings, tmp_path, [("printer.offline", f"rec-{n}", f"Site-{n}", None) for n in range(count)])
    _wait_for_state(settings, count)
    time.sleep(2.5)  # past a commit: the pages will not be read again, their state lives in the topic only
    router.kill()
    router.start()
    records = alerting(settings, timeout=120, until=lambda rs: len({r.event.event_id for r in rs} & set(ids)) >= count)
    released = Counter(r.event.event_id for r in records if r.event.event_id in set(ids))
    assert len(released) == count, f"{count - len(released)} held pages lost in recovery"


def _wait_for_state(settings: KafkaSettings, count: int, timeout: float = 90) -> int:
    """The state topic's record count, once it holds at least ``count`` records."""
    deadline = time.monotonic() + timeout
    while True:
        consumer = history_consumer(settings, "test")
        try:
            total = sum(r.end for r in watermarks(consumer, HYGIENE_STATE).values())
        finally:
            consumer.close()
        if total >= count or time.monotonic() > deadline:
            return total
        time.sleep(0.5)
