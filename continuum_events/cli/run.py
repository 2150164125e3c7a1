"""``continuum-events run``: the whole pipeline on one machine, with a live view.

On the embedded broker by default, or on a real cluster with ``--bootstrap-servers``
(and the CONTINUUM_KAFKA_* TLS/SASL settings). It starts the parts that exist —
today the demo source feeding ``dispatch_event`` — and shows what flows through
``printer-events``. Ctrl-C (or ``--duration``) stops everything cleanly: the
producer delivers or spools what it holds before the broker goes.
"""

from __future__ import annotations

import contextlib
import threading
import time
from pathlib import Path

import typer
from confluent_kafka.admin import AdminClient
from rich.console import Group
from rich.live import Live
from rich.panel import Panel
from rich.table import Table

from continuum_events.broker import BrokerError, EmbeddedBroker, free_port, port_open
from continuum_events.cli.common import BootstrapOption, bootstrap_from_env, console, kafka_settings
from continuum_events.cli.events import describe
from continuum_events.monitor import FlowMonitor, FlowSnapshot
from continuum_events.producers.app import EventProducer, ProducerStats
from continuum_events.producers.demo import DemoFleet, run_demo
from continuum_events.topology import EVENTS_TOPIC, Topology, ensure_topology

SEVERITY_STYLE = {"info": "green", "warning": "yellow", "error": "red", "critical": "bold red"}


def run(
    bootstrap_servers: str | None = BootstrapOption,
    broker_port: int = typer.Option(9092, help="Port of the embedded broker (a free one is used if taken)."),
    rate: float = typer.Option(25.0, help="Demo events per second."),
    printers: int = typer.Option(60, help="Printers in the simulated fleet."),
    duration: float = typer.Option(0, help="Stop after this many seconds (0: run until Ctrl-C)."),
    view: bool = typer.Option(True, "--view/--no-view", help="Live terminal view, or a summary line every 5 s."),
    spool: Path = typer.Option(Path(".state/spool.db"), help="The producer's local spool for broker outages."),
) -> None:
    """Run the pipeline: embedded broker (unless --bootstrap-servers), demo source, live view."""
    embedded: EmbeddedBroker | None = None
    stop = threading.Event()
    with contextlib.ExitStack() as cleanup:
        if bootstrap_servers is None and bootstrap_from_env() is None:
            port = broker_port if not port_open("127.0.0.1", broker_port) else free_port()
            if port != broker_port:
                console.print(f"port {broker_port} is taken; the embedded broker uses {port}")
            embedded = EmbeddedBroker(port=port)
            try:
                embedded.start()
            except BrokerError as exc:
                console.print(f"[red]error:[/] {exc}")
                raise typer.Exit(1) from None
            cleanup.callback(embedded.stop)
            bootstrap_servers = embedded.bootstrap_servers
        settings = kafka_settings(bootstrap_servers)
        if embedded is None:
            ensure_topology(AdminClient(settings.client_config()), Topology())
        console.print(f"pipeline on {settings.describe()}{' (embedded broker)' if embedded else ''}")

        monitor = FlowMonitor(settings, EVENTS_TOPIC).start()
        cleanup.callback(monitor.stop)
        producer = EventProducer(settings, source="continuum-demo", spool_path=spool)
        cleanup.callback(producer.close)
        demo = threading.Thread(
            target=run_demo, args=(producer, DemoFleet(printers=printers), rate, stop), name="demo", daemon=True
        )
        demo.start()
        cleanup.callback(demo.join, 5)
        cleanup.callback(stop.set)

        started = time.monotonic()
        try:
            if view:
                with Live(render(monitor.snapshot(), producer.stats(), 0), console=console, refresh_per_second=4) as live:
                    while not _done(started, duration, stop):
                        live.update(render(monitor.snapshot(), producer.stats(), time.monotonic() - started))
            else:
                while not _done(started, duration, stop, tick=5):
                    console.print(summary(monitor.snapshot(), producer.stats()))
        except KeyboardInterrupt:
            console.print("stopping…")
        stop.set()
        demo.join(5)
        producer.flush(10)
        time.sleep(0.5)  # let the monitor see the last events
        console.print(summary(monitor.snapshot(), producer.stats()))


def _done(started: float, duration: float, stop: threading.Event, tick: float = 0.25) -> bool:
    if duration and time.monotonic() - started >= duration:
        return True
    return stop.wait(min(tick, max(0.05, duration - (time.monotonic() - started))) if duration else tick)


def summary(flow: FlowSnapshot, stats: ProducerStats) -> str:
    return (f"events: dispatched {stats.dispatched}, delivered {stats.delivered}, seen on {EVENTS_TOPIC} "
            f"{flow.total} ({flow.rate:.1f}/s), undecodable {flow.undecodable}; producer {stats.mode}, "
            f"spooled {stats.spooled}, refused {stats.dropped}")


def render(flow: FlowSnapshot, stats: ProducerStats, elapsed: float) -> Group:
    """The live view: what flows in, by type and severity, and the latest events."""
    head = Table.grid(padding=(0, 3))
    head.add_row(
        f"[bold]{flow.rate:7.1f}[/] events/s", f"[bold]{flow.total}[/] seen on {EVENTS_TOPIC}",
        f"producer [bold]{stats.mode}[/] (spooled {stats.spooled}, refused {stats.dropped})",
        f"undecodable {flow.undecodable}", f"up {elapsed:5.0f} s",
    )
    by_type = Table("event type", "count", title="by type", expand=True)
    for name, count in flow.by_type.most_common(12):
        by_type.add_row(name, str(count))
    by_severity = Table("severity", "count", title="by severity", expand=True)
    for name in ("info", "warning", "error", "critical"):
        by_severity.add_row(f"[{SEVERITY_STYLE[name]}]{name}[/]", str(flow.by_severity.get(name, 0)))
    counts = Table.grid(expand=True)
    counts.add_row(by_type, by_severity)
    latest = sorted(flow.recent, key=lambda e: e.timestamp_us, reverse=True)
    recent = "\n".join(describe(e) for e in latest) or "waiting for events…"
    return Group(Panel(head, title="continuum-events — Ctrl-C stops"), counts, Panel(recent, title="latest"))
