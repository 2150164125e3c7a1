"""A durable, bounded local spool for events the broker could not take.

SQLite in WAL mode: appends are cheap, survive an app crash and an app restart, and
several processes (web workers) may share one file — a drainer *claims* a batch
with a lease before sending it, so two processes never send the same rows at once,
and a drainer that dies mid-batch only delays its rows until the lease expires::

    spool = Spool(Path("spool.db"), max_bytes=256 << 20)
    spool.append([SpooledRecord(seq, "printer-events", key, value, ts_ms)])
    batch = spool.claim(1000)          # oldest first
    ...send them...
    spool.delete([r.seq for r in delivered]); spool.release(rest)
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

_SCHEMA = """
CREATE TABLE IF NOT EXISTS spool (
    seq        INTEGER PRIMARY KEY,   -- dispatch order; drained in this order
    topic      TEXT    NOT NULL,
    key        BLOB,
    value      BLOB    NOT NULL,
    ts_ms      INTEGER NOT NULL,      -- the record's CreateTime
    claimed_by TEXT,                  -- drainer holding the row, if any
    claimed_at REAL
);
"""


@dataclass(frozen=True, slots=True)
class SpooledRecord:
    seq: int
    topic: str
    key: bytes | None
    value: bytes
    ts_ms: int

    @property
    def size(self) -> int:
        return len(self.value) + len(self.key or b"")


class SpoolFull(RuntimeError):
    """The spool reached its bound; the record was not accepted."""


def default_spool_path() -> Path:
    """``$CONTINUUM_SPOOL_PATH``, else ``$XDG_STATE_HOME/continuum-events/spool.db``."""
    if explicit := os.environ.get("CONTINUUM_SPOOL_PATH"):
        return Path(explicit)
    state = Path(os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state")
    return state / "continuum-events" / "spool.db"


class Spool:
    """Thread-safe; one instance per process, one file shared by many processes if wanted."""

    def __init__(self, path: Path, max_bytes: int = 512 << 20, lease_s: float = 60.0) -> None:
        self.path = Path(path)
        self.max_bytes = max_bytes
        self.lease_s = lease_s
        self.owner = f"{os.getpid()}-{id(self):x}"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=30)
        self._db.execute("PRAGMA journal_mode=WAL")
        # NORMAL in WAL mode: a commit survives an application crash (not a power cut)
        # without an fsync per event.
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)
        self._count, self._bytes = self._measure()

    def _measure(self) -> tuple[int, int]:
        count, size = self._db.execute(
            "SELECT COUNT(*), COALESCE(SUM(LENGTH(value) + COALESCE(LENGTH(key), 0)), 0) FROM spool"
        ).fetchone()
        return count, size

    # -- size ---------------------------------------------------------------------
    def __len__(self) -> int:
        return self._count

    @property
    def bytes(self) -> int:
        return self._bytes

    def refresh(self) -> None:
        """Re-read size and count (other processes may have appended or drained)."""
        with self._lock:
            self._count, self._bytes = self._measure()

    def max_seq(self) -> int:
        with self._lock:
            return self._db.execute("SELECT COALESCE(MAX(seq), 0) FROM spool").fetchone()[0]

    # -- writing ------------------------------------------------------------------
    def append(self, records: Iterable[SpooledRecord]) -> int:
        """Store records; returns how many fit. Rows beyond the bound are refused whole."""
        rows, added = [], 0
        with self._lock:
            for r in records:
                if self._bytes + added + r.size > self.max_bytes:
                    break
                rows.append((r.seq, r.topic, r.key, r.value, r.ts_ms))
                added += r.size
            if rows:
                # OR IGNORE: a record spooled twice (a delivery failure racing a purge) is kept once.
                self._db.execute("BEGIN")
                self._db.executemany(
                    "INSERT OR IGNORE INTO spool (seq, topic, key, value, ts_ms) VALUES (?, ?, ?, ?, ?)", rows
                )
                self._db.execute("COMMIT")
                self._count += len(rows)
                self._bytes += added
        return len(rows)

    # -- draining -----------------------------------------------------------------
    def claim(self, limit: int) -> list[SpooledRecord]:
        """Take a lease on the oldest unclaimed rows (or rows whose lease expired)."""
        now = time.time()
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                rows = self._db.execute(
                    "UPDATE spool SET claimed_by = ?, claimed_at = ? WHERE seq IN ("
                    "  SELECT seq FROM spool WHERE claimed_by IS NULL OR claimed_by = ? OR claimed_at < ?"
                    "  ORDER BY seq LIMIT ?) RETURNING seq, topic, key, value, ts_ms",
                    (self.owner, now, self.owner, now - self.lease_s, limit),
                ).fetchall()
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        return sorted((SpooledRecord(*row) for row in rows), key=lambda r: r.seq)

    def delete(self, seqs: list[int]) -> None:
        """Forget rows the broker acknowledged."""
        if not seqs:
            return
        with self._lock:
            self._db.execute("BEGIN")
            self._db.executemany("DELETE FROM spool WHERE seq = ?", [(s,) for s in seqs])
            self._db.execute("COMMIT")
            self._count, self._bytes = self._measure()

    def release(self, seqs: list[int]) -> None:
        """Give rows back (sending failed) so the next drain retries them first."""
        if not seqs:
            return
        with self._lock:
            self._db.executemany("UPDATE spool SET claimed_by = NULL WHERE seq = ?", [(s,) for s in seqs])

    def close(self) -> None:
        with self._lock:
            self._db.close()
