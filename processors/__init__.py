"""Processors: the Faust router from ``printer-events`` to the per-category topics.

* :mod:`.routing` — one record in, its outputs out (pure; unit-tested without Kafka).
* :mod:`.agents` — the Faust agent around it, with the dead-letter path.
* :mod:`.app` — the Faust app and its broker settings.
* :mod:`.worker` — ``continuum-events router``: config follower + app + worker.
"""
