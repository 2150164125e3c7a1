"""Routing one record: bytes in, the records to write out. Pure; no Kafka, no Faust.

    outputs = route_record(value, "printer-events", 3, 1041, rules, codec)
    for out in outputs:                       # one per category the event reaches
        out.topic, out.value, out.headers     # value: the original bytes unless a transform applied

Raises :class:`~continuum_events.codec.DecodeError` or
:class:`~continuum_events.rules.RuleError` (and whatever a broken rule raises); the
caller sends the record to the dead-letter topic with :func:`dead_letter_headers`.
"""

from __future__ import annotations

from dataclasses import dataclass

from continuum_events import topology
from continuum_events.codec import DecodeError, EventCodec
from continuum_events.events import Event
from continuum_events.rules import RuleSet, route
from continuum_events.topology import category_topic


@dataclass(frozen=True, slots=True)
class Output:
    category: str
    topic: str
    value: bytes
    headers: list[tuple[str, bytes]]
    event: Event  # as routed (transformed, if a transform applied)


#: A bigger event (written by another producer) is dead-lettered here, whole, instead of
#: failing in every connector downstream (topology.MAX_EVENT_BYTES says why the limit).
MAX_EVENT_BYTES = topology.MAX_EVENT_BYTES


def route_record(
    value: bytes | None, topic: str, partition: int, offset: int, rules: RuleSet, codec: EventCodec
) -> list[Output]:
    if value is not None and len(value) > MAX_EVENT_BYTES:
        raise DecodeError(
            f"event of {len(value):,} bytes is over the {MAX_EVENT_BYTES:,}-byte limit",
            topic=topic,
            partition=partition,
            offset=offset,
        )
    event = codec.decode(value, topic, partition, offset)
    outputs = []
    for decision in route(event, rules):
        out_topic = category_topic(decision.category)
        # Untransformed events travel as the producer wrote them, byte for byte.
        out_value = codec.encode(decision.event, out_topic) if decision.transformed else value
        outputs.append(
            Output(
                decision.category,
                out_topic,
                out_value,
                [  # type: ignore[arg-type]
                    ("continuum.rule", decision.rule.name.encode()),
                    ("continuum.category", decision.category.encode()),
                    ("continuum.event_type", event.event_type.value.encode()),
                    ("continuum.source", f"{topic}[{partition}]@{offset}".encode()),
                ],
                decision.event,
            )
        )
    return outputs
