"""Alert hygiene, decided in the router before anything reaches the alerting category:
flap suppression and outage grouping. Pure: state in, state and actions out; the router
keeps the state in a Faust table (:mod:`processors.hygiene`).

Only ``printer.offline`` / ``printer.online`` on their way to *alerting* pass through
here; logging and monitoring receive every event as routed.

**Flapping** — a printer that changes offline/online more than ``changes`` times within
``window_s`` is flapping: one ``printer.flapping`` alert opens (``details.state=flapping``)
and its offline/online pages are held back; once it has been stable for ``quiet_s``, one
``printer.flapping`` with ``details.state=stable`` resolves it, followed by the printer's
latest page (an offline printer stays paged; an online one resolves what was open).

**Outage grouping** — an offline page is held ``hold_s`` (the group wait). If more than
``threshold`` printers of the same location (or department) go offline within
``window_s``, alerting receives one ``group.outage`` (``group_id`` = ``location:<name>``,
the count and the printers' ids in its details) instead of their pages. While it is open
and more printers go offline, the same incident is told the grown count: another
``group.outage`` with ``details.state=open``, the same ``group_id`` (so the vendors'
incident key), the new count and ids and ``previous_count`` — at most once per
``update_s`` and only once the count grew by ``update_growth`` since the count last sent
(the clock's tick sends one that waited for ``update_s``). The group resolves when
``resolve_ratio`` of its printers are back; each printer still offline then is held
``resolve_grace_s`` like a new offline page, and paged on its own only if it is still
offline when that grace ends. An offline page that outlives its hold without a group is
released as it was; a printer back within its hold (or its grace) pages nothing.

Time: holds, graces and update intervals run on the clock the caller passes as ``now``
(the router's wall clock, whose ticks release what is due; :func:`simulate` uses event
time), event times only order and count pages within ``window_s``.

Every transition is idempotent (a duplicate or an event re-processed after a crash finds
the state already moved), and synthesized events get deterministic ids, so a re-emission
after a crash is the same event (and the same incident).
"""

from __future__ import annotations

import base64
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from continuum_events.events import Event, EventType, Severity

HYGIENE_KEY = "hygiene/alerting"
_IDS = uuid.UUID("6f1d3c1e-8a55-4b8e-9d43-2c1f0e7a9b10")


