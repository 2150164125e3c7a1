"""Every topic the system uses, declared once and created explicitly.

Nothing relies on broker auto-creation: on the embedded broker auto-created topics
get 4 partitions and on a production cluster auto-creation is usually off. Start-up
calls :func:`ensure_topology`, which creates what is missing with its partition
count and configuration and reports what already exists with a different shape::

    topology = Topology(partitions=12, replication_factor=3)
    ensure_topology(AdminClient(settings.client_config()), topology)
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient, NewTopic

log = logging.getLogger(__name__)

EVENTS_TOPIC = "printer-events"
EVENTS_DLQ_TOPIC = "printer-events.dlq"
#: The largest event the pipeline carries: librdkafka's default record limit, under Apache
#: Kafka's default topic limit (1,048,588 bytes). No vendor takes more — PagerDuty stops at
#: 512 KB, Splunk's request at 1 MB. The app producer refuses a bigger event at dispatch; the
#: router dead-letters one written by another producer.
MAX_EVENT_BYTES = 1_000_000
#: The largest record the router's dead-letter topic (and the router's producer) takes.
DLQ_MAX_RECORD_BYTES = 16 << 20
CONFIG_TOPIC = "continuum-events.config"
STATUS_TOPIC = "continuum-events.status"
#: The router's internal topic of alerting pages on their way through alert hygiene,
#: keyed by location, and the topic of its state (folded by every router worker).
HYGIENE_TOPIC = f"{EVENTS_TOPIC}.hygiene"
HYGIENE_STATE = "continuum-router-hygiene-state"
CATEGORIES = ("logging", "monitoring", "alerting")
#: How long the event topics keep history (replay reaches back this far; `topics --retention-hours`).
EVENT_RETENTION_MS = 7 * 24 * 3600 * 1000
#: Dead letters (and the record of which were redriven) are kept for a month.
DEAD_LETTER_RETENTION_MS = 30 * 24 * 3600 * 1000


def category_topic(category: str) -> str:
    """``logging`` -> ``printer-events.logging``."""
    return f"{EVENTS_TOPIC}.{category}"


def integration_dlq_topic(integration: str) -> str:
    """Each integration's delivery failures go to their own dead-letter topic."""
    return f"{EVENTS_TOPIC}.dlq.{integration}"


def connector_group(integration: str) -> str:
    """The consumer group that holds an integration's position in its category topic."""
    return f"continuum-connector-{integration}"


def redrive_ledger_topic(integration: str) -> str:
    """Which of an integration's dead letters were already sent back through delivery."""
    return f"continuum-events.redriven.{integration}"


def incident_ledger_topic(integration: str) -> str:
    """An alerting integration's record of the incidents it opened and resolved."""
    return f"continuum-events.incidents.{integration}"


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int
    config: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Topology:
    """The shape of the deployment. ``partitions`` bounds consumer parallelism."""

    partitions: int = 6
    #: -1: the cluster's ``default.replication.factor`` (3 on a production cluster, 1 on one node).
    replication_factor: int = -1
    #: Retention for event topics; replay reaches back this far.
    retention_ms: int = EVENT_RETENTION_MS

    def topics(self) -> list[TopicSpec]:
        retained = {"cleanup.policy": "delete", "retention.ms": str(self.retention_ms)}
        specs = [TopicSpec(EVENTS_TOPIC, self.partitions, retained)]
        specs += [TopicSpec(category_topic(c), self.partitions, retained) for c in CATEGORIES]
        # Dead letters are kept long (someone has to look at them) and whole, even an
        # oversized event the router refused.
        specs.append(
            TopicSpec(
                EVENTS_DLQ_TOPIC,
                1,
                {"retention.ms": str(DEAD_LETTER_RETENTION_MS), "max.message.bytes": str(DLQ_MAX_RECORD_BYTES)},
            )
        )
        # Rules and integrations: last value per key wins, a delete is a tombstone. Apache
        # Kafka compacts it; readers fold the whole topic themselves all the same (Tansu never
        # compacts), which gives the same configuration either way.
        specs.append(TopicSpec(CONFIG_TOPIC, 1, {"cleanup.policy": "compact"}))
        # Alert hygiene: pages by location, and the state every router worker folds.
        specs.append(TopicSpec(HYGIENE_TOPIC, self.partitions, {"retention.ms": str(24 * 3600 * 1000)}))
        specs.append(TopicSpec(HYGIENE_STATE, 1, {"cleanup.policy": "compact"}))
        # Each connector instance's latest health report, keyed by integration and instance.
        specs.append(TopicSpec(STATUS_TOPIC, 1, {"cleanup.policy": "compact"}))
        return specs

    def integration_topics(self, integration: str) -> list[TopicSpec]:
        return [
            TopicSpec(integration_dlq_topic(integration), 1, {"retention.ms": str(DEAD_LETTER_RETENTION_MS)}),
            # One record per dead letter redriven (keyed by its position), kept as long as
            # the dead letters it refers to.
            TopicSpec(
                redrive_ledger_topic(integration),
                1,
                {"cleanup.policy": "compact,delete", "retention.ms": str(DEAD_LETTER_RETENTION_MS)},
            ),
        ]

    @staticmethod
    def ledger_topics(integration: str) -> list[TopicSpec]:
        # The last transition per incident: an incident may stay open for longer than any
        # retention, so compacted, never deleted. Writers only ever write a newer transition
        # for a key, so the last record kept is the one the ledger's fold would pick.
        return [TopicSpec(incident_ledger_topic(integration), 1, {"cleanup.policy": "compact"})]


def ensure_topics(
    admin: AdminClient, specs: list[TopicSpec], replication_factor: int = -1, timeout: float = 30.0
) -> list[str]:
    """Create the topics in ``specs`` that do not exist yet; return the names created.

    ``replication_factor`` -1 leaves it to the cluster (``default.replication.factor``): the
    topics a connector or an integration creates at run time are replicated as the cluster's
    operators decided, not once by accident."""
    existing = admin.list_topics(timeout=timeout).topics
    for spec in specs:
        if spec.name in existing and len(existing[spec.name].partitions) != spec.partitions:
            log.warning(
                "topic %s has %d partitions, the topology declares %d; leaving it as it is",
                spec.name,
                len(existing[spec.name].partitions),
                spec.partitions,
            )
    missing = [
        NewTopic(s.name, num_partitions=s.partitions, replication_factor=replication_factor, config=s.config)
        for s in specs
        if s.name not in existing
    ]
    if not missing:
        return []
    created = []
    for name, future in admin.create_topics(missing, request_timeout=timeout).items():
        try:
            future.result(timeout)
            created.append(name)
        except KafkaException as exc:
            if exc.args[0].name() != "TOPIC_ALREADY_EXISTS":  # a racing instance made it first
                raise
    log.info("created topics: %s", ", ".join(sorted(created)))
    return created


def ensure_topology(admin: AdminClient, topology: Topology, timeout: float = 30.0) -> list[str]:
    return ensure_topics(admin, topology.topics(), topology.replication_factor, timeout)
