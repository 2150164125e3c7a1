"""The contract between the shared runtime and a vendor connector.

A connector (a *sink*) knows two things: how to turn a batch of events into the
vendor's request, and what the vendor's answer means. It reports that meaning by
returning a :class:`BatchResult` or raising one of the exceptions below; consuming,
batching, retrying with backoff, pausing, dead-lettering, committing, metrics and
health all live in :mod:`connectors.runtime`::

    class MySink:
        limits = Limits(max_records=1000, max_bytes=5_000_000)
        def write(self, events):          # -> BatchResult, or raise Retry / ConfigError / TooLarge
            answer = post(encode(events))
            if answer.status == 429:
                raise Retry("throttled", retry_after=parse_retry_after(answer))
            return BatchResult()          # everything delivered
        def check(self): ...              # "test connection": a verdict string, or raise

A sink may also define ``open(context)``: the runtime calls it once before the first
batch with a :class:`SinkContext` (the integration's name and Kafka settings), for
sinks that keep state of their own (the alerting sinks' incident ledger).
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from typing import Protocol

from continuum_events.events import Event
from continuum_events.settings import KafkaSettings


@dataclass(frozen=True)
class Limits:
    """Batching and request limits, from the vendor's documented contract."""

    max_records: int = 500
    max_bytes: int = 1_000_000
    linger_s: float = 0.2
    timeout_s: float = 10.0


@dataclass
class BatchResult:
    """What became of each event of a batch; indexes not named were delivered."""

    #: index -> reason: the record itself is bad; it goes to the dead-letter topic.
    rejected: Mapping[int, str] = field(default_factory=dict)
    #: index -> reason: transient failure of these records only (partial failure).
    retry: Mapping[int, str] = field(default_factory=dict)
    retry_after: float | None = None
    #: The retries are the sink holding back by itself (a vendor's rate limit respected
    #: by queueing): wait ``retry_after`` quietly, not a failure.
    throttled: bool = False
    #: indexes the vendor never looked at (it stopped at a bad record): sent again at
    #: once, no backoff — nothing failed.
    unsent: Sequence[int] = ()


@dataclass(frozen=True)
class SinkContext:
    """What the runtime tells a sink that asks (``open``)."""

    integration: str
    settings: KafkaSettings


class Retry(Exception):
    """The whole batch failed transiently (5xx, busy, throttled, connection lost)."""

    def __init__(self, reason: str, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.retry_after = retry_after


class ConfigError(Exception):
    """The integration is set up wrong (bad credentials, missing index): stop sending,
    keep the data, mark the integration unhealthy until it is fixed."""


class Split(Exception):
    """Send this batch in halves: the vendor refused it as a whole (413), or refused one
    unnamed record in it. A single event that still fails is dead-lettered with the reason."""


class TooLarge(Split):
    """The vendor refused the request's size (413)."""


class Sink(Protocol):
    limits: Limits

    def write(self, events: Sequence[Event]) -> BatchResult: ...

    def check(self) -> str: ...

    def close(self) -> None: ...


#: The longest Retry-After taken at its word: a vendor asking for more (or for "inf") is
#: asked again after this long, so a wrong header cannot park an integration for ever.
MAX_RETRY_AFTER_S = 900.0


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header (delta-seconds or an HTTP date), at most
    :data:`MAX_RETRY_AFTER_S`; None when absent or unreadable."""
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            seconds = parsedate_to_datetime(value).timestamp() - time.time()
        except (TypeError, ValueError, OverflowError):
            return None
    if math.isnan(seconds):
        return None
    return min(max(0.0, seconds), MAX_RETRY_AFTER_S)


def describe_event(event: Event) -> dict[str, object]:
    """The flat JSON view most vendors want: envelope fields plus non-empty payload fields."""
    body: dict[str, object] = {
        "event_id": event.event_id,
        "event_type": event.event_type.value,
        "severity": event.severity.value,
        "timestamp": event.timestamp.isoformat().replace("+00:00", "Z"),
        "source": event.source,
    }
    body.update({k: v for k, v in event.payload.items() if v not in (None, [], "")})
    if event.details:
        body["details"] = dict(event.details)
    return body
