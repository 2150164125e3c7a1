"""Development aids, never imported by the services a deployment runs (router,
connectors, probe, admin): the demo's and the tests' local vendor receivers, each
enforcing its vendor's documented contract (:mod:`.receivers`), and a simulated printer
fleet served over SNMP by snmpsim (:mod:`.fleet`). ``continuum-events run`` (the demo),
the benchmarks and the tests use them."""
