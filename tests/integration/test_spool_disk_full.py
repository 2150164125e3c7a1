"""The producer's spool on a disk that fills up while the brokers are away: the caller
hears about it, nothing is acknowledged that was not stored, a broker that comes back
while the disk is still full drains nothing and loses nothing, and once the disk has
room every acknowledged event arrives."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import threading
import time
from pathlib import Path

import pytest

from continuum_events.broker import LocalBroker
from continuum_events.codec import EventCodec
from continuum_events.producers import EventProducer, SpoolFull
from continuum_events.producers.spool import SpoolUnavailable
from continuum_events.settings import KafkaSettings
from tests.integration.test_producer import printer_event
from tests.kafka_helpers import read_topic
from tests.unit.test_spool import resize, tiny_tmpfs

pytestmark = pytest.mark.broker


def spooled_event_ids(path: Path) -> set[str]:
    """What the spool file holds, read by a connection of its own."""
    codec = EventCodec()
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return {
            codec.decode(value, topic, 0, seq).event_id
            for seq, topic, value in db.execute("SELECT seq, topic, value FROM spool")
        }
    finally:
        db.close()


async def dispatch_until_refused(
    producer: EventProducer,
    start: int,
    refusals: int,
    most: int = 5_000,
) -> tuple[dict[int, str], dict[int, BaseException]]:
    """dispatch_async in concurrent groups until ``refusals`` events were refused;
    returns the acknowledged (n → event_id) and the refused (n → exception)."""
    acked: dict[int, str] = {}
    refused: dict[int, BaseException] = {}
    n = start
    while len(refused) < refusals and n < start + most:
        group = range(n, n + 25)
        outcomes = await asyncio.gather(
            *(producer.dispatch_async(*printer_event(i)) for i in group), return_exceptions=True
        )
        for i, outcome in zip(group, outcomes, strict=False):
            (refused if isinstance(outcome, BaseException) else acked)[i] = outcome
        n += len(group)
    return acked, refused


async def dispatch_all(producer: EventProducer, ns: range) -> dict[int, str]:
    return dict(zip(ns, await asyncio.gather(*(producer.dispatch_async(*printer_event(i)) for i in ns)), strict=False))


def test_a_full_disk_refuses_loudly_acknowledges_only_what_it_stored_and_loses_nothing(
    own_broker: LocalBroker,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    caplog.set_level(logging.WARNING, logger="continuum_events")
    escaped: list[threading.ExceptHookArgs] = []
    monkeypatch.setattr(threading, "excepthook", escaped.append)  # an exception that kills any thread

    with tiny_tmpfs(tmp_path / "tmpfs", "256k") as disk:
        spool_path = disk / "spool.db"
        producer = EventProducer(KafkaSettings(bootstrap_servers=own_broker.bootstrap_servers), spool_path=spool_path)
        try:
            # Nothing listens on the broker's port yet and the producer notices at once; from
            # then on every event goes straight to the spool, none waits inside librdkafka.
            deadline = time.monotonic() + 10
            while producer.stats().mode != "spooling" and time.monotonic() < deadline:
                time.sleep(0.05)
            assert producer.stats().mode == "spooling"

            acked, refused = asyncio.run(dispatch_until_refused(producer, 0, refusals=200))
            # The synchronous API on the same full disk: returns, never raises, counts the refusal.
            sync_ids = [producer.dispatch(*printer_event(i)) for i in range(10_000, 10_050)]
            stats = producer.stats()

            # Refused events raised, with the reason; acknowledged ones are exactly what the file holds.
            assert acked and len(refused) >= 200, (len(acked), len(refused))
            assert all(
                isinstance(e, SpoolUnavailable) and isinstance(e, SpoolFull) and e.disk_full for e in refused.values()
            ), {type(e) for e in refused.values()}
            assert spooled_event_ids(spool_path) == set(acked.values())
            assert stats.spooled == len(acked) and stats.dropped == len(refused) + len(sync_ids)
            assert stats.spool_error and "the disk is full" in stats.spool_error

            # The caller's log says so clearly, and once, not once per refused event.
            disk_full = [
                r for r in caplog.records if r.levelno == logging.ERROR and "the disk is full" in r.getMessage()
            ]
            assert disk_full and all(str(spool_path) in r.getMessage() for r in disk_full), caplog.text
            assert len(disk_full) <= 2, [r.getMessage() for r in disk_full]

            # A broker answers while the disk is still full: the drain cannot lease rows, says
            # so, and keeps every one of them.
            own_broker.start()
            deadline = time.monotonic() + 20
            while "drain paused" not in caplog.text and time.monotonic() < deadline:
                time.sleep(0.1)
            assert "drain paused" in caplog.text and "the disk is full" in caplog.text
            assert spooled_event_ids(spool_path) == set(acked.values())

            # Room again: the spool drains, takes new events, and then they go straight through.
            resize(disk, "16M")
            after_room = asyncio.run(dispatch_all(producer, range(20_000, 20_020)))
            assert producer.wait_drained(30), producer.stats()
            assert producer.stats().spool_error is None
            direct = asyncio.run(dispatch_all(producer, range(30_000, 30_020)))
            assert producer.stats().mode == "direct"

            owed = {**acked, **after_room, **direct}
            received = read_topic(
                own_broker.bootstrap_servers,
                "printer-events",
                timeout=20,
                until=lambda got: set(owed.values()) <= {r.event.event_id for r in got},
            )
            got = {r.event.event_id for r in received}
            lost = {n for n, event_id in owed.items() if event_id not in got}
            assert not lost, f"{len(lost)} of {len(owed)} acknowledged events lost: {sorted(lost)[:10]}"
            assert not {int(r.event.details["n"]) for r in received} & set(refused), "a refused event was delivered"
            assert not got & set(sync_ids), "a refused event was delivered"
            assert not escaped, [f"{a.thread.name}: {a.exc_value!r}" for a in escaped]
            print(
                f"\nacknowledged before the disk filled {len(acked)}, refused {len(refused)} async + "
                f"{len(sync_ids)} sync, delivered after space returned {len(received)} "
                f"({len(acked)} from the full disk, {len(after_room)} after room returned, {len(direct)} direct)"
            )
        finally:
            producer.close(timeout=2)
