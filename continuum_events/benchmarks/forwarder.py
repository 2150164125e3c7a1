"""The router benchmark's baseline: a bare Faust agent that forwards bytes unchanged.

python -m continuum_events.benchmarks.forwarder BOOTSTRAP IN_TOPIC OUT_TOPIC APP_ID DATADIR
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import faust

from continuum_events.processors.app import create_app
from continuum_events.processors.worker import make_worker
from continuum_events.settings import KafkaSettings


def main(bootstrap: str, source: str, target: str, app_id: str, datadir: str) -> None:
    app = create_app(KafkaSettings(bootstrap_servers=bootstrap), datadir=Path(datadir), app_id=app_id)
    raw = {"key_serializer": "raw", "value_serializer": "raw"}
    inbound, outbound = app.topic(source, **raw), app.topic(target, **raw)

    @app.agent(inbound, name="forward")
    async def forward(stream: faust.Stream) -> None:
        async for event in stream.events():
            await outbound.send(key=event.message.key, value=event.message.value)

    # Logging as the router's (processors.worker.make_worker), so both pay the same for it.
    logging.basicConfig(level=logging.WARNING, format="%(name)s: %(message)s")
    make_worker(app).execute_from_commandline()


if __name__ == "__main__":
    main(*sys.argv[1:6])
