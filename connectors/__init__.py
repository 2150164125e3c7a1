"""Connectors: one shared runtime, one small file per vendor.

* :mod:`.base` — the contract a vendor connector implements (encode a batch, classify
  the answer).
* :mod:`.runtime` — consuming, batching, retries, dead letters, commits, health, metrics.
* :mod:`.http` — HTTP plumbing shared by the HTTP vendors.
* :mod:`.incidents` — the incident lifecycle (identity, ledger) the alerting vendors
  and Grafana's regions share.
* the vendors — logging: :mod:`.splunk`, :mod:`.datadog`, :mod:`.elasticsearch`,
  :mod:`.syslog`; monitoring: :mod:`.pushgateway`, :mod:`.grafana`, :mod:`.newrelic`,
  :mod:`.nsca`; alerting: :mod:`.pagerduty`, :mod:`.opsgenie`, :mod:`.victorops`.
* :mod:`.registry` — vendor names to sinks; :mod:`.host` — run integrations.
"""
