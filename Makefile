# Two commands on a fresh machine: `make run` (the local stack) and `make test`.
SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV := .venv
PY := $(VENV)/bin/python
UV_VERSION := 0.13.9
UV := python3 -m uv

.PHONY: help venv test lint format run token bench

help:
	@echo "make venv    build .venv from uv.lock (pinned, exact versions)"
	@echo "make test    lint (ruff) and run the whole test suite (pytest)"
	@echo "make format  apply ruff's formatting and safe fixes"

# The venv is rebuilt only when the lock or the project file changes.
$(VENV)/.synced: pyproject.toml uv.lock
	@$(UV) --version >/dev/null 2>&1 || python3 -m pip install --quiet --disable-pip-version-check "uv==$(UV_VERSION)"
	$(UV) sync --frozen --python 3.11
	@touch $@

venv: $(VENV)/.synced

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: venv
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

test: lint
	$(VENV)/bin/pytest
