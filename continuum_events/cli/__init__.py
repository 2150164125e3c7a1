from continuum_events.cli.main import main

__all__ = ["main"]
