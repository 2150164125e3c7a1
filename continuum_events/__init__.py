"""continuum-events: Continuum's operational events through Kafka to operators' tools.

Data flows one way: producers -> ``printer-events`` -> processors (category
routing) -> per-category topics -> connectors -> vendors. This package holds what
every stage shares: the event contract, the Avro codec, Kafka settings, the topic
topology, the embedded broker and the CLI.
"""

__version__ = "0.1.0"
