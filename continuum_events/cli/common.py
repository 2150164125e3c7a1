"""What every command shares: logging set-up, Kafka settings from options, the console."""

from __future__ import annotations

import logging
import os
import time
from typing import NoReturn

import typer
from rich.logging import RichHandler
from rich.markup import escape

from continuum_events.connectors.http import RedactingFilter
from continuum_events.settings import KafkaSettings
from continuum_events.terminal import console, out  # noqa: F401 - the commands' consoles

BOOTSTRAP_HELP = (
    "Kafka bootstrap servers (host:port,...). Also CONTINUUM_KAFKA_BOOTSTRAP_SERVERS; TLS/SASL settings come "
    "from the other CONTINUUM_KAFKA_* variables."
)

BootstrapOption = typer.Option(None, "--bootstrap-servers", "-b", help=BOOTSTRAP_HELP, show_default=False)


def configure_logging(level: str) -> None:
    """Once, at the entry point. librdkafka's own chatter is kept at WARNING and above."""
    handler = RichHandler(console=console, show_path=False, rich_tracebacks=False)
    handler.addFilter(RedactingFilter())  # every line, whichever logger: no key carried in a URL
    logging.basicConfig(
        level=level.upper(), format="%(name)s: %(message)s", datefmt="[%X]", handlers=[handler], force=True
    )
    logging.getLogger("librdkafka").setLevel(max(logging.WARNING, logging.getLogger().level))


def kafka_settings(bootstrap_servers: str | None) -> KafkaSettings:
    """Environment settings, with an explicit ``--bootstrap-servers`` on top."""
    overrides = {"bootstrap_servers": bootstrap_servers} if bootstrap_servers else {}
    try:
        return KafkaSettings(**overrides)
    except ValueError as exc:
        raise typer.BadParameter(f"invalid Kafka settings: {exc}") from exc


def key_values(items: list[str], option: str) -> dict[str, str]:
    """``["a=1", "b=x=y"]`` -> ``{"a": "1", "b": "x=y"}``; a clear error names the option."""
    pairs = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise typer.BadParameter(f"expected KEY=VALUE, got {item!r}", param_hint=option)
        pairs[key] = value
    return pairs


def bootstrap_from_env() -> str | None:
    return os.environ.get("CONTINUUM_KAFKA_BOOTSTRAP_SERVERS")


def fail(message: str, code: int = 1) -> NoReturn:
    """End a command with a clear message (never a traceback). Not wrapped by us: a path or a
    command in it stays whole, to copy (the terminal folds a long line by itself)."""
    console.print(f"[red]error:[/] {escape(message)}", soft_wrap=True)
    raise typer.Exit(code)


def reachable(settings: KafkaSettings, timeout: float = 8.0) -> None:
    """Fail fast, and clearly, when the cluster cannot be reached: the listener (address,
    protocol, mechanism, user) and the broker's reason — a refused password, an untrusted
    certificate — never a secret (librdkafka's messages hold none)."""
    from confluent_kafka import KafkaError, KafkaException
    from confluent_kafka.admin import AdminClient

    refused: list[str] = []

    def on_error(err: KafkaError) -> None:
        if (
            err.code() in (KafkaError._AUTHENTICATION, KafkaError._SSL, KafkaError.SASL_AUTHENTICATION_FAILED)
            and not refused
        ):
            refused.append(err.str())

    admin = AdminClient(settings.client_config(log_level=0, error_cb=on_error))
    deadline = time.monotonic() + timeout
    while True:
        try:
            admin.list_topics(timeout=max(0.1, min(1.0, deadline - time.monotonic())))
            return
        except KafkaException as exc:
            admin.poll(0)  # serves the error callback: why the broker would not talk to us
            if refused:
                fail(
                    f"Kafka at {settings.describe()} refused the connection: {refused[0]}; "
                    "check the CONTINUUM_KAFKA_SASL_* / CONTINUUM_KAFKA_SSL_* settings"
                )
            if time.monotonic() >= deadline:
                fail(
                    f"cannot reach Kafka at {settings.describe()} within {timeout:.0f} s ({exc.args[0].str()}); "
                    "check --bootstrap-servers / CONTINUUM_KAFKA_* settings"
                )


def parse_time(text: str, option: str, now: float | None = None) -> int:
    """:func:`continuum_events.history.parse_time`, its error shown as a usage error of ``option``."""
    from continuum_events.history import parse_time as parse

    try:
        return parse(text, now)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint=option) from None
