"""The one CLI: ``continuum-events``. One module per command group."""

from __future__ import annotations

import typer

from continuum_events import __version__
from continuum_events.cli import admin, bench, broker, connector, events, operate, probe, router, run
from continuum_events.cli.common import configure_logging

app = typer.Typer(
    name="continuum-events",
    help="Continuum's printer-fleet events through Kafka to the tools operators watch.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.command()(run.run)
app.command()(broker.broker)
app.command()(broker.topics)
app.command()(events.send)
app.command()(events.tail)
app.command()(events.spool)
app.command()(router.router)
app.command()(connector.connector)
app.command()(probe.probe)
app.command()(operate.connectors)
app.command()(operate.status)
app.command()(operate.replay)
app.command()(admin.admin)
app.add_typer(operate.integrations_app, name="integrations")
app.add_typer(operate.dlq_app, name="dlq")
app.add_typer(router.rules_app, name="rules")
app.add_typer(bench.app, name="bench")


def _version(value: bool) -> None:
    if value:
        typer.echo(__version__)
        raise typer.Exit()


@app.callback()
def _root(
    log_level: str = typer.Option("info", help="debug, info, warning or error."),
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version."),
) -> None:
    configure_logging(log_level)


def main() -> None:
    app()
