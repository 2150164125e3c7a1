from continuum_events.cli.main import main
