"""Operating integrations: ``integrations list|connect|disconnect|test``, ``connectors``,
``status``, ``replay`` and ``dlq list|redrive``. The work is in
:mod:`continuum_events.operations`; this module parses, prints and maps errors to exits
(1: the operation failed, 2: bad input)."""

from __future__ import annotations

import json
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from continuum_events import operations
from continuum_events.cli.common import BootstrapOption, console, fail, kafka_settings, out, parse_time, reachable
from continuum_events.integrations import IntegrationError, IntegrationSpec, connected, load_integrations
from continuum_events.rules import default_rule
from continuum_events.settings import KafkaSettings
from continuum_events.topology import category_topic

integrations_app = typer.Typer(help="Integrations: list, connect, disconnect, test.", no_args_is_help=True)
dlq_app = typer.Typer(help="Dead letters of an integration: list them, send them back.", no_args_is_help=True)

FileOption = typer.Option(None, "--file", "-f", help="Integrations YAML (see integrations.example.yaml).")


@contextmanager
def _operating() -> Iterator[None]:
    """The one place where failures become a clear message and an exit code."""
    try:
        yield
    except IntegrationError as exc:
        fail(str(exc), code=2)
    except (TimeoutError, RuntimeError) as exc:
        fail(str(exc))


def _from_file(path: Path | None) -> dict[str, IntegrationSpec]:
    if path is None:
        return {}
    return {s.name: s for s in load_integrations(path)}


def _settings(bootstrap_servers: str | None) -> KafkaSettings:
    settings = kafka_settings(bootstrap_servers)
    reachable(settings)
    return settings


def _spec(name: str, path: Path | None, config: Any) -> IntegrationSpec:
    """The integration as connected (or, with --file, as the file has it)."""
    spec = _from_file(path).get(name) if path else connected(config).get(name)
    if spec is None:
        where = f"in {path}" if path else "connected"
        known = ", ".join(sorted(_from_file(path) if path else connected(config))) or "none"
        raise IntegrationError(f"no integration named {name!r} {where} (known: {known})")
    return spec


# -- integrations -------------------------------------------------------------------------
@integrations_app.command("list")
def list_integrations(
    file: Path | None = FileOption,
    as_json: bool = typer.Option(False, "--json", help="JSON instead of a table."),
    bootstrap_servers: str | None = BootstrapOption,
) -> None:
    """Connected integrations (and, with --file, those the file defines), secrets by reference only."""
    with _operating():
        in_file = _from_file(file)
        config = operations.read_config(_settings(bootstrap_servers))
        live = connected(config)
        names = sorted({*in_file, *live})
        rows = []
        for name in names:
            spec = live.get(name) or in_file[name]
            rows.append(
                {
                    "name": name,
                    "vendor": spec.vendor,
                    "category": spec.topic_category,
                    "connected": name in live,
                    "in_file": name in in_file,
                    "differs_from_file": name in live and name in in_file and live[name] != in_file[name],
                    "start_from": spec.start_from,
                    "filters": len(spec.filters),
                    "secrets": {k: ref.describe() for k, ref in spec.secrets.items()},
                }
            )
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    table = Table("name", "vendor", "category", "connected", "filters", "secrets (references)", "start")
    for r in rows:
        state = "[green]yes[/]" if r["connected"] else "[dim]no (in file)[/]"
        if r["differs_from_file"]:
            state += " [yellow]file differs[/]"
        table.add_row(
            r["name"],
            r["vendor"],
            r["category"],
            state,
            str(r["filters"]),
            ", ".join(f"{k}: {v}" for k, v in r["secrets"].items()) or "-",
            r["start_from"],
        )
    out.print(table if rows else "no integrations connected" + ("" if file else " (give --file to see a file's)"))


@integrations_app.command("connect")
def connect(
    names: list[str] = typer.Argument(None, help="Integrations of the file to connect."),
    file: Path = typer.Option(Path("integrations.yaml"), "--file", "-f", help="Integrations YAML."),
    all_: bool = typer.Option(False, "--all", help="Connect every integration of the file."),
    start_from: str | None = typer.Option(
        None, help="earliest or latest: where a NEW integration starts (default: the file's start_from, else latest)."
    ),
    bootstrap_servers: str | None = BootstrapOption,
) -> None:
    """Connect integrations: write them to the config topic and set their category's routing.

    A new integration starts from now (latest) or from the earliest retained event
    (earliest); an integration connected before keeps its position.
    """
    if start_from not in (None, "earliest", "latest"):
        raise typer.BadParameter("earliest or latest", param_hint="--start-from")
    with _operating():
        specs = _from_file(file)
        chosen = list(specs) if all_ else names or []
        if not chosen:
            raise IntegrationError(
                f"name the integrations to connect, or --all (in {file}: {', '.join(specs) or 'none'})"
            )
        unknown = [n for n in chosen if n not in specs]
        if unknown:
            raise IntegrationError(f"not in {file}: {', '.join(unknown)} (it has: {', '.join(specs) or 'none'})")
        settings = _settings(bootstrap_servers)
        config = operations.read_config(settings)
        for name in chosen:
            spec = specs[name] if start_from is None else specs[name].model_copy(update={"start_from": start_from})
            done = operations.connect(settings, spec, config)
            config = {**config, spec.key: spec.model_dump(mode="json")}
            if done.default_rule_written:
                rule = default_rule(spec.topic_category)
                config = {**config, rule.key: rule.model_dump(mode="json")}
            start = (
                (
                    f"starts from the {done.positioned} event"
                    + (
                        f" ({done.records_behind} retained records to deliver)"
                        if done.positioned == "earliest"
                        else "s from now on"
                    )
                )
                if done.positioned
                else f"resumes where it stopped ({done.records_behind} records behind)"
            )
            out.print(
                f"connected [bold]{name}[/] ({spec.vendor} ← {category_topic(spec.topic_category)}); {start}"
                + (f"; default {spec.topic_category} routing written" if done.default_rule_written else "")
            )


