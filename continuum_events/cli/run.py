"""``continuum-events run``: the whole pipeline on one machine, with a live view.

On a local broker by default — Apache Kafka keeping its data in ``.state/kafka`` so a
second run has the first one's history (Tansu, memory only, where Java or the Kafka jars
cannot be had, or with ``--engine tansu``) — or on a real cluster with ``--bootstrap-servers``
(and the CONTINUUM_KAFKA_* TLS/SASL settings). It connects the integrations of
``--integrations`` (or, with none anywhere, demo integrations delivering to local
contract receivers), then starts and supervises the parts — a router worker, a
connector host, the SNMP probe over a simulated fleet, the demo source feeding
``dispatch_event`` — restarting and reporting any part that dies. The live view shows
what flows in, what each category receives and what each integration delivers.
Ctrl-C (or ``--duration``) stops everything cleanly: the producer delivers or spools
what it holds, connectors finish their batch and commit, before the broker goes.
"""

from __future__ import annotations

import contextlib
import random
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import typer
from confluent_kafka.admin import AdminClient
from rich.console import Group
from rich.live import Live
from rich.panel import Panel
from rich.table import Table

from continuum_events.broker import (
    ENGINES,
    BrokerError,
    Engine,
    LocalBroker,
    default_engine,
    engine_unavailable,
    free_port,
    local_broker,
    port_open,
)
from continuum_events.cli.common import BootstrapOption, bootstrap_from_env, console, fail, kafka_settings
from continuum_events.cli.events import describe
from continuum_events.monitor import FlowMonitor, FlowSnapshot
from continuum_events.producers.app import EventProducer, ProducerStats
from continuum_events.producers.demo import DemoFleet, run_demo
from continuum_events.settings import KafkaSettings
from continuum_events.topology import CATEGORIES, EVENTS_TOPIC, Topology, category_topic, ensure_topology

SEVERITY_STYLE = {"info": "green", "warning": "yellow", "error": "red", "critical": "bold red"}
STATE_STYLE = {"healthy": "green", "retrying": "yellow", "unhealthy": "bold red", "starting": "dim"}


