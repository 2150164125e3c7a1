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

Every write is one transaction that either commits whole or is rolled back whole. When
the disk is full (or SQLite cannot write for another reason) the write raises
:class:`SpoolUnavailable` and nothing of it is kept; the spool stays usable and takes
writes again as soon as the disk does::

    try:
        spool.append(records)
    except SpoolUnavailable as exc:
        log.error("%s", exc)       # exc.disk_full, exc.reason
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
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
    claimed_at REAL,
    maybe_written INTEGER NOT NULL DEFAULT 0  -- sent once, outcome unknown
);
-- Calls of dispatch_event that could not be events at all, kept with the reason.
CREATE TABLE IF NOT EXISTS refused (
    event_id   TEXT PRIMARY KEY,      -- the id dispatch returned for it
    at_ms      INTEGER NOT NULL,
    event_type TEXT NOT NULL,         -- as given
    payload    TEXT NOT NULL,         -- as given, as text (JSON where it can be)
    severity   TEXT NOT NULL,
    reason     TEXT NOT NULL
);
"""


@dataclass(frozen=True, slots=True)
class SpooledRecord:
    seq: int
    topic: str
    key: bytes | None
    value: bytes
    ts_ms: int
    #: Sent to a broker once with no answer (timed out or abandoned in flight): the broker
    #: may have written it, so the drain looks for it in the topic before sending it again.
    maybe_written: bool = False

    @property
    def size(self) -> int:
        return len(self.value) + len(self.key or b"")


@dataclass(frozen=True, slots=True)
class RefusedCall:
    """A ``dispatch_event`` call that could not be an event, as given, and why."""

    event_id: str
    at_ms: int
    event_type: str
    payload: str
    severity: str
    reason: str


class SpoolFull(RuntimeError):
    """The spool reached its bound; the record was not accepted."""


# SQLite primary result codes (extended codes carry them in the low byte).
_SQLITE_IOERR, _SQLITE_FULL = 10, 13
# An I/O error with less than this free on the spool's filesystem is a full disk.
_NEARLY_FULL = 64 << 10


class SpoolUnavailable(SpoolFull):
    """The spool's storage refused a write — the disk is full (``disk_full``), or SQLite
    could not write for another ``reason`` — and nothing of that write was kept.

    A :class:`SpoolFull`, so code that handles a refused event handles this one too;
    unlike the bound, it passes by itself once the disk has room again."""

    def __init__(self, path: Path, reason: str, *, disk_full: bool) -> None:
        super().__init__(f"spool {path}: {reason}; nothing was stored")
        self.path = path
        self.reason = reason
        self.disk_full = disk_full

    @classmethod
    def from_sqlite(cls, path: Path, exc: sqlite3.Error) -> SpoolUnavailable:
        code = (getattr(exc, "sqlite_errorcode", None) or 0) & 0xFF
        free = _free_bytes(path)
        room = "" if free is None else f", {free} bytes free"
        if code == _SQLITE_FULL or (code == _SQLITE_IOERR and free is not None and free < _NEARLY_FULL):
            return cls(path, f"the disk is full ({exc}{room})", disk_full=True)
        return cls(path, f"SQLite cannot write ({exc}{room})", disk_full=False)


def _free_bytes(path: Path) -> int | None:
    try:
        st = os.statvfs(path.parent)
    except OSError:
        return None
    return st.f_bavail * st.f_frsize


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
        columns = {row[1] for row in self._db.execute("PRAGMA table_info(spool)")}
        if "maybe_written" not in columns:  # a spool written by an earlier version
            try:
                self._db.execute("ALTER TABLE spool ADD COLUMN maybe_written INTEGER NOT NULL DEFAULT 0")
            except sqlite3.OperationalError:  # another process added it first
                pass
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

    @contextmanager
    def _transaction(self, begin: str = "BEGIN") -> Iterator[None]:
        """One write transaction (the caller holds the lock). On a SQLite error it is
        rolled back and :class:`SpoolUnavailable` raised: the connection is never left
        inside a half-done transaction, which would refuse every later BEGIN."""
        self._rollback()  # left open only if an earlier rollback itself failed
        try:
            self._db.execute(begin)
            yield
            self._db.execute("COMMIT")
        except sqlite3.Error as exc:
            self._rollback()
            raise SpoolUnavailable.from_sqlite(self.path, exc) from exc
        except BaseException:
            self._rollback()
            raise

    def _rollback(self) -> None:
        # SQLite rolls back by itself after some errors (SQLITE_FULL among them), so
        # there may be nothing left to roll back.
        if self._db.in_transaction:
            try:
                self._db.execute("ROLLBACK")
            except sqlite3.Error:
                pass  # nothing was committed; the next transaction tries the rollback again

    # -- writing ------------------------------------------------------------------
    def append(self, records: Iterable[SpooledRecord]) -> int:
        """Store records; returns how many fit. Rows beyond the bound are refused whole.

        Raises :class:`SpoolUnavailable` when the disk refuses the write: then none of
        the records is stored."""
        rows, added = [], 0
        with self._lock:
            for r in records:
                if self._bytes + added + r.size > self.max_bytes:
                    break
                rows.append((r.seq, r.topic, r.key, r.value, r.ts_ms, int(r.maybe_written)))
                added += r.size
            if rows:
                before = self._db.total_changes
                with self._transaction():
                    # OR IGNORE: a record spooled twice (a delivery failure racing a purge) is kept once.
                    self._db.executemany(
                        "INSERT OR IGNORE INTO spool (seq, topic, key, value, ts_ms, maybe_written) VALUES (?, ?, ?, ?, ?, ?)",
                        rows,
                    )
                if self._db.total_changes - before == len(rows):
                    self._count += len(rows)
                    self._bytes += added
                else:  # some were already there: count what the file holds, not what was offered
                    self._count, self._bytes = self._measure()
        return len(rows)

    # -- draining -----------------------------------------------------------------
    def claim(self, limit: int) -> list[SpooledRecord]:
        """Take a lease on the oldest unclaimed rows (or rows whose lease expired).

        The lease is a write: on a full disk this raises :class:`SpoolUnavailable` and
        claims nothing."""
        now = time.time()
        with self._lock, self._transaction("BEGIN IMMEDIATE"):
            rows = self._db.execute(
                "UPDATE spool SET claimed_by = ?, claimed_at = ? WHERE seq IN ("
                "  SELECT seq FROM spool WHERE claimed_by IS NULL OR claimed_by = ? OR claimed_at < ?"
                "  ORDER BY seq LIMIT ?) RETURNING seq, topic, key, value, ts_ms, maybe_written",
                (self.owner, now, self.owner, now - self.lease_s, limit),
            ).fetchall()
        # A row spooled by an older version may carry -1, librdkafka's "no timestamp" for a
        # failed message: as 0 it is stamped at send time (Kafka would store -1, which a replay
        # by time never finds) and the check for a copy already written reads from the start
        # (-1 would ask the time index for "latest").
        return sorted(
            (
                SpooledRecord(seq, topic, key, value, max(ts_ms, 0), maybe_written=bool(maybe_written))
                for seq, topic, key, value, ts_ms, maybe_written in rows
            ),
            key=lambda r: r.seq,
        )

    def delete(self, seqs: list[int]) -> None:
        """Forget rows the broker acknowledged.

        In WAL mode even a delete needs room on disk. When there is none this raises
        :class:`SpoolUnavailable` and every row stays, still leased to this spool: the
        next :meth:`claim` here hands them out again (sent twice, never lost)."""
        if not seqs:
            return
        with self._lock:
            with self._transaction():
                self._db.executemany("DELETE FROM spool WHERE seq = ?", [(s,) for s in seqs])
            self._count, self._bytes = self._measure()

    def release(self, seqs: list[int], maybe_written: Iterable[int] = ()) -> None:
        """Give rows back (sending failed) so the next drain retries them first; the rows
        of ``maybe_written`` were sent without an answer and are marked so.

        On a full disk this raises :class:`SpoolUnavailable`; the rows keep their lease,
        which this spool's next :meth:`claim` takes up again (other processes' after it
        expires)."""
        if not seqs:
            return
        unsure = set(maybe_written)
        with self._lock, self._transaction():
            self._db.executemany(
                "UPDATE spool SET claimed_by = NULL, maybe_written = MAX(maybe_written, ?) WHERE seq = ?",
                [(int(s in unsure), s) for s in seqs],
            )

    # -- refused calls ---------------------------------------------------------------
    def refuse(self, event_id: str, event_type: str, payload: str, severity: str, reason: str) -> None:
        """Keep a call that is not an event (raises :class:`SpoolUnavailable` if the disk refuses)."""
        with self._lock, self._transaction():
            self._db.execute(
                "INSERT OR REPLACE INTO refused (event_id, at_ms, event_type, payload, severity, reason) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (event_id, time.time_ns() // 1_000_000, event_type, payload, severity, reason),
            )

    def refused(self, limit: int = 100) -> list[RefusedCall]:
        """The most recent refused calls, newest first."""
        with self._lock:
            rows = self._db.execute(
                "SELECT event_id, at_ms, event_type, payload, severity, reason FROM refused "
                "ORDER BY at_ms DESC, rowid DESC LIMIT ?",
                (limit,),
            ).fetchall()
        return [RefusedCall(*row) for row in rows]

    def refused_count(self) -> int:
        with self._lock:
            return self._db.execute("SELECT COUNT(*) FROM refused").fetchone()[0]

    def close(self) -> None:
        with self._lock:
            self._db.close()
