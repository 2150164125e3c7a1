"""``continuum-events bench``: each benchmark measures its subject and a baseline in
the same run, on the same broker (machines here are shared and noisy: only ratios
are comparable), and prints both rates and the ratio."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

import typer

from continuum_events.benchmarks import Result, side_by_side
from continuum_events.broker import ENGINES, Engine, local_broker
from continuum_events.cli.common import BootstrapOption, console, kafka_settings
from continuum_events.settings import KafkaSettings

app = typer.Typer(help="Benchmarks: each prints its rate, its baseline's rate and the ratio.", no_args_is_help=True)

EngineOption = typer.Option(
    "both",
    "--engine",
    help="Local broker to measure on: kafka, tansu or both (one after "
    "the other, each with its own baseline; ignored with --bootstrap-servers).",
)


def _engines(engine: str, bootstrap_servers: str | None) -> list[Engine | None]:
    if bootstrap_servers:
        return [None]
    if engine == "both":
        return list(ENGINES)
    if engine not in ENGINES:
        raise typer.BadParameter(f"{engine!r}: expected kafka, tansu or both", param_hint="--engine")
    return [engine]  # type: ignore[list-item]


@app.command()
def broker(
    events: int = typer.Option(300_000, help="Records produced per round."),
    rounds: int = typer.Option(2, help="Rounds per engine."),
    engine: str = EngineOption,
) -> None:
    """The local engines side by side: start time, RSS, raw confluent-kafka produce and consume ceilings."""
    from continuum_events.benchmarks.broker import measure

    measure([e for e in _engines(engine, None) if e], events, rounds)


@app.command()
def producer(
    events: int = typer.Option(200_000, help="Events per round."),
    rounds: int = typer.Option(3, help="Rounds; subject and baseline alternate."),
    bootstrap_servers: str | None = BootstrapOption,
    engine: str = EngineOption,
) -> None:
    """dispatch_event (Avro, validated, keyed) versus raw produce of pre-encoded bytes.

    Target: >= 100,000 events/s for dispatch_event and >= 25 % of the raw rate.
    """
    from continuum_events.benchmarks.producer import measure

    def one(each: Engine | None) -> Result:
        with _cluster(bootstrap_servers, each) as settings:
            return measure(settings, events, rounds)

    _each_engine("producer", engine, bootstrap_servers, one)


@app.command()
def router(
    events: int = typer.Option(30_000, help="Events routed per round."),
    rounds: int = typer.Option(2, help="Rounds; each measures both paths, alternating which goes first."),
    latency_seconds: float = typer.Option(10, help="Seconds of 1,000 events/s for the latency measurement."),
    bootstrap_servers: str | None = BootstrapOption,
    engine: str = EngineOption,
) -> None:
    """The router versus a bare Faust agent forwarding bytes; then p50/p95/p99 routing latency.

    Targets: the router >= 80 % of the bare agent's rate; p99 <= 100 ms at 1,000 events/s.
    """
    from continuum_events.benchmarks.router import measure

    _each_engine(
        "router",
        engine,
        bootstrap_servers,
        lambda each: measure(lambda: _cluster(bootstrap_servers, each), events, rounds, latency_seconds),
    )


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
def _cluster(bootstrap_servers: str | None, engine: Engine | None = None) -> Iterator[KafkaSettings]:
    """The given cluster, or a fresh local broker of ``engine`` for this one measurement."""
    if bootstrap_servers:
        yield kafka_settings(bootstrap_servers)
        return
    with local_broker(engine) as local:
        console.rule(f"on {local.engine} ({local.bootstrap_servers})")
        yield kafka_settings(local.bootstrap_servers)


@app.command()
def connector(
    events: int = typer.Option(200_000, help="Events the connector delivers."),
    per_event: int = typer.Option(3_000, help="Events sent one request each (the slow baseline)."),
    bootstrap_servers: str | None = BootstrapOption,
    engine: str = EngineOption,
) -> None:
    """The Splunk HEC connector versus one HTTP request per event, to a counting receiver.

    Targets: >= 50,000 events/s and >= 20x the per-event approach.
    """
    from continuum_events.benchmarks.connector import measure

    def one(each: Engine | None) -> Result:
        with _cluster(bootstrap_servers, each) as settings:
            return measure(settings, events, per_event)

    _each_engine("connector", engine, bootstrap_servers, one)


def _each_engine(
    title: str, engine: str, bootstrap_servers: str | None, measure: Callable[[Engine | None], Result]
) -> None:
    """Measure on each chosen engine in turn (each with its own baseline), then side by side."""
    results = {each or "given cluster": measure(each) for each in _engines(engine, bootstrap_servers)}
    side_by_side(title, results)