def run(
    bootstrap_servers: str | None = BootstrapOption,
    integrations: Path | None = typer.Option(
        None,
        "--integrations",
        "-f",
        help="Integrations YAML to connect at "
        "start (default: integrations.yaml if present; none anywhere: demo "
        "integrations to local receivers).",
    ),
    broker_port: int = typer.Option(9092, help="Port of the local broker (a free one is used if taken)."),
    engine: str | None = typer.Option(
        None,
        "--engine",
        help=f"Local broker: {' or '.join(ENGINES)} (default: "
        "$CONTINUUM_BROKER_ENGINE, else kafka; tansu when Java or the Kafka jars are missing).",
    ),
    rate: float = typer.Option(25.0, help="Demo events per second (0: no demo source)."),
    printers: int = typer.Option(60, help="Printers of the demo source."),
    probe_printers: int = typer.Option(12, help="Simulated SNMP printers the probe polls (0: no probe)."),
    duration: float = typer.Option(0, help="Stop after this many seconds (0: run until Ctrl-C)."),
    view: bool = typer.Option(True, "--view/--no-view", help="Live terminal view, or a summary line every 5 s."),
    state: Path = typer.Option(Path(".state"), help="Directory for the spool, logs and the parts' state."),
    router: bool = typer.Option(True, "--router/--no-router", help="Run a router worker (category routing)."),
    connectors: bool = typer.Option(True, "--connectors/--no-connectors", help="Run the integrations' connectors."),
) -> None:
    """Run the pipeline: broker (local unless --bootstrap-servers), router, connectors, probe, demo, live view."""
    from continuum_events.integrations import IntegrationError, load_integrations

    if integrations is None and Path("integrations.yaml").exists():
        integrations = Path("integrations.yaml")
    try:
        specs = load_integrations(integrations) if integrations else []
    except IntegrationError as exc:
        fail(str(exc), code=2)
    embedded: LocalBroker | None = None
    stop = threading.Event()
    # SIGTERM (a service manager, `timeout`, `kill`) stops as cleanly as Ctrl-C: no broker
    # or worker process is left behind, nothing owed is left unflushed.
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    state.mkdir(parents=True, exist_ok=True)
    with contextlib.ExitStack() as cleanup:
        if bootstrap_servers is None and bootstrap_from_env() is None:
            port = broker_port if not port_open("127.0.0.1", broker_port) else free_port()
            if port != broker_port:
                console.print(f"port {broker_port} is taken; the local broker uses {port}")
            chosen = _choose_engine(engine)
            embedded = local_broker(chosen, port=port, data_dir=state / "kafka", log_path=state / f"{chosen}.log")
            try:
                embedded.start()
            except BrokerError as exc:
                fail(str(exc))
            cleanup.callback(embedded.stop)
            bootstrap_servers = embedded.bootstrap_servers
        settings = kafka_settings(bootstrap_servers)
        if embedded is None:
            ensure_topology(AdminClient(settings.client_config()), Topology())
        where = (
            f" (local {embedded.engine} broker{', history in ' + str(state / 'kafka') if embedded.durable else ', memory only'})"
            if embedded
            else ""
        )
        console.print(f"pipeline on {settings.describe()}{where}")

        names = _connect(settings, specs, cleanup, demo=embedded is not None, state=state) if connectors else []
        monitor = FlowMonitor(settings, EVENTS_TOPIC).start()
        cleanup.callback(monitor.stop)
        flows = {c: FlowMonitor(settings, category_topic(c)).start() for c in (*CATEGORIES, "dlq")}
        for flow in flows.values():
            cleanup.callback(flow.stop)
        from continuum_events.status import StatusBoard

        board = StatusBoard(settings).start()
        cleanup.callback(board.stop)

        parts = Supervisor(settings, state)
        cleanup.callback(parts.stop)  # runs after the producer's flush below: nothing owed is cut off
        if router:
            parts.add("router", ["router", "--datadir", str(state / "router")])
        if connectors:  # also for integrations connected while it runs
            parts.add("connectors", ["connectors"])
        if probe_printers:
            inventory = _simulated_fleet(probe_printers, state, cleanup, stop)
            if inventory is not None:
                parts.add(
                    "probe",
                    [
                        "probe",
                        "--inventory",
                        str(inventory),
                        "--interval",
                        "5",
                        "--state",
                        str(state / "probe"),
                        "--timeout",
                        "0.5",
                    ],
                )
        parts.start()

        producer = EventProducer(settings, source="continuum-demo", spool_path=state / "spool.db")
        cleanup.callback(producer.close)
        demo = threading.Thread(
            target=run_demo, args=(producer, DemoFleet(printers=printers), rate, stop), name="demo", daemon=True
        )
        if rate > 0:
            demo.start()
        cleanup.callback(stop.set)

        started = time.monotonic()

        def view_of(final: bool = False) -> View:
            return View(
                monitor.snapshot(),
                producer.stats(),
                time.monotonic() - started,
                {c: f.snapshot() for c, f in flows.items()},
                parts,
                _reports(board, names, final),
            )

        try:
            if view:
                with Live(console=console, refresh_per_second=4) as live:
                    while not _done(started, duration, stop):
                        parts.check()
                        live.update(view_of().render())
            else:
                while not _done(started, duration, stop, tick=5):
                    parts.check()
                    console.print(view_of().summary())
        except KeyboardInterrupt:
            console.print("stopping…")
        stop.set()
        if demo.is_alive():
            demo.join(5)
        producer.flush(10)
        if router:
            _wait_routed(monitor, flows["logging"], timeout=15)
        parts.stop()  # connectors drain the batch in hand and commit
        time.sleep(1.0)  # let the monitors and the status board see the last of it
        console.print(view_of(final=True).summary())


