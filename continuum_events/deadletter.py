"""Dead letters: a record that cannot be processed is kept, with the reason, never dropped.

Every stage that gives up on a record (the router on an undecodable event, a
connector on a record its vendor rejects) writes the original bytes, unchanged, to a
dead-letter topic with these headers, so the record can be inspected and redriven::

    dead_letter_headers("router", exc, "printer-events", 3, 1041)
    # [("dlq.stage", b"router"), ("dlq.reason", b"cannot decode ..."), ("dlq.exception", b"DecodeError"), ...]
"""

from __future__ import annotations

import time

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
