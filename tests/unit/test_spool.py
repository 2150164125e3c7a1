"""The spool on a disk that fills up: a refused write keeps nothing of itself, leaves
the connection usable, keeps the counts true, and the spool takes writes again once
the disk has room."""

from __future__ import annotations

import os
import sqlite3
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from continuum_events.producers.spool import Spool, SpooledRecord, SpoolFull, SpoolUnavailable


@contextmanager
def tiny_tmpfs(mountpoint: Path, size: str = "256k") -> Iterator[Path]:
    """A tmpfs of ``size`` at ``mountpoint``, unmounted on exit; grow it with :func:`resize`."""
    mountpoint.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(mountpoint)], capture_output=True, text=True
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs (needs root or CAP_SYS_ADMIN): {mounted.stderr.strip()}")
    try:
        yield mountpoint
    finally:
        if subprocess.run(["umount", str(mountpoint)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(mountpoint)], check=True)  # something still holds a file


def resize(mountpoint: Path, size: str) -> None:
    subprocess.run(["mount", "-o", f"remount,size={size}", str(mountpoint)], check=True)


def records(start: int, n: int, size: int = 1_000) -> list[SpooledRecord]:
    return [
        SpooledRecord(seq, "printer-events", b"printer:p-%d" % seq, os.urandom(size), seq)
        for seq in range(start, start + n)
    ]


def on_disk(path: Path) -> tuple[list[int], int]:
    """The seqs the file holds and their bytes, read by a connection of its own."""
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        rows = db.execute("SELECT seq, LENGTH(value) + COALESCE(LENGTH(key), 0) FROM spool ORDER BY seq").fetchall()
    finally:
        db.close()
    return [seq for seq, _ in rows], sum(size for _, size in rows)


def fill(spool: Spool, seq: int = 1, batch: int = 16) -> tuple[int, SpoolUnavailable]:
    """Append ever smaller batches until the disk refuses a single record; returns the
    next seq and that refusal."""
    for _ in range(1_000):
        try:
            spool.append(records(seq, batch))
        except SpoolUnavailable as exc:
            if batch == 1:
                return seq, exc
            batch //= 2
            continue
        seq += batch
    raise AssertionError("the disk never filled")


