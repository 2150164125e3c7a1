from __future__ import annotations

from collections import Counter

from continuum_events.codec import EventCodec
from continuum_events.events import DEFAULT_SEVERITY, PAYLOAD_BRANCH, EventType
from continuum_events.producers.demo import DemoFleet


def test_the_demo_fleet_emits_valid_realistic_events() -> None:
    fleet, encode, seen = DemoFleet(printers=60, seed=3), EventCodec().body_encoder(), Counter()
    offline: set[str] = set()
    for _ in range(20_000):
        event_type, payload, severity = fleet.next_event()
        seen[event_type] += 1
        encode(
            {
                "event_id": "0b7f4a52-33a4-4f7e-9a0e-2a3f8e3a9c11",
                "event_type": event_type.symbol,
                "severity": severity or DEFAULT_SEVERITY.get(event_type.value, "info"),
                "timestamp": 0,
                "source": "demo",
                "payload": (PAYLOAD_BRANCH[event_type.family], payload),
                "details": {},
            }
        )
        if event_type is EventType.PRINTER_OFFLINE:
            assert payload["printer_id"] not in offline, "offline twice without online"
            offline.add(payload["printer_id"])
        elif event_type is EventType.PRINTER_ONLINE:
            offline.remove(payload["printer_id"])
    assert seen[EventType.JOB_COMPLETED] > seen[EventType.PRINTER_OFFLINE] > seen[EventType.SYSTEM_ERROR] > 0
    assert len(seen) >= 12
