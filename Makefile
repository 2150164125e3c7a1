# continuum-events — `make help` lists every target.
SHELL := /bin/bash
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.DEFAULT_GOAL := help
.PHONY: help install kafka system-deps run broker cluster test test-unit test-integration properties bench bench-broker bench-producer bench-router bench-connector bench-probe soak faults lint clean

help: ## Show this help
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  \033[1m%-18s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

install: $(STAMP) ## Create .venv and install the project with its test tools

# Apache Kafka's broker and its runtime jars, resolved once by Maven (checksums verified) from
# the version pinned in deploy/kafka/pom.xml into a cache inside the project. Java 17 runs it.
KAFKA_POM   := deploy/kafka/pom.xml
KAFKA_DIST  := .state/kafka-dist
KAFKA_STAMP := $(KAFKA_DIST)/.resolved

$(KAFKA_STAMP): $(KAFKA_POM)
	@command -v java >/dev/null && command -v mvn >/dev/null || { echo "installing Java 17 and Maven (Apache Kafka's runtime, and what resolves it)"; \
	  if [ "$$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi; \
	  $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
	  $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends openjdk-17-jre-headless maven; }
	rm -rf $(KAFKA_DIST)/libs
	mvn -q -B -f $(KAFKA_POM) -Dmaven.repo.local=$(CURDIR)/$(KAFKA_DIST)/m2 dependency:copy-dependencies \
	  -DincludeScope=runtime -DoutputDirectory=$(CURDIR)/$(KAFKA_DIST)/libs
	touch $@

# The JVM's class-data archive of the broker: local nodes start in ~2 s instead of ~3.2 s.
KAFKA_CDS := $(KAFKA_DIST)/.archived

$(KAFKA_CDS): $(KAFKA_STAMP) $(STAMP)
	$(BIN)/python -c "from continuum_events.broker import build_class_archive; build_class_archive()" \
	  || echo "no class archive: local Kafka nodes start about a second slower"
	touch $@

kafka: $(KAFKA_STAMP) $(KAFKA_CDS) ## Resolve Apache Kafka's jars (Maven Central) into .state/kafka-dist, installing Java 17 if missing

# `make run` prefers Apache Kafka; where Java or Maven cannot be had it says so and runs on Tansu.
run: $(STAMP) ## Run the pipeline on a local Apache Kafka (history kept in .state/kafka) with the demo and a live view
	@$(MAKE) --no-print-directory kafka || echo "Apache Kafka unavailable: continuing on Tansu (memory only)"
	$(BIN)/continuum-events run

broker: $(STAMP) kafka ## Run only a local Apache Kafka node on 127.0.0.1:9092 (data in .state/kafka)
	$(BIN)/continuum-events broker

cluster: $(STAMP) kafka ## Run a local 3-node Apache Kafka cluster (RF 3, min ISR 2) from 127.0.0.1:9092
	$(BIN)/continuum-events broker --nodes 3 --data-dir .state/kafka-cluster

# Real receivers the integration tests talk to, and the browser the admin page's test drives (Debian packages).
SYSTEM_PACKAGES := rsyslog rsyslog-gnutls openssl prometheus-pushgateway prometheus nsca chromium chromium-driver

system-deps: ## Install the Debian receivers and tools the tests use (rsyslog with TLS, Pushgateway, NSCA, promtool), if missing
	@missing=""; for p in $(SYSTEM_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing$$missing"; \
	  if [ "$$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi; \
	  $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
	  $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
	fi

# Most of the suite waits (group joins, receivers, restarts), so it runs on TEST_WORKERS xdist
# workers; the fault tests (marked slow) share one of them, one at a time (tests/conftest.py).
TEST_WORKERS ?= 3

# The whole suite on Apache Kafka (a node per xdist worker), then the tests that say most about
# the broker itself again on Tansu, so the zero-Java development engine stays covered.
TANSU_TESTS := tests/integration/test_producer.py tests/integration/test_router.py \
	tests/integration/test_history.py tests/integration/test_run.py

test: $(STAMP) kafka system-deps ## Run the whole suite on Apache Kafka (unit + integration, real receivers), then the broker-facing tests on Tansu
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadgroup --engine kafka \
	  --cov=continuum_events --cov=connectors --cov=producers --cov=processors --cov-report= --cov-report=xml:.state/reports/coverage.xml
	@echo "line coverage of the suite's own process(es): $$($(BIN)/python -m coverage report --format=total) % (.state/reports/coverage.xml)"
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadgroup --engine tansu $(TANSU_TESTS)

test-unit: $(STAMP) ## Run the unit tests only (no broker)
	$(BIN)/python -m pytest tests/unit

test-integration: $(STAMP) kafka ## Run the integration tests only (ENGINE=tansu for the development engine)
	$(BIN)/python -m pytest tests/integration --engine $(or $(ENGINE),kafka)

properties: $(STAMP) ## The Hypothesis properties with fresh random examples, 10x as many as the suite's fixed ones
	CONTINUUM_HYPOTHESIS=explore CONTINUUM_HYPOTHESIS_SCALE=10 $(BIN)/python -m pytest tests/unit/test_properties.py -p no:cacheprovider

bench: bench-broker bench-producer bench-router bench-connector bench-probe ## Run every benchmark (ratios against a baseline measured in the same run; on Kafka and Tansu)

bench-broker: $(STAMP) kafka ## Apache Kafka and Tansu side by side: start time, RSS, raw produce/consume ceilings
	$(BIN)/continuum-events bench broker

bench-producer: $(STAMP) kafka ## dispatch_event versus raw confluent-kafka produce
	$(BIN)/continuum-events bench producer

bench-router: $(STAMP) kafka ## The router versus a bare Faust forwarder; latency at 1,000 events/s
	$(BIN)/continuum-events bench router

bench-connector: $(STAMP) kafka ## The Splunk HEC connector versus one HTTP request per event
	$(BIN)/continuum-events bench connector

bench-probe: $(STAMP) ## The SNMP probe over 1,000 and 10,000 simulated printers versus bare SNMP GETs
	$(BIN)/continuum-events bench probe

# The fault suite at the issue's figures (the suite runs the same tests smaller).
FAULT_TESTS := tests/integration/test_crash_points.py tests/integration/test_connector_faults.py \
	tests/integration/test_cluster.py "tests/integration/test_router.py::test_sigkills_while_events_flow_lose_nothing" \
	tests/integration/test_slow_vendors.py tests/integration/test_poison.py tests/integration/test_spool_disk_full.py \
	tests/unit/test_properties.py tests/unit/test_secrets.py tests/unit/test_guarded_http.py tests/unit/test_kafka_security.py

faults: $(STAMP) kafka system-deps ## The fault suite at full size on Apache Kafka: 20 connector SIGKILLs, 5 router and 5 broker-leader kills in 50-100k events, a 60 s outage (not in CI)
	CONTINUUM_FAULT_SCALE=full CONTINUUM_FAULT_OUTAGE_S=60 $(BIN)/python -m pytest $(FAULT_TESTS) -s -p no:cacheprovider

# The soak run is not part of `make test`: 30 minutes by default; SOAK_SECONDS=90 SOAK_RATE=300 make soak is a short one.
SOAK_SECONDS ?= 1800
SOAK_RATE ?= 1000

soak: $(STAMP) kafka system-deps ## Soak: SOAK_RATE events/s for SOAK_SECONDS through router and all 11 connectors, then a 10x burst (.state/reports/soak.json)
	SOAK_SECONDS=$(SOAK_SECONDS) SOAK_RATE=$(SOAK_RATE) $(BIN)/python -m pytest tests/soak -m soak -s -p no:cacheprovider

lint: $(STAMP) ## The engineering gate: ruff check (rules in pyproject.toml), ruff format --check, mypy on the core; zero findings
	$(BIN)/python -m ruff check .
	$(BIN)/python -m ruff format --check .
	$(BIN)/python -m mypy

clean: ## Remove the venv, caches and local state (the local Kafka's history and jars too)
	rm -rf $(VENV) .pytest_cache .state build *.egg-info
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