def take_the_last_bytes(mountpoint: Path) -> None:
    fd = os.open(mountpoint / "filler", os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    try:
        while os.write(fd, b"\0" * 512):
            pass
    except OSError:
        pass  # ENOSPC: nothing left
    finally:
        os.close(fd)


@pytest.fixture
def full_disk(tmp_path: Path) -> Iterator[Path]:
    with tiny_tmpfs(tmp_path / "tmpfs") as mountpoint:
        yield mountpoint


def test_a_write_larger_than_the_disk_is_rolled_back_whole(full_disk: Path) -> None:
    spool = Spool(full_disk / "spool.db")
    try:
        with pytest.raises(SpoolUnavailable) as refused:
            spool.append(records(1, 400))  # 400 kB onto 256 kB: fails part-way through the transaction
        assert refused.value.disk_full and isinstance(refused.value, SpoolFull)
        assert on_disk(spool.path) == ([], 0) and len(spool) == 0 and spool.bytes == 0
        assert spool.append(records(1_000, 5)) == 5  # the connection is not stuck inside the failed transaction
        assert on_disk(spool.path)[0] == list(range(1_000, 1_005))
    finally:
        spool.close()


def test_a_full_disk_refuses_clearly_keeps_everything_stored_and_passes_once_space_returns(full_disk: Path) -> None:
    spool = Spool(full_disk / "spool.db")
    try:
        spool.append(records(1, 5))
        leased = [r.seq for r in spool.claim(5)]  # so that releasing them is a real write
        next_seq, refused = fill(spool, seq=6)
        assert refused.disk_full
        take_the_last_bytes(full_disk)  # room for no record may still be room for a one-page update
        assert str(spool.path) in str(refused) and "the disk is full" in str(refused), str(refused)
        stored, stored_bytes = on_disk(spool.path)
        assert stored == list(range(1, next_seq)), "a refused batch left rows behind"
        assert (len(spool), spool.bytes) == (len(stored), stored_bytes)

        # Still full. A write needing new space refuses cleanly (never "cannot start a transaction
        # within a transaction"); a small one may pass in WAL space a refused write already took.
        # Either way the rows are exactly what the writes that passed made them.
        with pytest.raises(SpoolUnavailable) as again:
            spool.append(records(next_seq, 1))
        assert again.value.disk_full
        deleted: list[int] = []
        for attempt in (
            lambda: spool.claim(100),
            lambda: spool.release(leased),
            lambda: deleted.extend(stored[:5]) if spool.delete(stored[:5]) is None else None,
        ):
            try:
                attempt()
            except SpoolUnavailable as exc:
                assert exc.disk_full, exc
        left = [seq for seq in stored if seq not in deleted]
        rows, size = on_disk(spool.path)
        assert rows == left and (len(spool), spool.bytes) == (len(rows), size)
        stored = left

        resize(full_disk, "16M")
        (full_disk / "filler").unlink()
        assert spool.append(records(next_seq, 10)) == 10
        claimed = spool.claim(10_000)
        assert [r.seq for r in claimed] == stored + list(range(next_seq, next_seq + 10))
        spool.delete([r.seq for r in claimed[:-3]])
        spool.release([r.seq for r in claimed[-3:]])
        assert on_disk(spool.path)[0] == [r.seq for r in claimed[-3:]] and len(spool) == 3
        assert [r.seq for r in spool.claim(10)] == [r.seq for r in claimed[-3:]]
    finally:
        spool.close()


def test_a_record_spooled_twice_is_counted_once(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool.db")
    try:
        twice = records(7, 1)
        spool.append(twice)
        spool.append(twice + records(8, 1))
        assert len(spool) == 2 and spool.bytes == on_disk(spool.path)[1]
    finally:
        spool.close()


def test_an_io_error_is_a_full_disk_only_when_the_disk_is_nearly_full(full_disk: Path, tmp_path: Path) -> None:
    io_error = sqlite3.OperationalError("disk I/O error")
    io_error.sqlite_errorcode = 778  # SQLITE_IOERR_WRITE
    (full_disk / "filler").write_bytes(b"\0" * (255 << 10))
    assert SpoolUnavailable.from_sqlite(full_disk / "spool.db", io_error).disk_full
    roomy = SpoolUnavailable.from_sqlite(tmp_path / "spool.db", io_error)
    assert not roomy.disk_full and "SQLite cannot write (disk I/O error" in roomy.reason


def test_a_spool_from_before_maybe_written_opens_and_keeps_its_rows(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    db = sqlite3.connect(path)
    db.executescript("""
        CREATE TABLE spool (seq INTEGER PRIMARY KEY, topic TEXT NOT NULL, key BLOB, value BLOB NOT NULL,
                            ts_ms INTEGER NOT NULL, claimed_by TEXT, claimed_at REAL);
        INSERT INTO spool (seq, topic, key, value, ts_ms) VALUES (1, 't', x'6b', x'76', 5);
    """)
    db.close()
    spool = Spool(path)
    spool.append([SpooledRecord(2, "t", b"k", b"w", 6, maybe_written=True)])
    assert [(r.seq, r.maybe_written) for r in spool.claim(10)] == [(1, False), (2, True)]
    spool.close()


def test_events_librdkafka_held_keep_their_timestamp_in_the_spool(tmp_path: Path) -> None:
    """A message librdkafka gives back (purged, failed) reports timestamp -1. Spooled with it,
    the event would be resent stamped "now", and the drain's look for a copy already written
    would ask the broker's time index for -1, "latest", and find nothing (it sent 500 events
    twice in a broker-kill test). Each event keeps the timestamp it was produced with."""
    import socket
    import time

    from continuum_events.producers import EventProducer, EventType
    from continuum_events.settings import KafkaSettings

    # A "broker" that takes connections and never answers (a hung node): librdkafka holds
    # what is dispatched. Closing it then drops the connections, as a crash would.
    hung = socket.create_server(("127.0.0.1", 0))
    port = hung.getsockname()[1]
    before_ms = int(time.time() * 1000)
    producer = EventProducer(
        KafkaSettings(bootstrap_servers=f"127.0.0.1:{port}"), spool_path=tmp_path / "s.db", hold_s=0.2
    )
    try:
        ids = [producer.dispatch(EventType.PRINTER_OFFLINE, {"printer_id": f"p-{i}"}) for i in range(20)]
        time.sleep(0.5)
        assert (producer.stats().mode, producer.stats().in_memory) == ("direct", 20), producer.stats()
        hung.close()
        deadline = time.monotonic() + 20
        while (producer.stats().in_memory or producer.stats().spooled < 20) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert producer.stats().spooled == 20, producer.stats()
    finally:
        hung.close()
        producer.close(timeout=1)
    after_ms = int(time.time() * 1000)
    spool = Spool(tmp_path / "s.db")
    try:
        rows = spool.claim(100)
    finally:
        spool.close()
    assert len(rows) == len(ids) == 20
    assert all(r.maybe_written for r in rows)  # held through an outage: perhaps written, checked before resending
    assert all(before_ms <= r.ts_ms <= after_ms for r in rows), sorted({r.ts_ms for r in rows})
