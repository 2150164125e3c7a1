"""Alert hygiene decisions (pure): flapping, outage grouping, holds, idempotency."""

from __future__ import annotations

from continuum_events.events import EventType
from continuum_events.hygiene import (
    Emit,
    FlapPolicy,
    GroupPolicy,
    Record,
    Send,
    Suppress,
    flap_event,
    flap_tick,
    group_event,
    group_tick,
)

FLAP = FlapPolicy(changes=4, window_s=300, quiet_s=60)
GROUP = GroupPolicy(threshold=3, window_s=60, hold_s=10, resolve_ratio=0.75)
PRINTER = {"printer_id": "p-1", "printer_name": "P1", "printer_location": "HQ"}


def rec(n: int) -> Record:
    return Record(f"printer:p-{n}".encode(), f"value-{n}".encode(), (("continuum.rule", b"default-alerting"),))


def kinds(actions) -> list[str]:
    return [type(a).__name__ for a in actions]


def test_a_record_survives_its_json_form() -> None:
    assert Record.load(rec(3).dump()) == rec(3)


def test_more_than_k_changes_open_one_flapping_alert_and_hold_pages_until_quiet() -> None:
    state, sent, emitted = None, [], []
    for i in range(10):
        kind = "offline" if i % 2 == 0 else "online"
        state, actions = flap_event(state, kind, 1000 + 30 * i, rec(i), PRINTER, FLAP)
        sent += [a for a in actions if isinstance(a, Send)]
        emitted += [a.event for a in actions if isinstance(a, Emit)]
    assert len(sent) == 4, "the first K changes pass"
    assert [(e.event_type, e.details["state"]) for e in emitted] == [(EventType.PRINTER_FLAPPING, "flapping")]
    state, actions = flap_tick(state, 1000 + 30 * 9 + 59, FLAP)
    assert actions == [], "not quiet long enough"
    state, actions = flap_tick(state, 1000 + 30 * 9 + 60, FLAP)
    assert kinds(actions) == ["Emit", "Send"] and actions[0].event.details["state"] == "stable"
    assert actions[1].record == rec(9), "then its latest page"
    assert actions[0].event.event_id != emitted[0].event_id, "the resolve is an event of its own"
    state, again = flap_tick(state, 1000 + 30 * 9 + 61, FLAP)
    assert again == [], "one resolve only"


def test_flapping_ids_are_deterministic_and_duplicates_change_nothing() -> None:
    def run():
        state, out = None, []
        for i in range(6):
            state, actions = flap_event(state, "offline" if i % 2 == 0 else "online", 10 + i, rec(i), PRINTER, FLAP)
            out += actions
        return state, out

    first, second = run(), run()
    assert [a.event.event_id for a in first[1] if isinstance(a, Emit)] == \
           [a.event.event_id for a in second[1] if isinstance(a, Emit)]
    state, actions = flap_event(first[0], "offline", 15, rec(5), PRINTER, FLAP)  # the same event again
    assert kinds(actions) == ["Suppress"] and state["changes"] == first[0]["changes"]


def test_an_idle_flap_state_is_forgotten() -> None:
    state, _ = flap_event(None, "offline", 100, rec(1), PRINTER, FLAP)
    assert flap_tick(state, 100 + 301, FLAP) == (None, [])


def test_a_held_page_goes_out_after_its_hold_when_no_group_forms() -> None:
    state, actions = group_event(None, "HQ", "p-1", "offline", 100, 1000, rec(1), GROUP)
    assert kinds(actions) == ["Suppress"]
    state, actions = group_tick(state, 1009, "HQ", GROUP)
    assert actions == []
    state, actions = group_tick(state, 1010, "HQ", GROUP)
    assert kinds(actions) == ["Send"] and actions[0].record == rec(1)
    state, actions = group_event(state, "HQ", "p-1", "online", 200, 1100, rec(2), GROUP)
    assert kinds(actions) == ["Send"], "its resolve passes"


def test_back_within_the_hold_pages_nothing() -> None:
    state, _ = group_event(None, "HQ", "p-1", "offline", 100, 1000, rec(1), GROUP)
    state, actions = group_event(state, "HQ", "p-1", "online", 102, 1002, rec(2), GROUP)
    assert kinds(actions) == ["Suppress"]
    assert group_tick(state, 2000, "HQ", GROUP)[1] == []


