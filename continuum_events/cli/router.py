"""``continuum-events router`` and ``continuum-events rules``: run the router, inspect and change its rules."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from pydantic import ValidationError
from rich.table import Table

from continuum_events.avro import SchemaViolation
from continuum_events.cli.common import BootstrapOption, console, kafka_settings, key_values, out, parse_time
from continuum_events.codec import EventCodec
from continuum_events.config import ConfigStore, delete_rule, ensure_category_defaults, write_hygiene, write_rule
from continuum_events.events import Event, EventType, Severity, new_event_id, now_micros
from continuum_events.hygiene import FlapPolicy, GroupPolicy, HygienePolicy, simulate
from continuum_events.integrations import connected
from continuum_events.processors.app import APP_ID
from continuum_events.rules import Rule, RuleSet, explain, route
from continuum_events.topology import CATEGORIES, EVENTS_TOPIC

#: The router's processing guarantees, as the command line names them -> Faust's names.
GUARANTEES = {"at-least-once": "at_least_once", "exactly-once": "exactly_once"}
GUARANTEE_ENV = "CONTINUUM_ROUTER_GUARANTEE"

rules_app = typer.Typer(
    help="Routing rules: list, set, delete, reset to defaults, test an event.", no_args_is_help=True
)


def router(
    bootstrap_servers: str | None = BootstrapOption,
    datadir: Path = typer.Option(Path(".state/router"), help="Faust's data directory (one per worker on a host)."),
    source_topic: str = typer.Option(EVENTS_TOPIC, help="Topic to route from (benchmarks and tests).", hidden=True),
    app_id: str = typer.Option(APP_ID, help="Faust app id, i.e. the consumer group.", hidden=True),
    guarantee: str = typer.Option(
        "at-least-once",
        envvar=GUARANTEE_ENV,
        help="at-least-once, or exactly-once: "
        "outputs and input offsets in one Kafka transaction (Apache Kafka only; "
        "consumers read read_committed).",
    ),
    metrics_port: int | None = typer.Option(
        None,
        help="Serve Prometheus metrics on this port (deploy/ uses 9401): "
        "routed per category, dead letters, lag, rule version, hygiene holds.",
    ),
    metrics_address: str = typer.Option(
        "127.0.0.1", help="Address the metrics port listens on (0.0.0.0 for a scraper on another host)."
    ),
) -> None:
    """Run a router worker: printer-events -> per-category topics, by the live rules.

    Start several (same command) to share the partitions; Ctrl-C stops one cleanly.
    """
    from continuum_events.processors.worker import run_worker

    if guarantee not in GUARANTEES:
        raise typer.BadParameter(f"{guarantee!r}: expected {' or '.join(GUARANTEES)}", param_hint="--guarantee")
    run_worker(
        kafka_settings(bootstrap_servers),
        datadir,
        source_topic=source_topic,
        app_id=app_id,
        guarantee=GUARANTEES[guarantee],
        metrics_port=metrics_port,
        metrics_address=metrics_address,
    )


def _store(bootstrap_servers: str | None) -> ConfigStore:
    store = ConfigStore(kafka_settings(bootstrap_servers)).start()
    if not store.wait_ready(15):
        console.print("[red]error:[/] could not read the config topic within 15 s")
        raise typer.Exit(1)
    return store


@rules_app.command("list")
def list_rules(
    bootstrap_servers: str | None = BootstrapOption,
    as_json: bool = typer.Option(False, "--json", help="JSON instead of a table."),
) -> None:
    """Every routing rule and integration filter in effect, in evaluation order."""
    store = _store(bootstrap_servers)
    ruleset = store.ruleset()
    store.stop()
    rules = [r for c in CATEGORIES for r in ruleset.routing_rules(c)] + [r for r in ruleset.rules if r.integration]
    if as_json:
        typer.echo(json.dumps([r.model_dump(mode="json") for r in rules], indent=2))
        return
    table = Table("category", "rule", "integration", "event types", "min severity", "where", "transforms", "enabled")
    for r in rules:
        builtin = " (built-in)" if r.category in ruleset.builtin and r.integration is None else ""
        table.add_row(
            r.category,
            r.name + builtin,
            r.integration or "-",
            ", ".join(r.event_types),
            r.min_severity,
            "; ".join(f"{k} in {', '.join(v)}" for k, v in r.where.items()) or "-",
            ", ".join([*(f"drop {f}" for f in r.drop), *(f"mask {f}" for f in r.mask)]) or "-",
            "yes" if r.enabled else "no",
        )
    out.print(table)
    for key, problem in store.invalid.items():
        console.print(f"[yellow]ignored invalid {key}:[/] {problem}")


@rules_app.command("set")
def set_rule(
    name: str = typer.Argument(..., help="Rule name (unique; replaces a rule of the same name)."),
    category: str = typer.Option(..., help="logging, monitoring or alerting."),
    event_types: list[str] = typer.Option(["*"], "--event-type", "-t", help="Type or pattern; repeat for several."),
    min_severity: str = typer.Option("info", help="Severity floor."),
    where: list[str] = typer.Option([], help="FIELD=VALUE[,VALUE]: only these values; repeat for several fields."),
    drop: list[str] = typer.Option([], help="Field to drop; repeat for several."),
    mask: list[str] = typer.Option([], help="Field to mask; repeat for several."),
    integration: str | None = typer.Option(None, help="Make it a filter of this integration only."),
    priority: int = typer.Option(100, help="Lower is tried first."),
    disabled: bool = typer.Option(False, "--disabled", help="Store it switched off."),
    bootstrap_servers: str | None = BootstrapOption,
) -> None:
    """Create or replace a rule; routers apply it to the next events, no restart."""
    try:
        rule = Rule(
            name=name,
            category=category,
            event_types=tuple(event_types),
            min_severity=min_severity,
            where={
                f: tuple(v.strip() for v in allowed.split(",")) for f, allowed in key_values(where, "--where").items()
            },
            drop=tuple(drop),
            mask=tuple(mask),
            integration=integration,
            priority=priority,
            enabled=not disabled,
        )
    except ValidationError as exc:
        raise typer.BadParameter(
            "; ".join(f"{'.'.join(map(str, e['loc'])) or 'rule'}: {e['msg']}" for e in exc.errors())
        ) from None
    write_rule(kafka_settings(bootstrap_servers), rule)
    console.print(f"rule {name} written")


@rules_app.command("delete")
def delete(name: str, bootstrap_servers: str | None = BootstrapOption) -> None:
    """Delete a rule (a category left without rules falls back to its built-in default)."""
    delete_rule(kafka_settings(bootstrap_servers), name)
    console.print(f"rule {name} deleted")


@rules_app.command("defaults")
def defaults(
    category: str = typer.Argument(..., help="logging, monitoring or alerting."),
    bootstrap_servers: str | None = BootstrapOption,
) -> None:
    """Write a category's default routing rule if it has none (connecting an integration does this)."""
    if category not in CATEGORIES:
        raise typer.BadParameter(f"{category!r} is not one of {', '.join(CATEGORIES)}")
    store = _store(bootstrap_servers)
    wrote = ensure_category_defaults(kafka_settings(bootstrap_servers), store, category)
    store.stop()
    console.print(f"{category}: {'default rule written' if wrote else 'already has routing rules; unchanged'}")