def _choose_engine(asked: str | None) -> Engine:
    """The engine asked for, else the default; Apache Kafka falls back to Tansu (saying why)
    only when it was not asked for by name."""
    if asked is not None and asked not in ENGINES:
        fail(f"--engine {asked!r}: expected one of {', '.join(ENGINES)}", code=2)
    chosen: Engine = asked or default_engine()  # type: ignore[assignment]
    why = engine_unavailable(chosen)
    if why is None:
        return chosen
    if asked is None and chosen == "kafka" and engine_unavailable("tansu") is None:
        console.print(
            f"[yellow]Apache Kafka is not available[/] ({why}); falling back to Tansu: "
            "memory only, nothing kept after this run"
        )
        return "tansu"
    fail(why)


#: The demo integrations: their receivers live in this process, on new ports each run.
DEMO_NAMES = frozenset({"demo-splunk", "demo-grafana", "demo-pagerduty"})


def _connect(
    settings: KafkaSettings,
    specs: list,
    cleanup: contextlib.ExitStack,
    demo: bool,
    state: Path,
) -> list[str]:
    """Connect the file's integrations; with none anywhere (or only the demo's, from an earlier
    run on the same local broker) on a local broker, demo integrations delivering to local
    contract receivers. Returns the names."""
    from continuum_events.config import write_hygiene
    from continuum_events.hygiene import HYGIENE_KEY, GroupPolicy, HygienePolicy
    from continuum_events.integrations import connected
    from continuum_events.operations import connect, read_config

    config = read_config(settings)
    for spec in specs:
        connect(settings, spec, config)
        console.print(f"connected {spec.name} ({spec.vendor})")
    names = sorted({*connected(config), *(s.name for s in specs)})
    if not demo or (names and not set(names) <= DEMO_NAMES):
        return names
    # Connected again with this run's receiver addresses; an earlier run's groups keep
    # their commits, so the connectors resume where they stopped.
    names = []
    for spec in _demo_integrations(cleanup, state):
        connect(settings, spec, config)
        names.append(spec.name)
    if HYGIENE_KEY not in config:  # show alert hygiene at work, with a short group wait
        write_hygiene(settings, HygienePolicy(grouping=GroupPolicy(hold_s=5)))
    console.print(
        f"no integrations configured: delivering to local demo receivers ({', '.join(names)}); "
        "see integrations.example.yaml to connect real ones"
    )
    return names


def _demo_integrations(cleanup: contextlib.ExitStack, state: Path) -> list:
    """One strict contract receiver per category, in this process, and an integration for each.

    Their credentials are files under ``state/demo-secrets`` (mode 600), so a command in another
    shell (``replay demo-splunk``, ``integrations test``) resolves them as the connectors do."""
    from continuum_events.devtools.receivers import GrafanaReceiver, PagerDutyReceiver, SplunkReceiver
    from continuum_events.integrations import IntegrationSpec

    splunk, grafana, pagerduty = (
        cleanup.enter_context(r()) for r in (SplunkReceiver, GrafanaReceiver, PagerDutyReceiver)
    )
    secrets = state.resolve() / "demo-secrets"
    secrets.mkdir(parents=True, exist_ok=True, mode=0o700)

    def secret_file(name: str, value: str) -> dict[str, str]:
        path = secrets / name
        path.touch(mode=0o600)
        path.chmod(0o600)
        path.write_text(value)
        return {"file": str(path)}

    # The demo receivers listen on loopback, plain http: allowed explicitly, as a user would.
    LOCAL = {"allow_private_network": True, "allow_insecure_http": True}
    return [
        IntegrationSpec(
            name="demo-splunk",
            vendor="splunk",
            options={"url": splunk.url, "index": "printers"},
            secrets={"token": secret_file("splunk-token", SplunkReceiver.TOKEN)},
            **LOCAL,
        ),
        IntegrationSpec(
            name="demo-grafana",
            vendor="grafana",
            options={"url": grafana.url},
            secrets={"token": secret_file("grafana-token", GrafanaReceiver.TOKEN)},
            **LOCAL,
        ),
        IntegrationSpec(
            name="demo-pagerduty",
            vendor="pagerduty",
            options={"url": pagerduty.url},
            secrets={"routing_key": secret_file("pagerduty-key", PagerDutyReceiver.ROUTING_KEY)},
            **LOCAL,
        ),
    ]