@integrations_app.command("disconnect")
def disconnect(
    name: str = typer.Argument(..., help="Integration name."), bootstrap_servers: str | None = BootstrapOption
) -> None:
    """Disconnect an integration: its connector stops; its position and dead letters are kept."""
    with _operating():
        operations.disconnect(_settings(bootstrap_servers), name)
    out.print(f"disconnected {name} (its consumer group and dead letters are kept; connect again to resume)")


@integrations_app.command("test")
def test_integration(
    name: str = typer.Argument(..., help="Integration name."),
    file: Path | None = FileOption,
    bootstrap_servers: str | None = BootstrapOption,
) -> None:
    """Test the connection with the vendor's real check and print the verdict (exit 1 if it fails)."""
    with _operating():
        config = {} if file else operations.read_config(_settings(bootstrap_servers))
        spec = _spec(name, file, config)
    try:
        verdict = operations.test_connection(spec)
    except operations.ConnectionFailed as exc:
        out.print(f"[red]FAILED[/] ({exc.kind}): {name}: {exc}")
        raise typer.Exit(1) from None
    out.print(f"[green]OK[/]: {name}: {verdict}")


def connectors(
    only: list[str] = typer.Option([], "--only", help="Run only this integration; repeat for several."),
    metrics_port: int | None = typer.Option(None, help="Serve Prometheus metrics on this port."),
    metrics_address: str = typer.Option("127.0.0.1", help="Address for the metrics (0.0.0.0 in a container)."),
    bootstrap_servers: str | None = BootstrapOption,
) -> None:
    """Run the connected integrations' connectors (following connects and disconnects live)."""
    from continuum_events.connectors.host import ConnectorHost

    settings = _settings(bootstrap_servers)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    console.print(
        f"connectors running on {settings.describe()}"
        f"{' for ' + ', '.join(only) if only else ''}; Ctrl-C stops them after the batches in hand"
    )
    ConnectorHost(settings, only=only, metrics_port=metrics_port, metrics_address=metrics_address).run(stop)


# -- status -----------------------------------------------------------------------------
def status(
    as_json: bool = typer.Option(False, "--json", help="JSON instead of a table."),
    bootstrap_servers: str | None = BootstrapOption,
) -> None:
    """Per integration: connected, healthy, lag, last delivery, errors, dead letters waiting."""
    from continuum_events.status import StatusBoard, integration_status

    with _operating():
        settings = _settings(bootstrap_servers)
        board = StatusBoard(settings).start()
        try:
            board.wait_ready(15)
            statuses = integration_status(settings, operations.read_config(settings), board)
        finally:
            board.stop()
    if as_json:
        typer.echo(json.dumps([s.as_json() for s in statuses], indent=2))
        return
    if not statuses:
        out.print("no integrations connected (see `continuum-events integrations connect --help`)")
        return
    style = {"healthy": "green", "retrying": "yellow", "unhealthy": "red", "invalid": "red", "not running": "dim"}
    table = Table(
        "integration",
        "vendor",
        "state",
        "lag",
        "last delivery",
        "delivered",
        "retried",
        "dead-lettered",
        "DLQ waiting",
        "errors",
        "last error",
    )
    for s in statuses:
        table.add_row(
            s.name,
            s.vendor,
            f"[{style.get(s.state, 'white')}]{s.state}[/]" + (f" ×{s.instances}" if s.instances > 1 else ""),
            _num(s.lag),
            _ago(s.last_delivery),
            str(s.delivered),
            str(s.retried),
            str(s.dead_lettered),
            _num(s.dead_letters_waiting),
            str(s.errors),
            f"{_ago(s.last_error_at)}: {s.last_error[:80]}" if s.last_error else "-",
        )
    out.print(table)


def _num(value: int | None) -> str:
    return "?" if value is None else f"{value:,}"


def _ago(when: float | None) -> str:
    if when is None:
        return "never"
    seconds = max(0.0, time.time() - when)
    return (
        f"{seconds:.0f} s ago"
        if seconds < 120
        else f"{seconds / 60:.0f} min ago"
        if seconds < 7200
        else datetime.fromtimestamp(when, UTC).strftime("%Y-%m-%d %H:%M UTC")
    )


