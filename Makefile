# Quick start: `make demo` (services, worker, simulated traffic, report) and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
export PIP_CACHE_DIR := $(CURDIR)/.cache/pip
export KAFKA_BOOTSTRAP_SERVERS ?= 127.0.0.1:9092
export DATABASE_URL ?= postgresql://postgres:postgres@127.0.0.1:5432/telemetry

.PHONY: install lint format services-up services-down services-status test test-unit test-integration test-faults demo demo-litellm demo-litellm-proxy bench routing-eval schemas clean

install: $(VENV)/.installed tests/typescript/node_modules/.installed clients/ts/dist/.built kustomize prometheus-tools

# kustomize renders deploy/k8s for the manifest tests: kubectl's built-in one, or built from the Go module proxy.
KUSTOMIZE_VERSION := v5.5.0
.PHONY: kustomize
kustomize:
	@command -v kubectl >/dev/null || command -v kustomize >/dev/null || [ -x .cache/bin/kustomize ] || { \
	  command -v go >/dev/null || { echo "kubectl, kustomize or Go is needed for the manifest tests" >&2; exit 1; }; \
	  echo "building kustomize $(KUSTOMIZE_VERSION) into .cache/bin"; \
	  GOBIN=$(CURDIR)/.cache/bin GOMODCACHE=$(CURDIR)/.cache/go-mod go install sigs.k8s.io/kustomize/kustomize/v5@$(KUSTOMIZE_VERSION); }

# promtool and amtool check and unit-test the alerting rules and the Alertmanager example: Debian's, from its
# prometheus and prometheus-alertmanager packages (only the tools are unpacked into .cache/bin; nothing is
# installed or started).
.PHONY: prometheus-tools
prometheus-tools: .cache/bin/promtool .cache/bin/amtool
.cache/bin/promtool:
	@bash deploy/local/debian-tool.sh prometheus promtool
.cache/bin/amtool:
	@bash deploy/local/debian-tool.sh prometheus-alertmanager amtool

$(VENV)/.installed: pyproject.toml constraints.txt
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11 or newer is needed; set PYTHON=python3.11")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q -c constraints.txt -e '.[test]'
	@touch $@

# The TypeScript compiler's parser, which the tests use to check generated Vitest stubs.
tests/typescript/node_modules/.installed: tests/typescript/package.json tests/typescript/package-lock.json
	@command -v npm >/dev/null || { echo "npm is needed for the stub tests: apt-get install nodejs npm" >&2; exit 1; }
	npm ci --prefix tests/typescript --no-audit --no-fund --cache $(CURDIR)/.cache/npm --loglevel=error
	@touch $@

# The TypeScript client package: its dependencies (pure JS, no native build) and its compiled output.
clients/ts/node_modules/.installed: clients/ts/package.json clients/ts/package-lock.json
	@command -v npm >/dev/null || { echo "npm is needed for the TypeScript client: apt-get install nodejs npm" >&2; exit 1; }
	npm ci --prefix clients/ts --no-audit --no-fund --cache $(CURDIR)/.cache/npm --loglevel=error
	@touch $@

clients/ts/dist/.built: clients/ts/node_modules/.installed $(wildcard clients/ts/src/*.ts clients/ts/src/generated/*.ts) clients/ts/tsconfig.json
	npm --prefix clients/ts run --silent build
	@touch $@

services-up:
	@bash deploy/local/services.sh up

services-down:
	@bash deploy/local/services.sh down

services-status:
	@bash deploy/local/services.sh status

## Lint, format check and types (ruff, mypy; configured in pyproject.toml). `make format` fixes what it can.
LINTED := worker tests examples bench
lint: install
	$(BIN)/ruff check $(LINTED)
	$(BIN)/ruff format --check $(LINTED)
	$(BIN)/mypy

format: install
	$(BIN)/ruff check --fix $(LINTED)
	$(BIN)/ruff format $(LINTED)

## Lint, unit and deployment tests (no services) and integration tests on the real Kafka broker and PostgreSQL server.
test: lint services-up
	$(BIN)/pytest --durations=25 tests/unit tests/deploy tests/integration
	KAFKAJS_NO_PARTITIONER_WARNING=1 npm --prefix clients/ts test --silent

test-unit: install
	$(BIN)/pytest tests/unit tests/deploy

test-integration: install services-up
	$(BIN)/pytest tests/integration

## Outages, crashes and hostile input: stops and restarts the local services it runs on.
test-faults: install services-up
	$(BIN)/pytest --durations=10 tests/faults

demo: install services-up
	@bash deploy/local/demo.sh

## The same with a real litellm.Router as the gateway: one deployment fails, loses its traffic, gets it back.
demo-litellm: install services-up
	@DEMO_GATEWAY=litellm bash deploy/local/demo.sh

## The same through the LiteLLM Proxy (`litellm --config`, the README's config.yaml) and the openai client.
demo-litellm-proxy: install services-up
	@DEMO_GATEWAY=litellm-proxy bash deploy/local/demo.sh

## Closed-loop routing evaluation (simulated clock, no services): the table, and a PNG per scenario.
ROUTING_EVAL_ARGS ?= --seeds 3 --out .cache/routing-eval
routing-eval: install
	$(BIN)/telemetry-worker routing-eval $(ROUTING_EVAL_ARGS)

schemas: install
	$(BIN)/telemetry-worker schemas

clean: services-down
	rm -rf .cache .venv .demo .pytest_cache .hypothesis

## Throughput, memory and delay, side by side (not part of make test). BENCH_ARGS="--events 100000 --runs 1"
bench: install services-up
	$(BIN)/pip install -q -c constraints.txt -e '.[bench]'
	PATH=$(CURDIR)/$(BIN):$$PATH $(BIN)/python bench/run.py --profile .cache/bench/profile.txt $(BENCH_ARGS)
