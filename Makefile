# eda — the two commands of the README quick start are `make run` and `make test`.
SHELL := /bin/bash
.DEFAULT_GOAL := help

# The first interpreter >= 3.12 found (pyenv shims resolve python3.12 thanks to .python-version).
PYTHON ?= $(shell for p in python3.14 python3.13 python3.12 python3 python; do \
	  command -v $$p >/dev/null 2>&1 && $$p -c 'import sys; sys.exit(0 if sys.version_info >= (3, 12) else 1)' 2>/dev/null \
	  && { echo $$p; break; }; done)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=

.PHONY: help venv run test lint fmt typecheck unit integration e2e chaos bench kind-e2e clean

help:
	@echo "make run    - the whole system on embedded NATS + PostgreSQL (API on :8082)"
	@echo "make test   - lint + the whole test suite"
	@echo "make lint   - ruff, mypy --strict, import-linter"
	@echo "make chaos  - the fault-injection suite on a 3-node JetStream cluster"
	@echo "make bench  - benchmarks (not tests)"
	@echo "make kind-e2e - end-to-end on a kind cluster (needs Docker + kind)"

$(STAMP): pyproject.toml
	@test -n "$(PYTHON)" || { echo "error: Python >= 3.12 not found" >&2; exit 1; }
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

venv: $(STAMP)

run: $(STAMP)
	$(BIN)/eda dev

lint: $(STAMP)
	$(BIN)/ruff check app operator tests benchmarks tools
	$(BIN)/ruff format --check app operator tests benchmarks tools
	$(BIN)/mypy
	$(BIN)/lint-imports

fmt: $(STAMP)
	$(BIN)/ruff format app operator tests benchmarks tools
	$(BIN)/ruff check --fix app operator tests benchmarks tools

test: lint
	$(BIN)/python -m pytest -m "not kind" $(PYTEST_ARGS)

chaos: $(STAMP)
	$(BIN)/python -m pytest -m chaos tests/chaos $(PYTEST_ARGS)

bench: $(STAMP)
	$(BIN)/python benchmarks/append.py

kind-e2e: $(STAMP)
	bash k8s/kind/e2e.sh

# As root from a checkout PostgreSQL's user cannot enter, .eda-data/pg links to the data's home under
# /var/lib/eda/postgres (app/dev/pgroot.py): that goes too.
clean:
	@if [ -L .eda-data/pg ]; then home=$$(dirname "$$(readlink .eda-data/pg)"); \
	  case "$$home" in /var/lib/eda/postgres/?*) echo "rm -rf $$home"; rm -rf -- "$$home";; esac; fi
	rm -rf $(VENV) .eda-data .pytest_cache .mypy_cache .ruff_cache
