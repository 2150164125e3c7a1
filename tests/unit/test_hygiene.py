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
    assert [a.event.event_id for a in first[1] if isinstance(a, Emit)] == [
        a.event.event_id for a in second[1] if isinstance(a, Emit)
    ]
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
    state, actions = group_tick(state, 5000, "HQ", GROUP)
    assert not any(isinstance(a, Send) for a in actions), "members' pages are never released while open"
    for n in range(6):
        state, actions = group_event(state, "HQ", f"p-{n}", "online", 200 + n, 2000 + n, rec(100 + n), GROUP)
    assert [a.event.details["state"] for a in actions if isinstance(a, Emit)] == ["resolved"]
    state, actions = group_tick(state, 2005 + GROUP.resolve_grace_s, "HQ", GROUP)
    stragglers = [a.record for a in actions if isinstance(a, Send)]
    assert stragglers == [rec(6), rec(7)], "still offline after the grace: their own pages"
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
    events = [
        Event(
            f"id-{n}",
            EventType.PRINTER_OFFLINE,
            Severity.WARNING,
            (1000 + n) * 1_000_000,
            {"printer_id": f"p-{n}", "printer_location": "HQ"},
        )
        for n in range(5)
    ]
    notes = simulate(events, policy)
    assert any("held up to 10 s" in line for line in notes[0][1])
    assert any("group.outage (open)" in line for line in notes[3][1]), notes[3][1]
    assert notes[4][1] == ["suppressed: part of the location HQ outage (5 printers)"]


def _outage_of(n: int, policy: GroupPolicy, now: float = 1000):
    """``n`` printers of HQ offline, one a second: the group and what it emitted."""
    state, emitted = None, []
    for i in range(n):
        state, actions = group_event(state, "HQ", f"p-{i}", "offline", 100 + i, now + i, rec(i), policy)
        emitted += [a.event for a in actions if isinstance(a, Emit)]
    return state, emitted


def test_stragglers_after_the_outage_resolves_are_paged_only_if_still_offline_after_the_grace() -> None:
    policy = GroupPolicy(threshold=3, window_s=60, hold_s=10)  # the default resolve ratio, 0.8
    assert policy.resolve_ratio == 0.8 and policy.resolve_grace_s == 120, "the documented defaults"
    state, _ = _outage_of(10, policy)
    for n in range(8):
        state, actions = group_event(state, "HQ", f"p-{n}", "online", 200 + n, 2000 + n, rec(100 + n), policy)
    assert [a.event.details["state"] for a in actions if isinstance(a, Emit)] == ["resolved"]
    assert not any(isinstance(a, Send) for a in actions), "the last 20 % are not paged the moment it resolves"
    resolved = 2007
    state, actions = group_event(state, "HQ", "p-8", "online", 300, resolved + 60, rec(108), policy)
    assert kinds(actions) == ["Suppress"] and "grace" in actions[0].why, "back within the grace: never paged"
    state, actions = group_tick(state, resolved + policy.resolve_grace_s - 1, "HQ", policy)
    assert actions == []
    state, actions = group_tick(state, resolved + policy.resolve_grace_s, "HQ", policy)
    assert [a.record for a in actions] == [rec(9)] and "still offline 120 s after" in actions[0].why
    if state is not None:
        assert group_tick(state, resolved + policy.resolve_grace_s + 1, "HQ", policy)[1] == [], "paged once"
    state, actions = group_event(state, "HQ", "p-9", "online", 400, resolved + 500, rec(109), policy)
    assert kinds(actions) == ["Send"], "its own incident gets its own resolve"
    assert group_event(state, "HQ", "p-8", "online", 401, resolved + 501, rec(108), policy)[1][0].record == rec(108), (
        "p-8 is an ordinary printer again"
    )


def test_a_zero_grace_pages_stragglers_when_the_outage_resolves() -> None:
    policy = GroupPolicy(threshold=3, window_s=60, hold_s=10, resolve_grace_s=0)
    state, _ = _outage_of(10, policy)
    for n in range(8):
        state, actions = group_event(state, "HQ", f"p-{n}", "online", 200 + n, 2000 + n, rec(100 + n), policy)
    assert [a.record for a in actions if isinstance(a, Send)] == [rec(8), rec(9)]


