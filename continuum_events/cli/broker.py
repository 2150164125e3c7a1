"""``continuum-events broker`` and ``continuum-events topics``."""

from __future__ import annotations

import signal
import threading

import typer
from confluent_kafka.admin import AdminClient

from continuum_events.broker import BrokerError, EmbeddedBroker
from continuum_events.cli.common import BootstrapOption, console, kafka_settings
from continuum_events.topology import Topology, ensure_topology


def broker(
    port: int = typer.Option(9092, help="Port to listen on (127.0.0.1)."),
    partitions: int = typer.Option(6, help="Partitions of printer-events and the category topics."),
) -> None:
    """Run the embedded Kafka-protocol broker (Tansu, in memory) with the topology created.

    For development and demos: data lives in memory and is gone when it stops. Point
    the other commands at it with --bootstrap-servers 127.0.0.1:PORT.
    """
    embedded = EmbeddedBroker(port=port, topology=Topology(partitions=partitions))
    try:
        embedded.start()
    except BrokerError as exc:
        console.print(f"[red]error:[/] {exc}")
        raise typer.Exit(1) from None
    console.print(f"broker ready on [bold]{embedded.bootstrap_servers}[/] (log: {embedded.log_path}); Ctrl-C stops it")
    stopped = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopped.set())
    try:
        while not stopped.wait(1):
            if not embedded.running:
                console.print(f"[red]broker exited[/]; see {embedded.log_path}")
                raise typer.Exit(1)
    except KeyboardInterrupt:
        pass
    finally:
        embedded.stop()


def topics(
    bootstrap_servers: str | None = BootstrapOption,
    partitions: int = typer.Option(6, help="Partitions of printer-events and the category topics."),
    replication_factor: int = typer.Option(1, help="Replicas per partition (3 on a production cluster)."),
) -> None:
    """Create the topology (every topic, with its partitions and configs) on a cluster.

    Existing topics are left alone; a partition count that differs is reported.
    """
    settings = kafka_settings(bootstrap_servers)
    topology = Topology(partitions=partitions, replication_factor=replication_factor)
    created = ensure_topology(AdminClient(settings.client_config()), topology)
    for spec in topology.topics():
        state = "created" if spec.name in created else "exists"
        console.print(f"{spec.name:32} {spec.partitions:3d} partitions  {state}")
