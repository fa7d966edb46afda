# Two commands on a fresh machine: `make run` (the local stack) and `make test`.
SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV := .venv
PY := $(VENV)/bin/python
UV_VERSION := 0.13.9
UV := python3 -m uv

CUSTOMER ?= acme
PORT ?= 8080

.PHONY: help venv policy-venv policy-requirements test lint format run token bench

help:
	@echo "make run                  the whole API locally on http://127.0.0.1:\$$PORT (default 8080)"
	@echo "make token CUSTOMER=acme  print a local API token for a tenant"
	@echo "make test                 lint (ruff) and run the whole test suite (pytest)"
	@echo "make bench                measure the service; writes bench/results/latest.json"
	@echo "make venv                 build .venv from uv.lock (pinned, exact versions)"
	@echo "make policy-venv          build policies/venv, where pulumi runs the policy pack"
	@echo "make format               apply ruff's formatting and safe fixes"

# The venv is rebuilt only when the lock or the project file changes. Its
# progress goes to stderr so `$$(make token)` captures only the token.
$(VENV)/.synced: pyproject.toml uv.lock
	@$(UV) --version >/dev/null 2>&1 || python3 -m pip install --quiet --disable-pip-version-check "uv==$(UV_VERSION)" >&2
	@echo "$(UV) sync --frozen --python 3.11" >&2
	@$(UV) sync --frozen --python 3.11 >&2
	@touch $@

venv: $(VENV)/.synced

# The policy pack's own environment, where the Pulumi CLI runs it
# (PulumiPolicy.yaml: virtualenv venv); built explicitly so CI never depends
# on the CLI creating it.
policies/venv/.synced: policies/requirements.txt | $(VENV)/.synced
	@$(UV) venv --seed --quiet --python 3.11 policies/venv >&2
	@$(UV) pip install --quiet --require-hashes --python policies/venv/bin/python -r policies/requirements.txt >&2
	@touch $@

policy-venv: policies/venv/.synced

# Re-pins policies/requirements.txt (with hashes) to the versions in uv.lock.
policy-requirements: venv
	@mkdir -p .build
	@$(UV) export --frozen --no-hashes --no-emit-project --no-header -q > .build/lock-constraints.txt
	$(UV) pip compile policies/requirements.in --python-version 3.11 --constraint .build/lock-constraints.txt \
		--generate-hashes --no-header -q -o policies/requirements.txt

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: venv
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

test: lint
	$(VENV)/bin/pytest

run: venv
	@PORT=$(PORT) $(PY) -m local

token: venv
	@$(PY) -m local.token "$(CUSTOMER)"

bench: venv
	$(PY) -m bench
