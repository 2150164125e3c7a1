"""The routing agent: a thin loop over :func:`processors.routing.route_record`.

Faust acks an event whose agent raised and moves on, so every failure is caught per
event and the record goes to ``printer-events.dlq`` with the reason; the stream never
stops. Outputs are sent before the loop advances, and Faust flushes its producer
before each offset commit, so offsets advance only past events whose outputs the
brokers acknowledged (at-least-once).
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from collections import Counter
from collections.abc import Callable

import faust

from continuum_events.codec import EventCodec
from continuum_events.deadletter import dead_letter_headers
from continuum_events.hygiene import HygienePolicy
from continuum_events.processors.app import exactly_once_step
from continuum_events.processors.hygiene import HygieneState, group_key, register_hygiene, takes
from continuum_events.processors.routing import route_record
from continuum_events.rules import RuleSet
from continuum_events.topology import EVENTS_DLQ_TOPIC, EVENTS_TOPIC

log = logging.getLogger(__name__)


def register(
    app: faust.App,
    rules: Callable[[], RuleSet],
    codec: EventCodec,
    ready: Callable[[float], bool],
    source_topic: str = EVENTS_TOPIC,
    worker_id: str = "",
    hygiene: Callable[[], HygienePolicy | None] = lambda: None,
    hygiene_partitions: int | None = None,
    hygiene_state: HygieneState | None = None,
) -> Counter[str]:
    """Add the router's agent and its summary timer to ``app``; returns its live counters."""
    raw = {"key_serializer": "raw", "value_serializer": "raw"}
    source = app.topic(source_topic, **raw)
    dead_letters = app.topic(EVENTS_DLQ_TOPIC, **raw)
    counts: Counter[str] = Counter()
    worker = ("continuum.router", (worker_id or f"{socket.gethostname()}-{os.getpid()}").encode())
    pages = (
        register_hygiene(app, hygiene, codec, hygiene_partitions, counts, hygiene_state)
        if hygiene_partitions and hygiene_state is not None
        else None
    )

    @app.agent(source, name="route")
    async def route(stream: faust.Stream) -> None:
        # Never route with rules half-read: wait for the config topic's end first.
        await asyncio.get_running_loop().run_in_executor(None, ready, 15.0)
        # The producer Topic.send would reach (the transaction manager under exactly-once),
        # called straight: Topic.send wraps each record in futures, sensors and callbacks the
        # router never reads — for a record sent one to three times per event. Faust flushes
        # this producer before each commit all the same.
        producer = await app.maybe_start_producer()

        def sent(delivery: asyncio.Future) -> None:
            # The producer retries for Faust's producer_request_timeout (20 min) before a send
            # fails; Topic.send only warned then. Loud, and counted (router metrics).
            if not delivery.cancelled() and (exc := delivery.exception()) is not None:
                counts["send-failed"] += 1
                log.error("an output could not be written (%s); %d so far", exc, counts["send-failed"])

        async def write(topic: str, key: bytes | None, value: bytes, headers: list, timestamp: float) -> None:
            # The event's own record time carries over, so replay by time window reads the
            # category topics by when events happened, not when they were routed.
            delivery = await producer.send(topic, key, value, None, timestamp, headers)
            delivery.add_done_callback(sent)

        hygiene_topic = pages.get_topic_name() if pages is not None else ""

        async for event in stream.events():
            async with exactly_once_step(app, event):
                msg = event.message
                try:
                    routed = route_record(msg.value, msg.topic, msg.partition, msg.offset, rules(), codec)
                except Exception as exc:  # noqa: BLE001 - any failure is this record's, not the stream's
                    await dead_letters.send(
                        key=msg.key,
                        value=msg.value,
                        headers=dead_letter_headers("router", exc, msg.topic, msg.partition, msg.offset),
                    )
                    counts["dead-lettered"] += 1
                    continue
                policy = hygiene() if pages is not None else None
                for out in routed:
                    if pages is not None and takes(out.event, out.category, policy):
                        # An alerting page goes through alert hygiene first, grouped by location.
                        await write(
                            hygiene_topic,
                            group_key(out.event, policy).encode(),
                            out.value,
                            [*out.headers, worker, ("continuum.key", msg.key or b"")],
                            msg.timestamp,
                        )
                        counts["to-hygiene"] += 1
                        continue
                    await write(out.topic, msg.key, out.value, [*out.headers, worker], msg.timestamp)
                    counts[out.category] += 1
                counts["in"] += 1

    @app.timer(10.0)
    async def summary() -> None:
        if counts:
            log.info("routed: %s", ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))

    return counts