def test_more_than_x_offline_become_one_incident_that_resolves_and_leaves_stragglers_their_own() -> None:
    state, emitted, sent = None, [], []
    for n in range(8):
        state, actions = group_event(state, "HQ", f"p-{n}", "offline", 100 + n, 1000 + n, rec(n), GROUP)
        emitted += [a.event for a in actions if isinstance(a, Emit)]
        sent += [a for a in actions if isinstance(a, Send)]
    assert sent == [] and len(emitted) == 1
    opened = emitted[0]
    assert opened.event_type is EventType.GROUP_OUTAGE and opened.payload["group_id"] == "location:HQ"
    assert opened.details["state"] == "open" and opened.details["count"] == "4"
    assert state["open"] and len(state["members"]) == 8
    assert group_tick(state, 5000, "HQ", GROUP)[1] == [], "members' pages are never released while open"
    for n in range(6):
        state, actions = group_event(state, "HQ", f"p-{n}", "online", 200 + n, 2000 + n, rec(100 + n), GROUP)
    assert [a.event.details["state"] for a in actions if isinstance(a, Emit)] == ["resolved"]
    stragglers = [a.record for a in actions if isinstance(a, Send)]
    assert stragglers == [rec(6), rec(7)], "still offline: their own pages"
    state, actions = group_event(state, "HQ", "p-6", "online", 300, 3000, rec(106), GROUP)
    assert kinds(actions) == ["Send"], "and their own resolves"


def test_a_page_sent_before_the_group_formed_keeps_its_own_resolve() -> None:
    state, _ = group_event(None, "HQ", "p-0", "offline", 100, 1000, rec(0), GROUP)
    state, released = group_tick(state, 1011, "HQ", GROUP)
    assert kinds(released) == ["Send"]
    for n in range(1, 4):
        state, actions = group_event(state, "HQ", f"p-{n}", "offline", 101 + n, 1012 + n, rec(n), GROUP)
    assert any(isinstance(a, Emit) for a in actions) and state["members"]["p-0"]["paged"] is True
    state, actions = group_event(state, "HQ", "p-0", "online", 120, 1020, rec(50), GROUP)
    assert isinstance(actions[0], Send), "p-0's own incident is resolved by its own online"


def test_a_repeated_offline_inside_an_outage_is_suppressed_once_more() -> None:
    state = None
    for n in range(4):
        state, _ = group_event(state, "HQ", f"p-{n}", "offline", 100 + n, 1000 + n, rec(n), GROUP)
    state, actions = group_event(state, "HQ", "p-0", "offline", 105, 1005, rec(0), GROUP)
    assert kinds(actions) == ["Suppress"] and not any(isinstance(a, Emit) for a in actions)
    assert all(isinstance(a, Suppress) for a in actions)


def test_switching_off_releases_everything_held() -> None:
    from continuum_events.hygiene import HygienePolicy, drain

    policy = HygienePolicy(flapping=FLAP, grouping=GROUP)
    state = None
    for n in range(6):
        state, _ = group_event(state, "HQ", f"p-{n}", "offline", 100 + n, 1000 + n, rec(n), GROUP)
    actions = drain("group:HQ", state, 1010, policy)
    assert [a.event.details["state"] for a in actions if isinstance(a, Emit)] == ["resolved"]
    assert sorted(a.record.value for a in actions if isinstance(a, Send)) == sorted(rec(n).value for n in range(6))
    held, _ = group_event(None, "HQ", "p-9", "offline", 100, 1000, rec(9), GROUP)
    assert [a.record for a in drain("group:HQ", held, 1001, policy)] == [rec(9)]
    flap = None
    for i in range(6):
        flap, _ = flap_event(flap, "offline" if i % 2 == 0 else "online", 10 + i, rec(i), PRINTER, FLAP)
    assert kinds(drain("flap:p-1", flap, 20, policy)) == ["Emit", "Send"]


def test_simulate_explains_each_page() -> None:
    from continuum_events.events import Event, Severity
    from continuum_events.hygiene import HygienePolicy, simulate

    policy = HygienePolicy(flapping=FLAP, grouping=GROUP)
    events = [Event(f"id-{n}", EventType.PRINTER_OFFLINE, Severity.WARNING, (1000 + n) * 1_000_000,
                    {"printer_id": f"p-{n}", "printer_location": "HQ"}) for n in range(5)]
    notes = simulate(events, policy)
    assert any("held up to 10 s" in line for line in notes[0][1])
    assert any("group.outage (open)" in line for line in notes[3][1]), notes[3][1]
    assert notes[4][1] == ["suppressed: part of the location HQ outage (5 printers)"]
