# The two set-up commands of the README are `make rehearsal` and `make test`; each bootstraps.
SHELL := /bin/bash
PY := .venv/bin/python
export PYTHONPATH := $(CURDIR):$(CURDIR)/plugins
SCENARIO ?= happy
RESULT ?= rehearsal-result.json
PYTEST_ARGS ?=

.PHONY: bootstrap venv test-fresh-debian rehearsal test test-unit test-deploy test-integration test-e2e airflow sandbox-up sandbox-down sandbox-status lock benchmark benchmark-db benchmark-emergency benchmark-smoke benchmark-flags benchmark-unleash benchmark-cohorts benchmark-gate benchmark-load clean

bootstrap:  ## Debian packages of the sandbox services, .venv, unleash-server's npm packages
	@bash scripts/bootstrap.sh

venv:  ## only .venv (and python3-venv): what the unit tests need
	@bash scripts/bootstrap.sh --venv-only

rehearsal: bootstrap  ## run one cutover rehearsal against the local sandbox
	VERBOSE="$(VERBOSE)" $(PY) -m sandbox.rehearsal --scenario $(SCENARIO) --result $(RESULT)

test: bootstrap  ## every test: DAG integrity, unit, integration (real services), end to end
	$(PY) -m pytest tests $(PYTEST_ARGS)

test-unit: venv  ## DAG integrity and unit tests: no sandbox service, no Node
	$(PY) -m pytest tests/dags tests/unit $(PYTEST_ARGS)

test-deploy: venv  ## offline deployment checks: Kubernetes manifests, Gateway API schemas, CI workflow, .env.example, secret scan
	$(PY) -m pytest tests/deploy $(PYTEST_ARGS)

test-integration: bootstrap
	$(PY) -m pytest tests/integration $(PYTEST_ARGS)

test-e2e: bootstrap
	$(PY) -m pytest tests/e2e $(PYTEST_ARGS)

airflow: bootstrap  ## sandbox + `airflow standalone` at http://127.0.0.1:8080 (admin/admin)
	bash scripts/airflow-standalone.sh

sandbox-up: bootstrap
	$(PY) -m sandbox.launcher up
sandbox-down:
	$(PY) -m sandbox.launcher down
sandbox-status:
	$(PY) -m sandbox.launcher status

benchmark: bootstrap  ## figures for BENCHMARKS.md (takes several minutes)
	$(PY) -m benchmarks.run

benchmark-db: bootstrap  ## stage-2 database timings at 1M orders (datagen, backfill, backup + verify, restore, GX validation)
	$(PY) -m benchmarks.db_prep --json benchmarks/db_prep.json
	$(PY) -m benchmarks.gx_validation

benchmark-emergency: bootstrap  ## emergency_rollback under `airflow standalone`: trigger -> 100 % blue verified (5 runs)
	$(PY) -m benchmarks.emergency_rollback --runs 5

benchmark-smoke: bootstrap  ## one scheduled smoke run: median of 5 under airflow standalone (API port 8181) and with dag.test()
	$(PY) -m benchmarks.smoke_run --runs 5 --json benchmarks/smoke_run.json

benchmark-flags: bootstrap  ## flag flip -> every app serves Rails (file backend), median of 15 flips under traffic
	$(PY) -m benchmarks.flags --flips 15 --json benchmarks/flags.json

benchmark-unleash: bootstrap  ## flag flip -> every app's Unleash SDK serves Rails (median of 12 flips)
	$(PY) -m benchmarks.flags_unleash --flips 12 --json benchmarks/flags_unleash.json

benchmark-cohorts: bootstrap  ## cohort map update cost in HAProxy (10,000 and 100,000 users), request latency map full vs empty
	$(PY) -m benchmarks.cohort_map

benchmark-load: bootstrap  ## stage 6 on the real apps, rehearsal plan: knee, p95 at peak, stress, recovery, hints per color (3 runs + green under capacity, ~5 min)
	nice -n 10 $(PY) -m benchmarks.load_knee --runs 3 --under-capacity --json benchmarks/load_knee.json

benchmark-gate: venv  ## gate quality: Monte-Carlo of the real judge + gate (and Flagger/Argo defaults) on synthetic traffic, ~200 s of CPU
	nice -n 15 $(PY) -m benchmarks.gate_quality --json benchmarks/gate_quality.json

# A universal lock (environment markers kept, e.g. async-timeout only below Python 3.11.3) from
# uv's resolver, which keeps the pins already in requirements.lock where requirements.txt allows.
# uv lives in a throwaway venv, never in the project's.
UV_VERSION ?= 0.13.9
LOCK_VENV ?= /tmp/cutover-lock-venv
lock:  ## re-resolve requirements.lock from requirements.txt for Python 3.11 (all platforms)
	rm -rf $(LOCK_VENV) && /usr/bin/python3 -m venv $(LOCK_VENV)
	$(LOCK_VENV)/bin/pip install -q uv==$(UV_VERSION)
	$(LOCK_VENV)/bin/uv pip compile --quiet --universal --python-version 3.11 requirements.txt -o requirements.lock
	rm -rf $(LOCK_VENV)

test-fresh-debian:  ## `make rehearsal` in a plain Debian 12 container (root; docker.io, debootstrap)
	bash scripts/test-fresh-debian.sh

clean: sandbox-down
	rm -rf .sandbox .airflow
