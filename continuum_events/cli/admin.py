"""``continuum-events admin``: the integrations admin API and page, standalone."""

from __future__ import annotations

import os
from pathlib import Path

import typer

from continuum_events.cli.common import BootstrapOption, console, fail, kafka_settings, reachable


def admin(
    port: int = typer.Option(8080, help="Port to listen on."),
    host: str = typer.Option("127.0.0.1", help="Address to listen on (0.0.0.0 behind a TLS-terminating proxy)."),
    token_env: str = typer.Option("CONTINUUM_ADMIN_TOKEN", help="Environment variable holding the admin token."),
    secrets_dir: Path = typer.Option(
        Path(".state/secrets"),
        help="Secret store: credentials typed into the page are written here (0600), referenced by path.",
    ),
    bootstrap_servers: str | None = BootstrapOption,
) -> None:
    """Serve the admin API and the Admin → Integrations page (bearer token; never open)."""
    from werkzeug.serving import make_server

    from continuum_events.admin import AdminService, create_app

    token = os.environ.get(token_env, "")
    if len(token) < 16:
        fail(f"set {token_env} to an admin token of at least 16 characters: the admin API is never open", code=2)
    settings = kafka_settings(bootstrap_servers)
    reachable(settings)
    service = AdminService(settings, secrets_dir)
    server = make_server(host, port, create_app(service, token=token), threaded=True)
    console.print(f"admin on http://{host}:{port}/ (token from {token_env}); Ctrl-C stops it")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        service.close()
