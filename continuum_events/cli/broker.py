"""``continuum-events broker`` and ``continuum-events topics``."""

from __future__ import annotations

import signal
import threading
import time
from pathlib import Path

import typer
from confluent_kafka.admin import AdminClient

from continuum_events.broker import ENGINES, BrokerError, KafkaBroker, kafka_version, local_broker
from continuum_events.cli.common import BootstrapOption, console, fail, kafka_settings
from continuum_events.topology import EVENT_RETENTION_MS, Topology, ensure_topology


def broker(
    engine: str = typer.Option(
        "kafka", help=f"{' or '.join(ENGINES)}: Apache Kafka (KRaft, data on disk) or Tansu (no Java, memory only)."
    ),
    port: int = typer.Option(9092, help="Client port (127.0.0.1)."),
    data_dir: Path = typer.Option(
        Path(".state/kafka"),
        help="Where Apache Kafka keeps its data across restarts (formatted on first start; ignored by Tansu).",
    ),
    nodes: int = typer.Option(
        1,
        min=1,
        max=5,
        help="Apache Kafka nodes (3: the production shape, replication factor 3, min.insync.replicas 2).",
    ),
    partitions: int = typer.Option(6, help="Partitions of printer-events and the category topics."),
) -> None:
    """Run a local broker with the topology created; Ctrl-C or SIGTERM stops it cleanly.

    Point the other commands at it with --bootstrap-servers 127.0.0.1:PORT.
    """
    if engine not in ENGINES:
        fail(f"--engine {engine!r}: expected one of {', '.join(ENGINES)}", code=2)
    topology = Topology(partitions=partitions, replication_factor=min(3, nodes))
    if engine == "kafka":
        local = KafkaBroker(
            port=port, topology=topology, data_dir=data_dir, nodes=nodes, log_path=data_dir / "kafka.log"
        )
    elif nodes > 1:
        fail("--nodes is for --engine kafka", code=2)
    else:
        local = local_broker("tansu", port=port, topology=topology)
    began = time.monotonic()
    try:
        local.start()
    except BrokerError as exc:
        fail(str(exc))
    what = (
        f"Apache Kafka {kafka_version()} ({nodes} node{'s' if nodes > 1 else ''}, data in {data_dir})"
        if engine == "kafka"
        else "Tansu (memory only)"
    )
    console.print(
        f"{what} ready on [bold]{local.bootstrap_servers}[/] in {time.monotonic() - began:.1f} s "
        f"(log: {local.log_path}); Ctrl-C stops it"
    )
    stopped = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopped.set())
    try:
        while not stopped.wait(1):
            if not local.running:
                console.print(f"[red]broker exited[/]; see {local.log_path}")
                raise typer.Exit(1)
    except KeyboardInterrupt:
        pass
    finally:
        console.print("stopping…")
        local.stop()


def topics(
    bootstrap_servers: str | None = BootstrapOption,
    partitions: int = typer.Option(6, help="Partitions of printer-events and the category topics."),
    replication_factor: int = typer.Option(
        -1, help="Replicas per partition (3 on a production cluster); -1: the cluster's default.replication.factor."
    ),
    retention_hours: float = typer.Option(
        EVENT_RETENTION_MS / 3_600_000,
        min=1,
        help="How long printer-events and the category topics keep events: how far replay reaches back.",
    ),
) -> None:
    """Create the topology (every topic, with its partitions and configs) on a cluster.

    Existing topics are left alone; a partition count that differs is reported. Dead letters
    are kept 30 days; the configuration, status and incident ledgers are compacted.
    """
    settings = kafka_settings(bootstrap_servers)
    topology = Topology(
        partitions=partitions, replication_factor=replication_factor, retention_ms=int(retention_hours * 3_600_000)
    )
    created = ensure_topology(AdminClient(settings.client_config()), topology)
    for spec in topology.topics():
        state = "created" if spec.name in created else "exists"
        console.print(f"{spec.name:32} {spec.partitions:3d} partitions  {state}")
