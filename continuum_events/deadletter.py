"""Dead letters: a record that cannot be processed is kept, with the reason, never dropped.

Every stage that gives up on a record (the router on an undecodable event, a
connector on a record its vendor rejects) writes the original bytes, unchanged, to a
dead-letter topic with these headers, so the record can be inspected and redriven::

    dead_letter_headers("router", exc, "printer-events", 3, 1041)
    # [("dlq.stage", b"router"), ("dlq.reason", b"cannot decode ..."), ("dlq.exception", b"DecodeError"), ...]

An integration's dead letters are read back with :func:`read_dead_letters`; those
already sent back through delivery are recorded, by partition@offset, in its redrive
ledger (``continuum-events.redriven.<name>``), so no redrive sends one twice.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from confluent_kafka import Consumer

REASON_LIMIT = 1000


def dead_letter_headers(
    stage: str, error: BaseException | str, topic: str, partition: int, offset: int
) -> list[tuple[str, bytes]]:
    reason = str(error) if isinstance(error, BaseException) else error
    kind = type(error).__name__ if isinstance(error, BaseException) else "Rejected"
    return [
        ("dlq.stage", stage.encode()),
        ("dlq.reason", reason[:REASON_LIMIT].encode("utf-8", "replace")),
        ("dlq.exception", kind.encode()),
        ("dlq.topic", topic.encode()),
        ("dlq.partition", str(partition).encode()),
        ("dlq.offset", str(offset).encode()),
        ("dlq.time_ms", str(time.time_ns() // 1_000_000).encode()),
    ]


def read_dead_letter_headers(headers: list[tuple[str, bytes]] | None) -> dict[str, str]:
    return {k: v.decode("utf-8", "replace") for k, v in headers or [] if k.startswith("dlq.")}


# -- reading and redriving an integration's dead letters -------------------------------
@dataclass(frozen=True)
class DeadLetter:
    """One record of an integration's dead-letter topic, with what the headers say."""

    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: Mapping[str, str]
    redriven: bool

    @property
    def ref(self) -> str:
        return f"{self.partition}@{self.offset}"

    @property
    def reason(self) -> str:
        return self.headers.get("dlq.reason", "(no reason recorded)")


def read_keyed(consumer: Consumer, topic: str, timeout: float = 10.0) -> dict[str, Any]:
    """Fold a small keyed JSON topic to its last value per key (null deletes)."""
    from continuum_events.history import read_range, watermarks

    values: dict[str, Any] = {}
    ranges = {p: (r.start, r.end) for p, r in watermarks(consumer, topic, timeout).items()}
    for msg in read_range(consumer, topic, ranges, timeout):
        key = (msg.key() or b"").decode("utf-8", "replace")
        if msg.value() is None:
            values.pop(key, None)
        else:
            try:
                values[key] = json.loads(msg.value())
            except ValueError:
                continue
    return values


def read_dead_letters(consumer: Consumer, integration: str, timeout: float = 10.0) -> list[DeadLetter]:
    """Every dead letter still retained for ``integration``, marked redriven or not."""
    from continuum_events.history import read_range, watermarks
    from continuum_events.topology import integration_dlq_topic, redrive_ledger_topic

    redriven = read_keyed(consumer, redrive_ledger_topic(integration), timeout)
    topic = integration_dlq_topic(integration)
    ranges = {p: (r.start, r.end) for p, r in watermarks(consumer, topic, timeout).items()}
    return [
        DeadLetter(
            m.partition(),
            m.offset(),
            m.key(),
            m.value(),
            read_dead_letter_headers(m.headers()),
            f"{m.partition()}@{m.offset()}" in redriven,
        )
        for m in read_range(consumer, topic, ranges, timeout)
    ]


def pending_count(integration: str, consumer: Consumer, timeout: float = 10.0) -> int:
    """Dead letters of ``integration`` not yet redriven: the retained count minus the
    redrive ledger's entries within it (the dead letters themselves are not read)."""
    from continuum_events.history import watermarks
    from continuum_events.topology import integration_dlq_topic, redrive_ledger_topic

    ranges = watermarks(consumer, integration_dlq_topic(integration), timeout)
    redriven = 0
    for ref in read_keyed(consumer, redrive_ledger_topic(integration), timeout):
        partition, _, offset = ref.partition("@")
        retained = ranges.get(int(partition)) if partition.isdigit() and offset.isdigit() else None
        redriven += retained is not None and retained.start <= int(offset) < retained.end
    return sum(r.end - r.start for r in ranges.values()) - redriven
