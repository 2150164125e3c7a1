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
