"""The router's Faust app as a new user starts it."""

from __future__ import annotations

from pathlib import Path

import pytest

from continuum_events.settings import KafkaSettings
from processors.app import create_app


def test_a_fresh_clone_without_a_state_directory_can_start_a_router(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # no .state/ here, as in a fresh clone
    app = create_app(KafkaSettings(bootstrap_servers="127.0.0.1:9"))
    app._create_directories()  # what the Faust worker does first; FileNotFoundError before
    assert (tmp_path / ".state" / "router").is_dir() and Path(app.conf.tabledir).is_dir()
