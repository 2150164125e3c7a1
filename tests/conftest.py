from __future__ import annotations

import logging
import os
from collections.abc import Iterator

import pytest
from hypothesis import settings as hypothesis_settings

#: The suite's properties run the same examples every time (a CI run is judged on the code, not
#: on the draw); ``make properties`` explores fresh random examples, many more of them.
hypothesis_settings.register_profile("suite", derandomize=True)
hypothesis_settings.register_profile("explore", derandomize=False, print_blob=True)
hypothesis_settings.load_profile(os.environ.get("CONTINUUM_HYPOTHESIS", "suite"))

from continuum_events.broker import ENGINE_ENV, ENGINES, QUICK_START_ENV, LocalBroker, default_engine, local_broker
from continuum_events.settings import KafkaSettings


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--engine",
        choices=ENGINES,
        default=None,
        help=f"the local broker the integration tests start (default: ${ENGINE_ENV}, else kafka)",
    )


def pytest_configure(config: pytest.Config) -> None:
    # Through the environment, so xdist workers and every process a test starts
    # (`continuum-events run`, killable connectors) pick the same engine.
    engine = config.getoption("--engine")
    if engine:
        os.environ[ENGINE_ENV] = engine
    # The suite starts dozens of short-lived Kafka nodes: the JIT's first tier only starts
    # each about 0.7 s sooner (the soak and the benchmarks run full JIT).
    os.environ.setdefault(QUICK_START_ENV, "1")


def pytest_report_header(config: pytest.Config) -> str:
    return f"broker engine: {default_engine()}"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """``make test`` runs the suite on several xdist workers (most tests wait on group joins and
    receivers, not on the CPU). The fault tests (marked ``slow``) load both cores and time
    restarts and requests, so they all go to one worker, one after another."""
    for item in items:
        if item.get_closest_marker("slow"):
            item.add_marker(pytest.mark.xdist_group("faults"))


@pytest.fixture(scope="session")
def broker() -> Iterator[LocalBroker]:
    """One local broker per session (per xdist worker); tests use unique topics or read by event_id."""
    with local_broker() as b:
        yield b


@pytest.fixture
def own_broker() -> Iterator[LocalBroker]:
    """A broker this test may kill and restart (not started: the test decides when)."""
    b = local_broker()
    yield b
    b.stop()


@pytest.fixture
def settings(broker: LocalBroker) -> KafkaSettings:
    return KafkaSettings(bootstrap_servers=broker.bootstrap_servers)


@pytest.fixture(autouse=True)
def _quiet_librdkafka() -> None:
    logging.getLogger("librdkafka").setLevel(logging.CRITICAL)


@pytest.fixture
def fresh_topic(broker: LocalBroker, request: pytest.FixtureRequest) -> str:
    """A new 6-partition topic of this test's own, so shared-broker tests never mix."""
    import uuid

    from confluent_kafka.admin import AdminClient

    from continuum_events.topology import TopicSpec, ensure_topics

    name = f"test-{request.node.name[:40].replace('[', '-').replace(']', '')}-{uuid.uuid4().hex[:8]}"
    ensure_topics(AdminClient({"bootstrap.servers": broker.bootstrap_servers}), [TopicSpec(name, 6)])
    return name