def _simulated_fleet(count: int, state: Path, cleanup: contextlib.ExitStack, stop: threading.Event) -> Path | None:
    """Simulated SNMP printers (snmpsim) for the probe, with a printer failing now and then."""
    try:
        from continuum_events.devtools.fleet import SimulatedFleet

        fleet = cleanup.enter_context(SimulatedFleet(count))
    except (ImportError, RuntimeError, OSError) as exc:
        console.print(f"[yellow]probe not started:[/] no simulated fleet ({exc}); install the test extra for snmpsim")
        return None
    inventory = fleet.write_inventory(state / "demo-printers.csv")
    threading.Thread(target=_fleet_weather, args=(fleet, stop), name="fleet-weather", daemon=True).start()
    return inventory


def _fleet_weather(fleet, stop: threading.Event) -> None:
    """Every ~20 s one printer jams, runs low on toner or drops off the network; it recovers later."""
    rng = random.Random()
    troubled: dict[str, float] = {}
    while not stop.wait(2):
        now = time.monotonic()
        for name, until in list(troubled.items()):
            if now >= until:
                fleet.restore(name)
                fleet.set_state(name)
                del troubled[name]
        if rng.random() < 0.1:
            name = rng.choice(fleet.printers).name
            if name in troubled:
                continue
            trouble = rng.choice(("jam", "toner", "offline"))
            if trouble == "jam":
                fleet.set_state(name, device_status=3, error_bits={"jammed"})
            elif trouble == "toner":
                fleet.set_state(name, device_status=3, error_bits={"lowToner"}, toner=(5, 100))
            else:
                fleet.make_unreachable(name)
            troubled[name] = now + rng.uniform(20, 40)


def _reports(board, names: list[str], final: bool = False) -> dict[str, dict]:
    """Each integration's latest report (summed over live instances; ``final``: also those just stopped)."""
    from continuum_events.status import combine

    starting = {"state": "starting", "lag": None, "delivered": 0, "retried": 0, "dead_lettered": 0, "last_error": None}
    return {name: combine(board.reports(name, stale_s=15, stopped=final)) or starting for name in names}


def _done(started: float, duration: float, stop: threading.Event, tick: float = 0.25) -> bool:
    if duration and time.monotonic() - started >= duration:
        return True
    return stop.wait(min(tick, max(0.05, duration - (time.monotonic() - started))) if duration else tick)


def _wait_routed(source: FlowMonitor, logging_flow: FlowMonitor, timeout: float) -> None:
    """Logging receives every event: wait until it has caught up with the source."""
    deadline = time.monotonic() + timeout
    while logging_flow.snapshot().total < source.snapshot().total and time.monotonic() < deadline:
        time.sleep(0.2)


@dataclass
class Part:
    name: str
    argv: list[str]
    process: subprocess.Popen[bytes] | None = None
    restarts: int = 0
    restart_at: float | None = None


@dataclass
class Supervisor:
    """Runs the pipeline's worker processes; a crashed one is restarted and reported."""

    settings: KafkaSettings
    state: Path
    parts: list[Part] = field(default_factory=list)

    def add(self, name: str, argv: list[str]) -> None:
        self.parts.append(Part(name, argv))

    def log_path(self, part: Part) -> Path:
        return self.state / f"{part.name}.log"

    def start(self) -> None:
        for part in self.parts:
            self._launch(part)

    def _launch(self, part: Part) -> None:
        with open(self.log_path(part), "ab") as log:
            part.process = subprocess.Popen(
                [sys.executable, "-m", "continuum_events", *part.argv, "-b", self.settings.bootstrap_servers],
                stdout=log,
                stderr=subprocess.STDOUT,
                # Its own session: a terminal's Ctrl-C reaches `run` only, which stops the
                # parts in order (the router routes the last events before it goes).
                start_new_session=True,
            )

    def check(self) -> None:
        """Restart what died, waiting 1, 2, 4 … 30 s between restarts of the same part."""
        now = time.monotonic()
        for part in self.parts:
            if part.restart_at is not None and now >= part.restart_at:
                part.restart_at = None
                self._launch(part)
            elif part.process is not None and part.restart_at is None and part.process.poll() is not None:
                delay = min(30.0, 2.0**part.restarts)
                part.restarts += 1
                part.restart_at = now + delay
                console.log(
                    f"[red]{part.name} exited with {part.process.returncode}[/]; restarting in "
                    f"{delay:.0f} s (see {self.log_path(part)})"
                )

    @property
    def status(self) -> str:
        return (
            ", ".join(
                f"{p.name} pid {p.process.pid if p.process else '-'}"
                + (f" [red]restarted {p.restarts}×[/]" if p.restarts else "")
                for p in self.parts
            )
            or "no parts running"
        )

    def stop(self) -> None:
        # Connectors first (they finish their batch and commit), then the router, then the probe.
        for part in sorted(self.parts, key=lambda p: ("connectors", "router", "probe").index(p.name)):
            process, part.process = part.process, None
            if process is not None and process.poll() is None:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(30)
                except subprocess.TimeoutExpired:
                    process.kill()


