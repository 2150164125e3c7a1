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


def test_a_lost_leader_during_an_offset_reset_refreshes_the_metadata(monkeypatch: pytest.MonkeyPatch) -> None:
    import asyncio

    from aiokafka import errors
    from aiokafka.consumer.fetcher import Fetcher

    from continuum_events.processors import app as router_app

    async def ask_the_old_leader(self: object, node_id: int, topic_data: object) -> dict:
        raise errors.NotLeaderForPartitionError()

    monkeypatch.setattr(Fetcher, "_proc_offset_request", ask_the_old_leader)
    router_app._offset_resets_follow_the_leader()

    class Client:
        refreshes = 0

        def force_metadata_update(self) -> None:
            Client.refreshes += 1

    fetcher = type("F", (), {"_client": Client()})()
    with pytest.raises(errors.NotLeaderForPartitionError):  # aiokafka's caller retries after its backoff
        asyncio.run(Fetcher._proc_offset_request(fetcher, 3, {}))
    assert Client.refreshes == 1


@pytest.fixture
def root_logging():
    """The root logger as it was, put back after the test (the worker rewires it)."""
    import logging
    import sys

    root = logging.getLogger()
    handlers, level, streams = root.handlers[:], root.level, (sys.stdout, sys.stderr)
    yield root
    root.handlers[:] = handlers
    root.setLevel(level)
    sys.stdout, sys.stderr = streams


@pytest.mark.parametrize("level", ["warning", "info"])
def test_the_router_worker_keeps_the_entry_points_logging(tmp_path: Path, root_logging, level: str) -> None:
    """Faust's worker used to swap the CLI's handler (and its secret-redacting filter) for its
    own, ignore --log-level, and at WARNING put the root logger at DEBUG for a spinner."""
    import logging
    import sys

    from continuum_events.cli.common import configure_logging
    from continuum_events.connectors.http import RedactingFilter
    from processors.worker import make_worker

    configure_logging(level)
    ours, stdout = root_logging.handlers[:], sys.stdout
    worker = make_worker(create_app(KafkaSettings(bootstrap_servers="127.0.0.1:9"), datadir=tmp_path))
    worker._setup_logging()  # what the worker does first when it runs
    # Left where it was: the kept handler writes there, and a stdout redirected to a logger
    # dropped every line logged while the worker ran (the router's log went silent).
    assert sys.stdout is stdout
    assert root_logging.handlers == ours
    assert any(isinstance(f, RedactingFilter) for f in root_logging.handlers[0].filters)
    assert root_logging.level == logging.getLevelName(level.upper())
    assert not logging.getLogger("aiokafka.producer.producer").isEnabledFor(logging.DEBUG)