def test_switching_off_during_the_grace_pages_the_stragglers() -> None:
    from continuum_events.hygiene import HygienePolicy, drain

    policy = GroupPolicy(threshold=3, window_s=60, hold_s=10)
    state, _ = _outage_of(10, policy)
    for n in range(8):
        state, _ = group_event(state, "HQ", f"p-{n}", "online", 200 + n, 2000 + n, rec(100 + n), policy)
    actions = drain("group:HQ", state, 2010, HygienePolicy(grouping=policy))
    assert [a.record for a in actions] == [rec(8), rec(9)], "nothing stays held"


def test_a_growing_outage_updates_its_incident_at_most_once_per_interval_and_per_growth() -> None:
    from continuum_events.connectors.incidents import incidents_of

    policy = GroupPolicy(threshold=3, window_s=600, hold_s=10)
    assert (policy.update_s, policy.update_growth) == (30, 0.1), "the documented defaults"
    state, emitted = _outage_of(4, policy)  # opens at the 4th, now=1003
    (opened,) = emitted
    state, actions = group_event(state, "HQ", "p-4", "offline", 104, 1010, rec(4), policy)
    assert kinds(actions) == ["Suppress"], "grown 25 %, but only 7 s after the incident opened"
    assert group_tick(state, 1032, "HQ", policy)[1] == []
    state, actions = group_tick(state, 1033, "HQ", policy)
    (update,) = [a.event for a in actions]
    assert update.event_type is EventType.GROUP_OUTAGE and update.details["state"] == "open"
    assert (update.details["count"], update.details["previous_count"]) == ("5", "4")
    assert update.payload["group_id"] == opened.payload["group_id"] == "location:HQ"
    assert update.payload["printer_ids"] == [f"p-{n}" for n in range(5)]
    assert update.event_id != opened.event_id, "an event of its own"
    assert [(i.key, i.action) for i in incidents_of(update)] == [(i.key, i.action) for i in incidents_of(opened)], (
        "about the same incident (dedup key / alias)"
    )
    assert group_tick(state, 1100, "HQ", policy)[1] == [], "nothing new to tell"
    for n in range(5, 20):  # grows to 20, told on the page that arrives once 30 s passed
        state, actions = group_event(state, "HQ", f"p-{n}", "offline", 100 + n, 1100 + n, rec(n), policy)
    state, _ = group_tick(state, 1200, "HQ", policy)
    assert state["told"]["count"] == 20
    state, actions = group_event(state, "HQ", "p-20", "offline", 300, 1300, rec(20), policy)
    assert kinds(actions) == ["Suppress"], "21 of 20 told: under 10 % more"
    state, actions = group_event(state, "HQ", "p-21", "offline", 301, 1301, rec(21), policy)
    assert [a.event.details["count"] for a in actions if isinstance(a, Emit)] == ["22"], "10 % more, 101 s later"


def test_growth_updates_are_deterministic() -> None:
    policy = GroupPolicy(threshold=3, window_s=600, hold_s=10, update_s=0)

    def run():
        _, emitted = _outage_of(8, policy)
        return [(e.event_id, e.details["count"]) for e in emitted]

    first = run()
    assert first == run() and [c for _, c in first] == ["4", "5", "6", "7", "8"]
    assert len({i for i, _ in first}) == 5


def test_the_incident_ledger_lets_a_growth_update_through() -> None:
    from continuum_events.connectors.incidents import decide, incidents_of

    policy = GroupPolicy(threshold=3, window_s=600, hold_s=10, update_s=0)
    _, (opened, update) = _outage_of(5, policy)
    entry = decide(None, incidents_of(opened)[0])
    assert entry is not None
    grown = decide(entry, incidents_of(update)[0])
    assert grown is not None and grown["count"] > entry["count"]
    assert decide(grown, incidents_of(update)[0]) is None  # the same update again: already sent
