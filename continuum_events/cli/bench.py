"""``continuum-events bench``: each benchmark measures its subject and a baseline in
the same run, on the same broker (machines here are shared and noisy: only ratios
are comparable), and prints both rates and the ratio."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import typer

from continuum_events.broker import local_broker
from continuum_events.cli.common import BootstrapOption, console, kafka_settings
from continuum_events.settings import KafkaSettings

app = typer.Typer(help="Benchmarks: each prints its rate, its baseline's rate and the ratio.", no_args_is_help=True)


@app.command()
def producer(
    events: int = typer.Option(200_000, help="Events per round."),
    rounds: int = typer.Option(3, help="Rounds; subject and baseline alternate."),
    bootstrap_servers: str | None = BootstrapOption,
) -> None:
    """dispatch_event (Avro, validated, keyed) versus raw produce of pre-encoded bytes.

    Target: >= 100,000 events/s for dispatch_event and >= 25 % of the raw rate.
    """
    from continuum_events.benchmarks.producer import measure

    with _cluster(bootstrap_servers) as settings:
        measure(settings, events, rounds)


@app.command()
def router(
    events: int = typer.Option(30_000, help="Events routed per round."),
    rounds: int = typer.Option(2, help="Rounds; each measures both paths, alternating which goes first."),
    latency_seconds: float = typer.Option(10, help="Seconds of 1,000 events/s for the latency measurement."),
    bootstrap_servers: str | None = BootstrapOption,
) -> None:
    """The router versus a bare Faust agent forwarding bytes; then p50/p95/p99 routing latency.

    Targets: the router >= 80 % of the bare agent's rate; p99 <= 100 ms at 1,000 events/s.
    """
    from continuum_events.benchmarks.router import measure

    measure(lambda: _cluster(bootstrap_servers), events, rounds, latency_seconds)


@app.command()
def probe(
    printers: list[int] = typer.Option([1_000, 10_000], "--printers", help="Fleet sizes, each measured in turn."),
    sweeps: int = typer.Option(4, help="Probe sweeps per fleet (offline needs 3 failures: 4 can show a false one)."),
    concurrency: int = typer.Option(150, help="Polls in flight."),
) -> None:
    """The SNMP health probe against a simulated fleet (snmpsim, 100 printers per loopback address)
    versus bare SNMP GETs of the same objects: sweep time, CPU seconds per sweep, false offline events.

    Target: 10,000 printers per 60 s cycle in one process, 0 false offline events.
    """
    from continuum_events.benchmarks.probe import measure

    measure(printers, sweeps, concurrency)


@contextlib.contextmanager
def _cluster(bootstrap_servers: str | None) -> Iterator[KafkaSettings]:
    """The given cluster, or a fresh embedded broker for this one measurement."""
    if bootstrap_servers:
        yield kafka_settings(bootstrap_servers)
        return
    with local_broker() as embedded:
        console.print(f"embedded broker on {embedded.bootstrap_servers}")
        yield kafka_settings(embedded.bootstrap_servers)


@app.command()
def connector(
    events: int = typer.Option(200_000, help="Events the connector delivers."),
    per_event: int = typer.Option(3_000, help="Events sent one request each (the slow baseline)."),
    bootstrap_servers: str | None = BootstrapOption,
) -> None:
    """The Splunk HEC connector versus one HTTP request per event, to a counting receiver.

    Targets: >= 50,000 events/s and >= 20x the per-event approach.
    """
    from continuum_events.benchmarks.connector import measure

    with _cluster(bootstrap_servers) as settings:
        measure(settings, events, per_event)
