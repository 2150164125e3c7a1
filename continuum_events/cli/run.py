"""``continuum-events run``: the whole pipeline on one machine, with a live view.

On the embedded broker by default, or on a real cluster with ``--bootstrap-servers``
(and the CONTINUUM_KAFKA_* TLS/SASL settings). It starts the parts that exist —
the demo source feeding ``dispatch_event`` and a router worker (supervised:
restarted if it crashes) — and shows what flows into ``printer-events`` and out to
each category topic. Ctrl-C (or ``--duration``) stops everything cleanly: the
producer delivers or spools what it holds before the broker goes.
"""

from __future__ import annotations

import contextlib
import signal
import subprocess
import sys
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
from continuum_events.settings import KafkaSettings
from continuum_events.topology import CATEGORIES, EVENTS_TOPIC, Topology, category_topic, ensure_topology

SEVERITY_STYLE = {"info": "green", "warning": "yellow", "error": "red", "critical": "bold red"}


def run(
    bootstrap_servers: str | None = BootstrapOption,
    broker_port: int = typer.Option(9092, help="Port of the embedded broker (a free one is used if taken)."),
    rate: float = typer.Option(25.0, help="Demo events per second."),
    printers: int = typer.Option(60, help="Printers in the simulated fleet."),
    duration: float = typer.Option(0, help="Stop after this many seconds (0: run until Ctrl-C)."),
    view: bool = typer.Option(True, "--view/--no-view", help="Live terminal view, or a summary line every 5 s."),
    spool: Path = typer.Option(Path(".state/spool.db"), help="The producer's local spool for broker outages."),
    router: bool = typer.Option(True, "--router/--no-router", help="Run a router worker (category routing)."),
) -> None:
    """Run the pipeline: embedded broker (unless --bootstrap-servers), demo source, router, live view."""
    embedded: EmbeddedBroker | None = None
    stop = threading.Event()
    # SIGTERM (a service manager, `timeout`, `kill`) stops as cleanly as Ctrl-C: no broker
    # or router process is left behind, nothing owed is left unflushed.
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
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
        flows = {c: FlowMonitor(settings, category_topic(c)).start() for c in (*CATEGORIES, "dlq")}
        for flow in flows.values():
            cleanup.callback(flow.stop)
        parts = Supervisor(settings, spool.parent) if router else None
        if parts is not None:
            parts.start()
            cleanup.callback(parts.stop)
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
                with Live(console=console, refresh_per_second=4) as live:
                    while not _done(started, duration, stop):
                        if parts is not None:
                            parts.check()
                        live.update(render(monitor.snapshot(), producer.stats(), time.monotonic() - started,
                                           {c: f.snapshot() for c, f in flows.items()}, parts))
            else:
                while not _done(started, duration, stop, tick=5):
                    if parts is not None:
                        parts.check()
                    console.print(summary(monitor.snapshot(), producer.stats(), flows))
        except KeyboardInterrupt:
            console.print("stopping…")
        stop.set()
        demo.join(5)
        producer.flush(10)
        if parts is not None:
            _wait_routed(monitor, flows["logging"], timeout=15)
        time.sleep(0.5)  # let the monitors see the last events
        console.print(summary(monitor.snapshot(), producer.stats(), flows))


def _done(started: float, duration: float, stop: threading.Event, tick: float = 0.25) -> bool:
    if duration and time.monotonic() - started >= duration:
        return True
    return stop.wait(min(tick, max(0.05, duration - (time.monotonic() - started))) if duration else tick)


def _wait_routed(source: FlowMonitor, logging_flow: FlowMonitor, timeout: float) -> None:
    """Logging receives every event: wait until it has caught up with the source."""
    deadline = time.monotonic() + timeout
    while logging_flow.snapshot().total < source.snapshot().total and time.monotonic() < deadline:
        time.sleep(0.2)


class Supervisor:
    """Runs the pipeline's worker processes; a crashed one is restarted and reported."""

    def __init__(self, settings: KafkaSettings, state: Path) -> None:
        self.settings, self.state = settings, state
        self.process: subprocess.Popen[bytes] | None = None
        self.restarts = 0
        self.log_path = state / "router.log"

    def start(self) -> None:
        self.state.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "continuum_events", "router", "-b", self.settings.bootstrap_servers,
                 "--datadir", str(self.state / "router")], stdout=log, stderr=subprocess.STDOUT,
                # Its own session: a terminal's Ctrl-C reaches `run` only, which lets the router
                # route the last events before stopping it.
                start_new_session=True,
            )

    def check(self) -> None:
        if self.process is not None and self.process.poll() is not None:
            self.restarts += 1
            console.log(f"[red]router exited with {self.process.returncode}[/]; restarting (see {self.log_path})")
            self.start()

    @property
    def status(self) -> str:
        return f"router pid {self.process.pid if self.process else '-'}, restarts {self.restarts}"

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()


def summary(flow: FlowSnapshot, stats: ProducerStats, flows: dict[str, FlowMonitor] | None = None) -> str:
    routed = ""
    if flows:
        snaps = {c: f.snapshot() for c, f in flows.items()}
        routed = "; routed " + ", ".join(f"{c} {s.total + s.undecodable}" for c, s in snaps.items())
    return (f"events: dispatched {stats.dispatched}, delivered {stats.delivered}, seen on {EVENTS_TOPIC} "
            f"{flow.total} ({flow.rate:.1f}/s), undecodable {flow.undecodable}; producer {stats.mode}, "
            f"spooled {stats.spooled}, refused {stats.dropped}{routed}")


def render(flow: FlowSnapshot, stats: ProducerStats, elapsed: float, categories: dict[str, FlowSnapshot],
           parts: Supervisor | None) -> Group:
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
    routed = Table("to", "events/s", "total", title=f"routed to {EVENTS_TOPIC}.*", expand=True)
    for name, snap in categories.items():
        routed.add_row(name, f"{snap.rate:.1f}", str(snap.total + snap.undecodable))
    routed.caption = parts.status if parts else "router not running (--no-router)"
    counts = Table.grid(expand=True)
    counts.add_row(by_type, by_severity, routed)
    latest = sorted(flow.recent, key=lambda e: e.timestamp_us, reverse=True)
    recent = "\n".join(describe(e) for e in latest) or "waiting for events…"
    return Group(Panel(head, title="continuum-events — Ctrl-C stops"), counts, Panel(recent, title="latest"))
