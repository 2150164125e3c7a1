"""``continuum-events send`` and ``continuum-events tail``: put one event in, watch events go by."""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

import typer
from confluent_kafka import OFFSET_BEGINNING, OFFSET_END, Consumer, TopicPartition

from continuum_events.cli.common import BootstrapOption, console, kafka_settings
from continuum_events.codec import DecodeError, EventCodec
from continuum_events.events import Event
from continuum_events.producers.app import EventProducer
from continuum_events.settings import KafkaSettings
from continuum_events.topology import EVENTS_TOPIC


def send(
    event_type: str = typer.Argument(..., help="e.g. printer.offline (see `continuum-events send --help`)."),
    payload: str = typer.Argument("{}", help='The payload as JSON, e.g. \'{"printer_id": "p-17"}\'.'),
    severity: str = typer.Option(None, help="info, warning, error or critical (default: by event type)."),
    source: str = typer.Option("continuum-cli", help="The envelope's source."),
    bootstrap_servers: str | None = BootstrapOption,
) -> None:
    """Dispatch one event exactly as Continuum's dispatch_event would, and wait until it is stored."""
    try:
        data = json.loads(payload)
    except json.JSONDecodeError as exc:
        raise typer.BadParameter(f"payload is not JSON: {exc}", param_hint="PAYLOAD") from None
    settings = kafka_settings(bootstrap_servers)
    # A private spool: a one-shot command must not drain (or strand) the app's spool.
    spool = Path(tempfile.mkdtemp(prefix="continuum-send-")) / "spool.db"
    with EventProducer(settings, source=source, spool_path=spool) as producer:
        try:
            event_id = producer.dispatch(event_type, data, severity, strict=True)
        except ValueError as exc:
            raise typer.BadParameter(str(exc)) from None
        if producer.flush(15) or producer.stats().delivered == 0:
            console.print(f"[red]error:[/] the brokers at {settings.describe()} did not acknowledge the event")
            raise typer.Exit(1)
    typer.echo(event_id)


def spool(
    path: Path = typer.Argument(
        None,
        help="The spool file (default: $CONTINUUM_SPOOL_PATH, else the per-user one; `make run` uses .state/spool.db).",
    ),
    refused: bool = typer.Option(False, "--refused", help="List the calls that could not be events, with why."),
    limit: int = typer.Option(20, help="How many refused calls to list, newest first."),
) -> None:
    """What an app's local spool holds: events waiting for the brokers, and refused calls."""
    from continuum_events.producers.spool import Spool, default_spool_path

    path = path or default_spool_path()
    if not path.exists():
        console.print(f"[red]error:[/] no spool at {path}")
        raise typer.Exit(1)
    store = Spool(path)
    try:
        typer.echo(
            f"{path}: {len(store)} events waiting ({store.bytes:,} bytes), {store.refused_count()} refused calls"
        )
        if refused:
            for call in store.refused(limit):
                stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(call.at_ms / 1000))
                typer.echo(
                    f"{stamp}Z {call.event_id} {call.event_type}: {call.reason}\n    payload {call.payload[:300]}"
                )
    finally:
        store.close()


def tail(
    topic: str = typer.Option(EVENTS_TOPIC, help="Topic to read."),
    from_beginning: bool = typer.Option(False, "--from-beginning", help="Start at the oldest retained event."),
    limit: int = typer.Option(0, help="Stop after this many events (0: never)."),
    idle_exit: float = typer.Option(0, help="Stop after this many seconds without an event (0: never)."),
    as_json: bool = typer.Option(False, "--json", help="One JSON object per line instead of a summary."),
    bootstrap_servers: str | None = BootstrapOption,
) -> None:
    """Print events as they arrive, decoded. Undecodable records are reported, not fatal."""
    settings = kafka_settings(bootstrap_servers)
    for event in _follow(settings, topic, from_beginning, limit, idle_exit):
        if as_json:
            typer.echo(json.dumps(event.to_json_dict(), sort_keys=True))
        else:
            typer.echo(describe(event))


def describe(event: Event) -> str:
    """A one-line human summary of an event."""
    p = event.payload
    subject = (
        p.get("printer_name")
        or p.get("printer_id")
        or p.get("source_printer_name")
        or p.get("group_name")
        or p.get("job_id")
        or p.get("component")
        or ""
    )
    extra = p.get("error_message") or p.get("message") or ""
    stamp = event.timestamp.strftime("%H:%M:%S")
    return f"{stamp} {event.severity.value:8} {event.event_type.value:18} {subject} {extra}".rstrip()


def _follow(settings: KafkaSettings, topic: str, from_beginning: bool, limit: int, idle_exit: float):
    codec = EventCodec(settings.schema_registry())
    consumer = Consumer(settings.client_config(**{"group.id": "continuum-events-tail", "enable.auto.commit": False}))
    try:
        meta = consumer.list_topics(topic, timeout=10).topics.get(topic)
        if meta is None or meta.error is not None or not meta.partitions:
            console.print(f"[red]error:[/] topic {topic} does not exist on {settings.describe()}")
            raise typer.Exit(1)
        start = OFFSET_BEGINNING if from_beginning else OFFSET_END
        consumer.assign([TopicPartition(topic, p, start) for p in meta.partitions])
        seen, last = 0, time.monotonic()
        while not limit or seen < limit:
            msg = consumer.poll(0.5)
            if msg is None:
                if idle_exit and time.monotonic() - last > idle_exit:
                    return
                continue
            if msg.error():
                console.print(f"[yellow]warning:[/] {msg.error()}")
                continue
            last = time.monotonic()
            try:
                yield codec.decode(msg.value(), msg.topic(), msg.partition(), msg.offset())
                seen += 1
            except DecodeError as exc:
                console.print(f"[yellow]skipped:[/] {exc}")
    finally:
        consumer.close()