class FlapPolicy(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    enabled: bool = True
    changes: int = Field(4, ge=1, description="More than this many offline/online changes within window_s: flapping.")
    window_s: float = Field(600.0, gt=0, description="The window the changes are counted in (seconds).")
    quiet_s: float = Field(600.0, gt=0, description="Stable this long (seconds): the flapping alert resolves.")


class GroupPolicy(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    enabled: bool = True
    by: Literal["location", "department"] = "location"
    threshold: int = Field(10, ge=1, description="More than this many printers offline within window_s: one group.")
    window_s: float = Field(120.0, gt=0, description="The window offline printers are counted in (seconds).")
    hold_s: float = Field(30.0, ge=0, description="How long an offline page waits for a group to form (seconds).")
    resolve_ratio: float = Field(0.8, gt=0, le=1, description="The group resolves when this share is back.")
    resolve_grace_s: float = Field(
        120.0,
        ge=0,
        description="After the group resolves, a printer still offline "
        "is paged on its own only if still offline this long later (seconds).",
    )
    update_s: float = Field(
        30.0, ge=0, description="An open group's incident gets its grown count at most once per this many seconds."
    )
    update_growth: float = Field(
        0.1, ge=0, description="... and only once the count grew by this share since the count last sent."
    )


class HygienePolicy(BaseModel):
    """Stored in the config topic under ``hygiene/alerting``; changeable live."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    flapping: FlapPolicy = FlapPolicy()
    grouping: GroupPolicy = GroupPolicy()

    @property
    def active(self) -> bool:
        return self.flapping.enabled or self.grouping.enabled


# -- records and actions -------------------------------------------------------------------
@dataclass(frozen=True)
class Record:
    """A routed alerting record kept in the state until it is released."""

    key: bytes | None
    value: bytes
    headers: tuple[tuple[str, bytes], ...] = ()

    def dump(self) -> dict[str, Any]:
        b64 = lambda b: base64.b64encode(b).decode()  # noqa: E731
        return {
            "k": None if self.key is None else b64(self.key),
            "v": b64(self.value),
            "h": [[name, b64(value)] for name, value in self.headers],
        }

    @staticmethod
    def load(data: Mapping[str, Any]) -> Record:
        raw = base64.b64decode
        return Record(
            None if data["k"] is None else raw(data["k"]),
            raw(data["v"]),
            tuple((name, raw(value)) for name, value in data["h"]),
        )


@dataclass(frozen=True)
class Send:
    """Deliver this record to alerting (a page passed or released)."""

    record: Record
    why: str


@dataclass(frozen=True)
class Emit:
    """Deliver a synthesized event to alerting (flapping, group outage)."""

    event: Event
    why: str


@dataclass(frozen=True)
class Suppress:
    why: str


Action = Send | Emit | Suppress
State = dict[str, Any]


def _id(*parts: object) -> str:
    return str(uuid.uuid5(_IDS, "/".join(map(str, parts))))


def _micros(ts: float) -> int:
    return int(ts * 1_000_000)


# -- flapping --------------------------------------------------------------------------------
def flap_event(
    state: State | None, kind: str, ts: float, record: Record, printer: Mapping[str, Any], policy: FlapPolicy
) -> tuple[State, list[Action]]:
    """One offline/online page of a printer (``ts``: its event time, seconds)."""
    state = dict(state or {"last": None, "changes": [], "flapping": False, "last_change": None, "held": None})
    state["printer"] = {k: v for k, v in printer.items() if v is not None}
    if state["last"] == kind or (state["last_change"] is not None and ts <= state["last_change"]):
        # Not a change: a repeat, a duplicate, or older than what we know.
        if state["flapping"]:
            state["held"] = record.dump()
            return state, [Suppress(f"flapping since {state['flap_start']:.0f}: held until stable")]
        return state, [Send(record, "no change in state")]
    changes = [c for c in state["changes"] if c > ts - policy.window_s] + [ts]
    state.update(last=kind, changes=changes, last_change=ts)
    if state["flapping"]:
        state["held"] = record.dump()
        return state, [
            Suppress(
                f"flapping: {len(changes)} changes in {policy.window_s:.0f} s; held until stable "
                f"for {policy.quiet_s:.0f} s"
            )
        ]
    if len(changes) > policy.changes:
        state.update(flapping=True, flap_start=ts, held=record.dump())
        event = _flapping(state, "flapping", ts, len(changes), policy)
        return state, [
            Emit(event, f"more than {policy.changes} changes in {policy.window_s:.0f} s: flapping"),
            Suppress("flapping: this page is held until the printer is stable"),
        ]
    return state, [Send(record, f"{len(changes)} change(s) in {policy.window_s:.0f} s, not flapping")]


def flap_tick(state: State, now: float, policy: FlapPolicy) -> tuple[State | None, list[Action]]:
    """Time passing: a flapping printer stable for ``quiet_s`` resolves; idle state is dropped."""
    if state["flapping"]:
        if now - state["last_change"] < policy.quiet_s:
            return state, []
        held = Record.load(state["held"]) if state["held"] else None
        event = _flapping(state, "stable", now, len(state["changes"]), policy)
        state = {**state, "flapping": False, "changes": [], "held": None}
        actions: list[Action] = [Emit(event, f"stable for {policy.quiet_s:.0f} s")]
        if held is not None:
            actions.append(Send(held, "its latest state, held while it was flapping"))
        return state, actions
    if state["last_change"] is None or now - state["last_change"] > policy.window_s:
        return None, []  # nothing left to count: forget it
    return state, []


def _flapping(state: State, phase: str, ts: float, changes: int, policy: FlapPolicy) -> Event:
    printer = state["printer"]
    return Event(
        _id("flapping", printer["printer_id"], state["flap_start"], phase),
        EventType.PRINTER_FLAPPING,
        Severity.WARNING if phase == "flapping" else Severity.INFO,
        _micros(ts),
        dict(printer),
        "continuum-router",
        {"state": phase, "changes": str(changes), "window_s": f"{policy.window_s:g}", "quiet_s": f"{policy.quiet_s:g}"},
    )


# -- outage grouping ---------------------------------------------------------------------------
def group_event(
    state: State | None,
    name: str,
    printer_id: str,
    kind: str,
    ts: float,
    now: float,
    record: Record,
    policy: GroupPolicy,
) -> tuple[State, list[Action]]:
    """One offline/online page of a printer of group ``name`` (a location or department)."""
    state = dict(state or {"open": False, "window": {}, "members": {}, "opened": None})
    window, members = dict(state["window"]), dict(state["members"])
    state.update(window=window, members=members)
    if kind == "offline":
        if state["open"]:
            if printer_id in members and members[printer_id]["state"] == "offline":
                return state, [Suppress(f"part of the {policy.by} {name} outage")]
            members[printer_id] = {"state": "offline", "paged": False, "record": record.dump()}
            state, grown = _tell_growth(state, name, ts, now, policy)
            return state, [*grown, Suppress(f"part of the {policy.by} {name} outage ({len(members)} printers)")]
        if printer_id in window:
            entry = window[printer_id]
            return state, [Send(record, "already paged")] if entry["paged"] else [Suppress("already held")]
        for pid in [p for p, e in window.items() if e["ts"] <= ts - policy.window_s and e["paged"]]:
            del window[pid]  # counted no more; its own incident stays as it is
        window[printer_id] = {
            "ts": ts,
            "seen": now,
            "paged": False,
            "record": record.dump(),
            "release_at": now + policy.hold_s,
        }
        if len([e for e in window.values() if e["ts"] > ts - policy.window_s]) > policy.threshold:
            return _open_group(state, name, ts, now, policy)
        if policy.hold_s <= 0:
            return release_due(state, now, name, policy)
        return state, [Suppress(f"held up to {policy.hold_s:.0f} s for an outage of {policy.by} {name} to show")]
    # online
    if printer_id in window and not window[printer_id]["paged"]:
        entry = window.pop(printer_id)
        if entry.get("after_outage"):
            return state, [
                Suppress(
                    f"back within the {policy.resolve_grace_s:.0f} s grace after the {policy.by} "
                    f"{name} outage: its offline page was never sent"
                )
            ]
        return state, [Suppress(f"back within the {policy.hold_s:.0f} s hold: its offline page was never sent")]
    if state["open"] and printer_id in members:
        member = members[printer_id]
        if member["state"] == "back":
            return state, [Suppress(f"already back in the {policy.by} {name} outage")]
        members[printer_id] = {**member, "state": "back", "record": None}
        actions: list[Action] = (
            [Send(record, "resolves its own page, sent before the group formed")]
            if member["paged"]
            else [Suppress(f"back, within the {policy.by} {name} outage")]
        )
        back = sum(1 for m in members.values() if m["state"] == "back")
        if back >= policy.resolve_ratio * len(members):
            state, resolved = _resolve_group(state, name, now, policy)
            actions += resolved
        return state, actions
    window.pop(printer_id, None)
    return state, [Send(record, "not part of a held page or an outage")]


def release_due(state: State, now: float, name: str, policy: GroupPolicy) -> tuple[State, list[Action]]:
    """Offline pages whose hold (or grace after an outage) is over, with no group formed,
    go out as they were."""
    if state["open"]:
        return state, []
    window = dict(state["window"])
    actions: list[Action] = []
    for pid, entry in sorted(window.items(), key=lambda kv: kv[1]["ts"]):
        if not entry["paged"] and entry["release_at"] <= now:
            why = (
                (
                    f"still offline {policy.resolve_grace_s:.0f} s after the {policy.by} {name} outage resolved: "
                    "its own incident"
                )
                if entry.get("after_outage")
                else f"held {policy.hold_s:.0f} s, no outage of {policy.by} {name}"
            )
            actions.append(Send(Record.load(entry["record"]), why))
            window[pid] = {**entry, "paged": True, "record": None, "release_at": None}
    return {**state, "window": window}, actions


def group_tick(state: State, now: float, name: str, policy: GroupPolicy) -> tuple[State | None, list[Action]]:
    """Time passing: release held pages; tell an open group's incident its grown count
    once ``update_s`` allows; forget what no longer counts."""
    state, actions = release_due(state, now, name, policy)
    if state["open"]:
        state, grown = _tell_growth(state, name, now, now, policy)
        actions += grown
    if not state["open"] and not any(not e["paged"] for e in state["window"].values()):
        # Wall-clock age here (a tick has no event time): a page seen long ago counts no more.
        window = {p: e for p, e in state["window"].items() if e.get("seen", now) > now - policy.window_s}
        if not window:
            return None, actions
        state = {**state, "window": window}
    return state, actions


def _open_group(state: State, name: str, ts: float, now: float, policy: GroupPolicy) -> tuple[State, list[Action]]:
    members = {
        pid: {"state": "offline", "paged": e["paged"], "record": e["record"]}
        for pid, e in state["window"].items()
        if e["ts"] > ts - policy.window_s
    }
    state = {
        **state,
        "open": True,
        "opened": ts,
        "members": members,
        "window": {},
        "told": {"count": len(members), "at": now},
    }
    event = _outage(name, "open", ts, sorted(members), len(members), policy, state["opened"])
    return state, [
        Emit(
            event,
            f"more than {policy.threshold} printers of {policy.by} {name} offline within "
            f"{policy.window_s:.0f} s: one incident",
        ),
        Suppress(f"part of the {policy.by} {name} outage"),
    ]


def _tell_growth(state: State, name: str, ts: float, now: float, policy: GroupPolicy) -> tuple[State, list[Action]]:
    """The open group's incident told its grown count, when the throttle allows: a
    ``group.outage`` like the one that opened it (same ``group_id``, so the same incident
    at the vendors), with the new count and ids."""
    members = state["members"]
    told = state.get("told") or {"count": 0, "at": float("-inf")}  # opened before updates existed
    count = len(members)
    if (
        count <= told["count"]
        or count < told["count"] * (1 + policy.update_growth)
        or now - told["at"] < policy.update_s
    ):
        return state, []
    event = _outage(
        name, "open", max(ts, state["opened"]), sorted(members), count, policy, state["opened"], previous=told["count"]
    )
    return {**state, "told": {"count": count, "at": now}}, [
        Emit(
            event,
            f"{count - told['count']} more printers of {policy.by} {name} offline: the outage's "
            f"incident now counts {count}",
        )
    ]


def _resolve_group(state: State, name: str, now: float, policy: GroupPolicy) -> tuple[State, list[Action]]:
    members = state["members"]
    still = sorted(pid for pid, m in members.items() if m["state"] == "offline")
    event = _outage(name, "resolved", now, sorted(members), len(members), policy, state["opened"], still_offline=still)
    actions: list[Action] = [Emit(event, f"{len(members) - len(still)} of {len(members)} back")]
    # Those still offline are held for the grace, as a new offline page is held: most come
    # back moments after the rest of the site, and the clock's tick releases the others.
    window = {}
    for pid in still:
        member = members[pid]
        held = not member["paged"] and bool(member["record"])
        window[pid] = {
            "ts": now,
            "seen": now,
            "paged": not held,
            "record": member["record"] if held else None,
            "release_at": now + policy.resolve_grace_s if held else None,
            "after_outage": True,
        }
    state = {k: v for k, v in state.items() if k != "told"}
    state = {**state, "open": False, "opened": None, "members": {}, "window": window}
    if policy.resolve_grace_s <= 0:
        state, released = release_due(state, now, name, policy)
        actions += released
    return state, actions


def _outage(
    name: str,
    phase: str,
    ts: float,
    ids: list[str],
    count: int,
    policy: GroupPolicy,
    opened: float,
    still_offline: list[str] | None = None,
    previous: int | None = None,
) -> Event:
    details = {"state": phase, "dimension": policy.by, "count": str(count), "printer_ids": ",".join(ids)[:4000]}
    if still_offline is not None:
        details["still_offline"] = str(len(still_offline))
    # An update is an event of its own (its own id), about the same incident (group_id).
    tag: tuple[object, ...] = (phase,) if previous is None else (phase, count)
    if previous is not None:
        details["previous_count"] = str(previous)
    return Event(
        _id("outage", policy.by, name, opened, *tag),
        EventType.GROUP_OUTAGE,
        Severity.ERROR if phase == "open" else Severity.INFO,
        _micros(ts),
        {"group_id": f"{policy.by}:{name}", "group_name": name, "printer_ids": ids},
        "continuum-router",
        details,
    )


def simulate(events: list[Event], policy: HygienePolicy) -> list[tuple[Event, list[str]]]:
    """Run alerting pages through the decisions in event time (the clock is each event's
    timestamp): what happens to each page, and why. For ``rules test`` and reasoning."""
    flaps: dict[str, State] = {}
    groups: dict[str, State] = {}
    out: list[tuple[Event, list[str]]] = []
    for event in events:
        now = event.timestamp_us / 1_000_000
        notes: list[str] = []
        for name, state in list(groups.items()):
            new, actions = group_tick(state, now, name, policy.grouping)
            notes += [
                f"meanwhile, an earlier page was {_describe(a)}"
                if isinstance(a, Send)
                else f"meanwhile, {_describe(a)}"
                for a in actions
                if not isinstance(a, Suppress)
            ]
            if new is None:
                groups.pop(name)
            else:
                groups[name] = new
        for pid, state in list(flaps.items()):
            new, actions = flap_tick(state, now, policy.flapping)
            notes += [f"meanwhile, {_describe(a)}" for a in actions if not isinstance(a, Suppress)]
            if new is None:
                flaps.pop(pid)
            else:
                flaps[pid] = new
        if event.event_type not in (EventType.PRINTER_OFFLINE, EventType.PRINTER_ONLINE):
            out.append((event, notes + ["not a page: alert hygiene does not apply"]))
            continue
        kind = "offline" if event.event_type is EventType.PRINTER_OFFLINE else "online"
        pid = str(event.payload.get("printer_id"))
        record = Record(pid.encode(), event.event_id.encode())
        actions: list[Action] = [Send(record, "hygiene off")]
        if policy.flapping.enabled:
            flaps[pid], actions = flap_event(flaps.get(pid), kind, now, record, dict(event.payload), policy.flapping)
            notes += [_describe(a) for a in actions if not isinstance(a, Send)]
            actions = [a for a in actions if isinstance(a, Send)]
        name = event.payload.get(f"printer_{policy.grouping.by}")
        if actions and policy.grouping.enabled and name:
            groups[str(name)], actions = group_event(
                groups.get(str(name)), str(name), pid, kind, now, now, record, policy.grouping
            )
        notes += [_describe(a) for a in actions]
        out.append((event, notes))
    return out


def _describe(action: Action) -> str:
    if isinstance(action, Send):
        return f"sent to alerting: {action.why}"
    if isinstance(action, Emit):
        return f"alerting gets {action.event.event_type.value} ({action.event.details.get('state')}): {action.why}"
    return f"suppressed: {action.why}"


def drain(key: str, state: State, now: float, policy: HygienePolicy) -> list[Action]:
    """Hygiene switched off: settle a flapping printer, end an outage, release what is held."""
    if key.startswith("flap:"):
        if not state["flapping"]:
            return []
        return flap_tick({**state, "last_change": now - policy.flapping.quiet_s}, now, policy.flapping)[1]
    name, actions = key.removeprefix("group:"), []
    if state["open"]:
        state, actions = _resolve_group(state, name, now, policy.grouping)
    return (
        actions
        + release_due(
            {**state, "window": {p: {**e, "release_at": now} for p, e in state["window"].items()}},
            now,
            name,
            policy.grouping,
        )[1]
    )