@rules_app.command("test")
def test(
    event_json: str = typer.Argument(
        ...,
        help='{"event_type": "printer.offline", "severity": "warning", '
        '"payload": {"printer_id": "p-1", ...}, "at": "2m"}',
    ),
    after: Path | None = typer.Option(
        None,
        "--after",
        help="Earlier events, one JSON per line (same form, with "
        '"at": an ISO time or an age such as 5m), to see alert '
        "hygiene decide in context.",
    ),
    offline: bool = typer.Option(False, "--offline", help="Use the built-in defaults; do not read the cluster."),
    bootstrap_servers: str | None = BootstrapOption,
) -> None:
    """Which categories and integrations an event reaches, and why (like `amtool config routes test`);
    for an alerting page, what alert hygiene does with it and why."""
    event = _parse_event(event_json)
    history = _history(after) if after else []
    integrations: dict[str, str] = {}
    policy = None
    if offline:
        ruleset = RuleSet.of([])
    else:
        store = _store(bootstrap_servers)
        ruleset = store.ruleset()
        policy = store.hygiene()
        integrations = {name: spec.topic_category for name, spec in connected(store.values()).items()}
        store.stop()
    verdicts = explain(event, ruleset, integrations)
    table = Table("category", "integration", "rule", "verdict", "why")
    for v in verdicts:
        table.add_row(
            v.category, v.integration or "-", v.rule, "[green]reached[/]" if v.matched else "[dim]no[/]", v.reason
        )
    out.print(table)
    reached = [c for c in CATEGORIES if any(v.matched and v.category == c and v.integration is None for v in verdicts)]
    typer.echo(f"reaches: {', '.join(reached) or 'nothing'}")
    if "alerting" in reached and event.event_type in (EventType.PRINTER_OFFLINE, EventType.PRINTER_ONLINE):
        if policy is None:
            typer.echo("alert hygiene: not configured (`continuum-events rules hygiene set`): the page goes out as is")
            return
        pages = [e for e in history if any(d.category == "alerting" for d in route(e, ruleset))]
        for line in simulate([*pages, event], policy)[-1][1]:
            typer.echo(f"alert hygiene: {line}")


