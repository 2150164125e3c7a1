# continuum-events — `make help` lists every target.
SHELL := /bin/bash
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.DEFAULT_GOAL := help
.PHONY: help install system-deps run broker test test-unit test-integration properties bench bench-producer bench-router bench-connector bench-probe soak faults lint clean

help: ## Show this help
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  \033[1m%-18s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

install: $(STAMP) ## Create .venv and install the project with its test tools

run: $(STAMP) ## Run the pipeline on the embedded broker with the demo source and a live view (Ctrl-C stops)
	$(BIN)/continuum-events run

broker: $(STAMP) ## Run only the embedded broker on 127.0.0.1:9092
	$(BIN)/continuum-events broker

# Real receivers the integration tests talk to, and the browser the admin page's test drives (Debian packages).
SYSTEM_PACKAGES := rsyslog rsyslog-gnutls openssl prometheus-pushgateway nsca chromium chromium-driver

system-deps: ## Install the Debian receivers the tests use (rsyslog with TLS, Pushgateway, NSCA), if missing
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

test: $(STAMP) system-deps ## Run the whole suite (unit + integration against the embedded broker and real receivers)
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadgroup

test-unit: $(STAMP) ## Run the unit tests only (no broker)
	$(BIN)/python -m pytest tests/unit

test-integration: $(STAMP) ## Run the integration tests only
	$(BIN)/python -m pytest tests/integration

properties: $(STAMP) ## The Hypothesis properties with fresh random examples, 10x as many as the suite's fixed ones
	CONTINUUM_HYPOTHESIS=explore CONTINUUM_HYPOTHESIS_SCALE=10 $(BIN)/python -m pytest tests/unit/test_properties.py -p no:cacheprovider

bench: bench-producer bench-router bench-connector bench-probe ## Run every benchmark (ratios against a baseline measured in the same run)

bench-producer: $(STAMP) ## dispatch_event versus raw confluent-kafka produce
	$(BIN)/continuum-events bench producer

bench-router: $(STAMP) ## The router versus a bare Faust forwarder; latency at 1,000 events/s
	$(BIN)/continuum-events bench router

bench-connector: $(STAMP) ## The Splunk HEC connector versus one HTTP request per event
	$(BIN)/continuum-events bench connector

bench-probe: $(STAMP) ## The SNMP probe over 1,000 and 10,000 simulated printers versus bare SNMP GETs
	$(BIN)/continuum-events bench probe

# The fault suite at the issue's figures (the suite runs the same tests smaller).
FAULT_TESTS := tests/integration/test_crash_points.py tests/integration/test_connector_faults.py \
	tests/integration/test_slow_vendors.py tests/integration/test_poison.py tests/integration/test_spool_disk_full.py \
	tests/unit/test_properties.py tests/unit/test_secrets.py tests/unit/test_guarded_http.py tests/unit/test_kafka_security.py

faults: $(STAMP) system-deps ## The fault suite at full size: 100,000 events and 20 SIGKILLs, a 60 s outage (not in CI)
	CONTINUUM_FAULT_SCALE=full CONTINUUM_FAULT_OUTAGE_S=60 $(BIN)/python -m pytest $(FAULT_TESTS) -s -p no:cacheprovider

# The soak run is not part of `make test`: 30 minutes by default; SOAK_SECONDS=90 SOAK_RATE=300 make soak is a short one.
SOAK_SECONDS ?= 1800
SOAK_RATE ?= 1000

soak: $(STAMP) system-deps ## Soak: SOAK_RATE events/s for SOAK_SECONDS through router and all 11 connectors, then a 10x burst (.state/reports/soak.json)
	SOAK_SECONDS=$(SOAK_SECONDS) SOAK_RATE=$(SOAK_RATE) $(BIN)/python -m pytest tests/soak -m soak -s -p no:cacheprovider

lint: $(STAMP) ## ruff, if installed in the venv
	$(BIN)/python -m ruff check . || true

clean: ## Remove the venv, caches and local state
	rm -rf $(VENV) .pytest_cache .state build *.egg-info
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
