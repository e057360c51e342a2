# The two set-up commands of the README are `make rehearsal` and `make test`; each bootstraps.
SHELL := /bin/bash
PY := .venv/bin/python
export PYTHONPATH := $(CURDIR):$(CURDIR)/plugins
SCENARIO ?= happy
RESULT ?= rehearsal-result.json
PYTEST_ARGS ?=

.PHONY: bootstrap rehearsal test test-unit test-integration test-e2e airflow sandbox-up sandbox-down sandbox-status lock benchmark benchmark-db benchmark-emergency benchmark-smoke benchmark-flags benchmark-unleash clean

bootstrap:
	@bash scripts/bootstrap.sh

rehearsal: bootstrap  ## run one cutover rehearsal against the local sandbox
	VERBOSE="$(VERBOSE)" $(PY) -m sandbox.rehearsal --scenario $(SCENARIO) --result $(RESULT)

test: bootstrap  ## every test: DAG integrity, unit, integration (real services), end to end
	$(PY) -m pytest tests $(PYTEST_ARGS)

test-unit: bootstrap
	$(PY) -m pytest tests/dags tests/unit $(PYTEST_ARGS)

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

lock:  ## regenerate requirements.lock from requirements.txt in a throwaway venv
	rm -rf /tmp/cutover-lock-venv && python3 -m venv /tmp/cutover-lock-venv
	/tmp/cutover-lock-venv/bin/pip install -q --upgrade pip
	/tmp/cutover-lock-venv/bin/pip install -q -r requirements.txt
	/tmp/cutover-lock-venv/bin/pip freeze --exclude-editable > requirements.lock

clean: sandbox-down
	rm -rf .sandbox .airflow