def _history(path: Path) -> list[Event]:
    try:
        lines = [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    except OSError as exc:
        raise typer.BadParameter(f"cannot read {path}: {exc.strerror}", param_hint="--after") from None
    events = [_parse_event(line) for line in lines]
    return sorted(events, key=lambda e: e.timestamp_us)


def _parse_event(text: str) -> Event:
    try:
        raw = json.loads(text)
        event_type = EventType(raw["event_type"])
        at = parse_time(str(raw["at"]), "at") * 1000 if raw.get("at") else now_micros()
        event = Event(
            raw.get("event_id") or new_event_id(),
            event_type,
            Severity(raw.get("severity", "info")),
            at,
            raw.get("payload", {}),
            raw.get("source", "continuum"),
            raw.get("details", {}),
        )
        EventCodec().encode(event, "printer-events")  # the same validation as dispatch_event
        return event
    except (ValueError, KeyError, TypeError, SchemaViolation) as exc:
        raise typer.BadParameter(f"not a valid event: {exc}", param_hint="EVENT_JSON") from None


hygiene_app = typer.Typer(
    help="Alert hygiene: flap suppression and outage grouping for alerting pages.", no_args_is_help=True
)
rules_app.add_typer(hygiene_app, name="hygiene")


@hygiene_app.command("show")
def hygiene_show(bootstrap_servers: str | None = BootstrapOption) -> None:
    """The policy in effect (or that none is)."""
    store = _store(bootstrap_servers)
    policy = store.hygiene()
    store.stop()
    if policy is None:
        typer.echo("alert hygiene: not configured; alerting pages go out as routed")
        return
    typer.echo(json.dumps(policy.model_dump(mode="json"), indent=2))


@hygiene_app.command("set")
def hygiene_set(
    flap_changes: int = typer.Option(4, help="More than this many offline/online changes ..."),
    flap_window: float = typer.Option(600, help="... within this many seconds: flapping."),
    quiet: float = typer.Option(600, help="Stable this many seconds: the flapping alert resolves."),
    group_by: str = typer.Option("location", help="location or department."),
    group_threshold: int = typer.Option(10, help="More than this many printers offline ..."),
    group_window: float = typer.Option(120, help="... within this many seconds: one outage incident."),
    hold: float = typer.Option(30, help="Seconds an offline page waits for an outage to show (the group wait)."),
    resolve_ratio: float = typer.Option(0.8, help="The outage resolves when this share of its printers is back."),
    resolve_grace: float = typer.Option(
        120,
        help="A printer still offline when its outage resolves is paged on its "
        "own only if still offline this many seconds later.",
    ),
    update_every: float = typer.Option(
        30, help="An open outage's page gets its grown printer count at most once per this many seconds ..."
    ),
    update_growth: float = typer.Option(0.1, help="... and once the count grew by this share (0.1: 10 %)."),
    no_flapping: bool = typer.Option(False, "--no-flapping", help="Switch flap suppression off."),
    no_grouping: bool = typer.Option(False, "--no-grouping", help="Switch outage grouping off."),
    bootstrap_servers: str | None = BootstrapOption,
) -> None:
    """Set the policy; routers apply it to the next pages, no restart."""
    try:
        policy = HygienePolicy(
            flapping=FlapPolicy(enabled=not no_flapping, changes=flap_changes, window_s=flap_window, quiet_s=quiet),
            grouping=GroupPolicy(
                enabled=not no_grouping,
                by=group_by,
                threshold=group_threshold,
                window_s=group_window,
                hold_s=hold,
                resolve_ratio=resolve_ratio,
                resolve_grace_s=resolve_grace,
                update_s=update_every,
                update_growth=update_growth,
            ),
        )
    except ValidationError as exc:
        raise typer.BadParameter(
            "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        ) from None
    write_hygiene(kafka_settings(bootstrap_servers), policy)
    console.print("alert hygiene set")


@hygiene_app.command("off")
def hygiene_off(bootstrap_servers: str | None = BootstrapOption) -> None:
    """Switch alert hygiene off: pages go to alerting as routed (held pages are still released)."""
    write_hygiene(kafka_settings(bootstrap_servers), None)
    console.print("alert hygiene off")