# -- replay and dead letters ---------------------------------------------------------------
def _progress(label: str) -> Progress:
    return Progress(
        TextColumn(label), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(), console=console, transient=False
    )


def _run_delivery(label: str, work: Any) -> operations.Delivery:
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with _progress(label) as bar:
        task = bar.add_task(label, total=None)
        try:
            return work(stop, lambda total: bar.update(task, total=total), lambda n: bar.advance(task, n))
        except KeyboardInterrupt:
            stop.set()
            raise


def _report(what: str, result: operations.Delivery) -> None:
    out.print(
        f"{what}: {result.selected} selected of {result.considered} read, {result.delivered} delivered, "
        f"{result.dead_lettered} dead-lettered, {result.filtered} skipped by the integration's filters, "
        f"in {result.seconds:.1f} s"
    )
    if not result.completed:
        out.print("[yellow]stopped before the end[/]: run the same command again to finish")
        raise typer.Exit(1)


def replay(
    name: str = typer.Argument(..., help="The integration to re-deliver to (no other is touched)."),
    from_: str = typer.Option(
        ...,
        "--from",
        help="Start: ISO time (2026-11-27T08:00, UTC unless an offset is given) or an age such as 6h, 30m, 2d.",
    ),
    to: str | None = typer.Option(None, "--to", help="End (exclusive), same forms; default: now."),
    bootstrap_servers: str | None = BootstrapOption,
) -> None:
    """Re-deliver a window of event history to one integration, with progress and a summary."""
    start_ms, end_ms = parse_time(from_, "--from"), parse_time(to, "--to") if to else None
    if end_ms is not None and end_ms <= start_ms:
        raise typer.BadParameter("--to must be later than --from", param_hint="--to")
    with _operating():
        settings = _settings(bootstrap_servers)
        config = operations.read_config(settings)
        spec = _spec(name, None, config)
        result = _run_delivery(
            f"replay to {name}",
            lambda stop, plan, advance: operations.replay(
                settings, spec, start_ms, end_ms, stop, config=config, on_plan=plan, on_progress=advance
            ),
        )
    _report(f"replayed to {name}", result)


@dlq_app.command("list")
def dlq_list(
    name: str = typer.Argument(..., help="Integration name."),
    as_json: bool = typer.Option(False, "--json", help="JSON instead of a table."),
    show_redriven: bool = typer.Option(False, "--all", help="Include dead letters already redriven."),
    bootstrap_servers: str | None = BootstrapOption,
) -> None:
    """Dead letters of an integration, grouped by reason, with counts."""
    from continuum_events.codec import EventCodec

    with _operating():
        settings = _settings(bootstrap_servers)
        letters = operations.list_dead_letters(settings, name)
        groups = operations.summarize_dead_letters(
            [d for d in letters if show_redriven or not d.redriven], EventCodec(settings.schema_registry())
        )
    if as_json:
        typer.echo(
            json.dumps(
                [
                    {
                        "reason": g.reason,
                        "stage": g.stage,
                        "count": g.count,
                        "waiting": g.waiting,
                        "event_types": dict(g.event_types),
                        "first_ms": g.first_ms,
                        "last_ms": g.last_ms,
                    }
                    for g in groups
                ],
                indent=2,
            )
        )
        return
    waiting = sum(not d.redriven for d in letters)
    if not groups:
        out.print(f"{name}: no dead letters waiting ({len(letters)} retained, all redriven)")
        return
    table = Table("count", "waiting", "reason", "stage", "event types", "last")
    for g in groups:
        table.add_row(
            str(g.count),
            str(g.waiting),
            g.reason[:100],
            g.stage,
            ", ".join(f"{t} ×{n}" for t, n in g.event_types.most_common(3)),
            _ago(g.last_ms / 1000) if g.last_ms else "?",
        )
    out.print(table)
    out.print(f"{waiting} waiting of {len(letters)} retained; `continuum-events dlq redrive {name}` sends them again")


@dlq_app.command("redrive")
def dlq_redrive(
    name: str = typer.Argument(..., help="Integration name."),
    filter_: str | None = typer.Option(None, "--filter", help="Only dead letters whose reason contains this text."),
    event_type: str | None = typer.Option(None, help="Only this event type or pattern (printer.*)."),
    bootstrap_servers: str | None = BootstrapOption,
) -> None:
    """Send dead letters back through delivery once the cause is fixed; each is sent once."""
    with _operating():
        settings = _settings(bootstrap_servers)
        config = operations.read_config(settings)
        spec = _spec(name, None, config)
        result = _run_delivery(
            f"redrive to {name}",
            lambda stop, plan, advance: operations.redrive(
                settings,
                spec,
                stop,
                reason=filter_,
                event_type=event_type,
                config=config,
                on_plan=plan,
                on_progress=advance,
            ),
        )
    _report(f"redriven to {name}", result)
