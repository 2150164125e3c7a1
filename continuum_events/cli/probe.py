"""``continuum-events probe``: the SNMP health probe as a long-running service."""

from __future__ import annotations

import asyncio
import signal
import threading
from pathlib import Path

import typer

from continuum_events.cli.common import BootstrapOption, console, kafka_settings


def _shard(value: str) -> tuple[int, int]:
    try:
        index, count = (int(part) for part in value.split("/"))
    except ValueError:
        raise typer.BadParameter("expected INDEX/COUNT, e.g. 0/4") from None
    if not 0 <= index < count:
        raise typer.BadParameter(f"shard index {index} is not within 0..{count - 1}")
    return index, count


def probe(
    inventory: Path = typer.Option(..., "--inventory", "-i", help="Printers to poll: a CSV or YAML file."),
    interval: float = typer.Option(60.0, help="Seconds per sweep of the whole fleet."),
    concurrency: int = typer.Option(150, help="Polls in flight at most (more than ~200 per process times out)."),
    offline_after: int = typer.Option(3, help="Consecutive failed polls before printer.offline."),
    online_after: int = typer.Option(2, help="Consecutive good polls before printer.online."),
    timeout: float = typer.Option(1.5, help="SNMP timeout per try, seconds."),
    retries: int = typer.Option(1, help="SNMP retries per poll."),
    community: str = typer.Option("public", help="SNMP community for printers added live (printer.added)."),
    shard: str = typer.Option("0/1", help="INDEX/COUNT: poll this share of the fleet (one process per share)."),
    state: Path = typer.Option(Path(".state/probe"), help="Directory for the probe's state across restarts."),
    follow: bool = typer.Option(True, help="Follow printer.added / printer.removed from printer-events."),
    metrics_port: int | None = typer.Option(
        None,
        help="Serve Prometheus metrics on this port (deploy/ uses 9402): sweep "
        "time, printers up/down, SNMP polls unanswered, events.",
    ),
    metrics_address: str = typer.Option("127.0.0.1", help="Address the metrics port listens on."),
    bootstrap_servers: str | None = BootstrapOption,
) -> None:
    """Poll printers over SNMP and emit offline/online/jam/low-toner/error events on change."""
    from continuum_events.producers import EventProducer
    from continuum_events.producers.health import Policy
    from continuum_events.producers.inventory import InventoryError, load_inventory
    from continuum_events.producers.probe import Probe, ProbeConfig, follow_printer_changes, producer_emitter
    from continuum_events.producers.snmp import Timing

    index, count = _shard(shard)
    try:
        printers = load_inventory(inventory)
    except InventoryError as exc:
        console.print(f"[red]error:[/] {exc}")
        raise typer.Exit(2) from None
    settings = kafka_settings(bootstrap_servers)
    config = ProbeConfig(
        interval_s=interval,
        concurrency=concurrency,
        policy=Policy(offline_after, online_after),
        timing=Timing(timeout, retries),
        state_path=state / f"health-{index}-of-{count}.json",
        shard=index,
        shards=count,
        defaults={"community": community},
    )
    stop_thread, stop = threading.Event(), asyncio.Event()
    with EventProducer(settings, spool_path=state / f"spool-{index}-of-{count}.db") as producer:
        engine = Probe(printers, producer_emitter(producer), config)
        metrics = None
        if metrics_port is not None:
            from continuum_events.metrics import ProbeMetrics, serve

            metrics = ProbeMetrics(interval)
            serve(metrics.registry, metrics_port, metrics_address)
        console.print(
            f"probing {len(engine.printers)} of {len(printers)} printers (shard {index}/{count}) "
            f"every {interval:g} s; Ctrl-C stops"
        )
        if follow:
            threading.Thread(
                target=follow_printer_changes,
                daemon=True,
                args=(settings, engine, stop_thread, f"continuum-health-probe-{index}-of-{count}"),
            ).start()

        async def main() -> None:
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, stop.set)
            await engine.run(
                stop, on_sweep=(lambda stats: metrics.observe(stats, engine.health)) if metrics is not None else None
            )

        try:
            asyncio.run(main())
        finally:
            stop_thread.set()
            engine.close()
    console.print("probe stopped; state saved")
