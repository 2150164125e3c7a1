"""``continuum-events connector``: run (or test) one integration's connector."""

from __future__ import annotations

import signal
import threading

import typer

from continuum_events.cli.common import BootstrapOption, console, kafka_settings, key_values
from continuum_events.connectors.base import ConfigError, Retry
from continuum_events.connectors.registry import VENDORS, build_sink
from continuum_events.netguard import TargetPolicy


def connector(
    name: str = typer.Argument(..., help="Integration name: its consumer group and dead-letter topic."),
    vendor: str = typer.Option(..., help=f"One of {', '.join(sorted(VENDORS))}."),
    category: str | None = typer.Option(None, help="Category topic to deliver (default: the vendor's)."),
    option: list[str] = typer.Option([], "--set", help="Vendor option KEY=VALUE, e.g. --set url=https://…:8088"),
    secret: list[str] = typer.Option([], help="Secret KEY=ENV_VAR: read from that environment variable."),
    metrics_port: int | None = typer.Option(None, help="Serve Prometheus metrics on 127.0.0.1:PORT."),
    check: bool = typer.Option(False, "--check", help="Test the connection, print the verdict and exit."),
    allow_private_network: bool = typer.Option(
        False, help="The receiver may be on a private, loopback or link-local address (an on-premises receiver)."
    ),
    allow_insecure_http: bool = typer.Option(False, help="The receiver may be plain http (no TLS)."),
    bootstrap_servers: str | None = BootstrapOption,
) -> None:
    """Deliver a category topic to a vendor, with retries, dead letters and commits after delivery."""
    try:
        policy = TargetPolicy(allow_private=allow_private_network, allow_http=allow_insecure_http)
        sink = build_sink(vendor, key_values(option, "--set"), key_values(secret, "--secret"), policy=policy)
    except (ValueError, TypeError) as exc:
        raise typer.BadParameter(str(exc)) from None
    if check:
        try:
            typer.echo(f"OK: {sink.check()}")
        except ConfigError as exc:
            typer.echo(f"FAILED (configuration): {exc}")
            raise typer.Exit(1) from None
        except Retry as exc:
            typer.echo(f"FAILED (unreachable or busy): {exc}")
            raise typer.Exit(1) from None
        finally:
            sink.close()
        return
    from continuum_events.connectors.host import Integration, run_integrations

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    console.print(f"connector {name} ({vendor}) running; Ctrl-C stops it after the batch in hand")
    run_integrations(
        kafka_settings(bootstrap_servers),
        [Integration(name, category or VENDORS[vendor].category, sink)],
        stop,
        metrics_port,
    )
