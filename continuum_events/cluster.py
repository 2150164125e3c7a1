"""What the cluster behind the bootstrap servers can be trusted with, asked once per address.

Apache Kafka answers ListOffsets and ``offsets_for_times`` from its indexes, compacts,
and runs transactions. Tansu, the zero-Java development engine, does none of that right
(``../shared/BROKER.md``), so the code that depends on one of these asks here and takes
the path that is right on the engine it talks to::

    traits = cluster_traits(settings)
    if traits.time_index:
        ...  # the broker's own offsets_for_times

Tansu names its cluster ``tansu_cluster`` in DescribeCluster; every other answer is taken
for Apache Kafka (or a cluster that speaks its protocol fully: Confluent, MSK, Redpanda).
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass

from confluent_kafka.admin import AdminClient

from continuum_events.settings import KafkaSettings

log = logging.getLogger(__name__)

TANSU_CLUSTER_ID = "tansu_cluster"


@dataclass(frozen=True)
class ClusterTraits:
    engine: str
    #: ListOffsets reports the true end of a partition.
    exact_list_offsets: bool
    #: ``offsets_for_times`` finds offsets by the records' own timestamps.
    time_index: bool
    #: Transactions commit and abort, and read_committed consumers skip aborted records.
    transactions: bool


KAFKA = ClusterTraits("kafka", exact_list_offsets=True, time_index=True, transactions=True)
TANSU = ClusterTraits("tansu", exact_list_offsets=False, time_index=False, transactions=False)

_known: dict[str, ClusterTraits] = {}
_lock = threading.Lock()


def cluster_traits(settings: KafkaSettings, timeout: float = 10.0) -> ClusterTraits:
    """The traits of the cluster at ``settings.bootstrap_servers`` (one DescribeCluster, cached)."""
    with _lock:
        known = _known.get(settings.bootstrap_servers)
    if known is not None:
        return known
    admin = AdminClient(settings.client_config())  # held until the answer: a dropped client cancels it
    cluster = admin.describe_cluster(request_timeout=timeout).result(timeout)
    traits = TANSU if cluster.cluster_id == TANSU_CLUSTER_ID else KAFKA
    log.debug("cluster %s at %s: %s", cluster.cluster_id, settings.bootstrap_servers, traits)
    with _lock:
        _known[settings.bootstrap_servers] = traits
    return traits
