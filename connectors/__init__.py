"""Connectors: one shared runtime, one small file per vendor.

* :mod:`.base` — the contract a vendor connector implements (encode a batch, classify
  the answer).
* :mod:`.runtime` — consuming, batching, retries, dead letters, commits, health, metrics.
* :mod:`.http` — HTTP plumbing shared by the HTTP vendors.
* :mod:`.splunk`, :mod:`.datadog`, :mod:`.elasticsearch`, :mod:`.syslog` — the vendors.
* :mod:`.registry` — vendor names to sinks; :mod:`.host` — run integrations.
"""