@dataclass
class View:
    flow: FlowSnapshot
    stats: ProducerStats
    elapsed: float
    categories: dict[str, FlowSnapshot]
    parts: Supervisor
    integrations: dict[str, dict]

    def summary(self) -> str:
        routed = ", ".join(f"{c} {s.total + s.undecodable}" for c, s in self.categories.items())
        delivered = ", ".join(
            f"{n} {r['state']} delivered {r['delivered']} retried {r['retried']} dead-lettered {r['dead_lettered']}"
            for n, r in self.integrations.items()
        )
        return (
            f"events: dispatched {self.stats.dispatched}, delivered {self.stats.delivered}, seen on "
            f"{EVENTS_TOPIC} {self.flow.total} ({self.flow.rate:.1f}/s), undecodable {self.flow.undecodable}; "
            f"producer {self.stats.mode}, spooled {self.stats.spooled}, refused {self.stats.dropped}; "
            f"routed {routed}; integrations: {delivered or 'none'}"
        )

    def render(self) -> Group:
        """The live view: what flows in, where it is routed, what each integration delivers."""
        flow, stats = self.flow, self.stats
        head = Table.grid(padding=(0, 3))
        head.add_row(
            f"[bold]{flow.rate:7.1f}[/] events/s in",
            f"[bold]{flow.total}[/] seen on {EVENTS_TOPIC}",
            f"producer [bold]{stats.mode}[/] (spooled {stats.spooled}, refused {stats.dropped})",
            f"undecodable {flow.undecodable}",
            f"up {self.elapsed:5.0f} s",
        )
        by_type = Table("event type", "count", title="by type", expand=True)
        for name, count in flow.by_type.most_common(10):
            by_type.add_row(name, str(count))
        by_severity = Table("severity", "count", title="by severity", expand=True)
        for name in ("info", "warning", "error", "critical"):
            by_severity.add_row(f"[{SEVERITY_STYLE[name]}]{name}[/]", str(flow.by_severity.get(name, 0)))
        routed = Table("category", "events/s", "total", title="routed", expand=True)
        for name, snap in self.categories.items():
            routed.add_row(name, f"{snap.rate:.1f}", str(snap.total + snap.undecodable))
        counts = Table.grid(expand=True)
        counts.add_row(by_type, by_severity, routed)
        delivery = Table(
            "integration",
            "state",
            "delivered",
            "retrying",
            "dead-lettered",
            "lag",
            "last error",
            title="integrations",
            expand=True,
        )
        for name, r in self.integrations.items():
            style = STATE_STYLE.get(r["state"], "white")
            delivery.add_row(
                name,
                f"[{style}]{r['state']}[/]",
                str(r["delivered"]),
                str(r["retried"]),
                str(r["dead_lettered"]),
                "?" if r["lag"] is None else str(r["lag"]),
                (r["last_error"] or "-")[:60],
            )
        delivery.caption = self.parts.status
        latest = sorted(flow.recent, key=lambda e: e.timestamp_us, reverse=True)
        recent = "\n".join(describe(e) for e in latest) or "waiting for events…"
        return Group(
            Panel(head, title="continuum-events — Ctrl-C stops"), counts, delivery, Panel(recent, title="latest")
        )
