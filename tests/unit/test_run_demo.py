"""The demo integrations of `continuum-events run`, as another shell sees them."""

from __future__ import annotations

import contextlib
import stat
from pathlib import Path

from continuum_events.cli.run import _demo_integrations
from continuum_events.devtools.receivers import PagerDutyReceiver, SplunkReceiver


def test_demo_secrets_resolve_from_another_shell(tmp_path: Path) -> None:
    """`replay demo-splunk` from a second terminal has none of the run's environment: the demo's
    credentials are files in the state directory, readable only by their owner."""
    with contextlib.ExitStack() as cleanup:
        specs = {spec.name: spec for spec in _demo_integrations(cleanup, tmp_path / "state")}
    clean_shell: dict[str, str] = {}
    assert specs["demo-splunk"].secrets["token"].resolve(clean_shell).get_secret_value() == SplunkReceiver.TOKEN
    key = specs["demo-pagerduty"].secrets["routing_key"]
    assert key.resolve(clean_shell).get_secret_value() == PagerDutyReceiver.ROUTING_KEY
    for spec in specs.values():
        for ref in spec.secrets.values():
            assert Path(ref.file).is_absolute() and stat.S_IMODE(Path(ref.file).stat().st_mode) == 0o600
