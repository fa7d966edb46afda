# Two commands on a fresh machine: `make run` (the local stack) and `make test`.
SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV := .venv
PY := $(VENV)/bin/python
UV_VERSION := 0.13.9
UV := python3 -m uv

CUSTOMER ?= acme
PORT ?= 8080
# pytest workers: one per core; `make test TEST_WORKERS=0` runs in a single process.
# A test module runs on one worker (loadfile), so its module fixtures (program
# runs, emulators, the local stack) are built once per worker that runs it.
TEST_WORKERS ?= auto
# Where `make test-later` moves the clock (faketime syntax: +400d, '@2028-02-29 23:59:00').
LATER ?= +400d
PYTEST := $(VENV)/bin/pytest -n $(TEST_WORKERS) --dist loadfile

.PHONY: help venv policy-venv policy-requirements policy test test-later lint format run token bench graph

help:
	@echo "make run                  the whole API locally on http://127.0.0.1:\$$PORT (default 8080)"
	@echo "make token CUSTOMER=acme  print a local API token for a tenant"
	@echo "make test                 lint (ruff), then the whole test suite (pytest, in parallel)"
	@echo "make test-later           the pytest suite again with the clock moved (LATER=+400d, faketime)"
	@echo "make lint                 ruff's lint and format checks only"
	@echo "make format               apply ruff's formatting and safe fixes"
	@echo "make policy               the policy pack over both stacks under mocks: findings table,"
	@echo "                          .build/policy/<stack>.sarif; fails on a mandatory violation"
	@echo "make bench                measure the service; writes bench/results/latest.json"
	@echo "make graph                write graphs/<stack>.json, the resource graph make test checks"
	@echo "make venv                 build .venv from uv.lock (pinned, exact versions)"
	@echo "make policy-venv          build policies/venv, where the Pulumi CLI runs the policy pack"
	@echo "make policy-requirements  re-pin policies/requirements.txt (hashes) to uv.lock"
	@echo "make help                 this list (also plain \`make\`)"

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
# POLICY_VENV moves it only for tests; the CLI looks in policies/venv.
POLICY_VENV := policies/venv

$(POLICY_VENV)/.synced: policies/requirements.txt | $(VENV)/.synced
	@$(UV) venv --seed --quiet --python 3.11 $(POLICY_VENV) >&2
	@$(UV) pip install --quiet --require-hashes --python $(POLICY_VENV)/bin/python -r policies/requirements.txt >&2
	@touch $@

# One line on what is there: the path, its Python and the pack's own versions.
policy-venv: $(POLICY_VENV)/.synced
	@$(POLICY_VENV)/bin/python -c 'import importlib.metadata as m, platform, sys; \
		print("%s: Python %s, pulumi %s, pulumi-policy %s, %d packages" % (sys.argv[1], \
		platform.python_version(), m.version("pulumi"), m.version("pulumi-policy"), \
		len(list(m.distributions()))))' "$(POLICY_VENV)"

# Re-pins policies/requirements.txt (with hashes) to the versions in uv.lock.
policy-requirements: venv
	@mkdir -p .build
	@$(UV) export --frozen --no-hashes --no-emit-project --no-header -q > .build/lock-constraints.txt
	$(UV) pip compile policies/requirements.in --python-version 3.11 --constraint .build/lock-constraints.txt \
		--generate-hashes --no-header -q -o policies/requirements.txt

# The pack over both stacks' programs under mocks, without the Pulumi CLI.
policy: venv
	$(PY) -m policy_check

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: venv
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

test: lint
	$(PYTEST)

# Every process the suite starts (pytest's workers, the local stack, the token
# command) sees the moved clock; FAKETIME_DONT_RESET keeps them on one timeline
# when LATER is an absolute time, so they agree about "now".
test-later: venv
	@command -v faketime >/dev/null || { echo "faketime is not installed: apt-get install faketime" >&2; exit 2; }
	FAKETIME_DONT_RESET=1 faketime -f '$(LATER)' $(PYTEST)

run: venv
	@PORT=$(PORT) $(PY) -m local

token: venv
	@$(PY) -m local.token "$(CUSTOMER)"

bench: venv
	$(PY) -m bench

graph: venv
	$(PY) -m graphs
