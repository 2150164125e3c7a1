"""Producers: where events enter the system.

* :mod:`.app` — ``dispatch_event``, the API Continuum calls (Avro, keyed by printer,
  never blocking, spooled to disk while the brokers are away).
* :mod:`.demo` — a source of realistic Continuum events for ``make run``.
"""

from continuum_events.events import EventType, Severity
from continuum_events.producers.app import (
    EventProducer,
    ProducerStats,
    configure,
    dispatch_event,
    dispatch_event_async,
    get_producer,
)
from continuum_events.producers.spool import Spool, SpoolFull

__all__ = [
    "EventProducer",
    "EventType",
    "ProducerStats",
    "Severity",
    "Spool",
    "SpoolFull",
    "configure",
    "dispatch_event",
    "dispatch_event_async",
    "get_producer",
]
