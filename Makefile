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

LOCKS := requirements/runtime.txt requirements/dev.txt requirements/build.txt requirements/sbom.txt
COMPILE = $(BIN)/uv pip compile --universal --generate-hashes --quiet $(if $(UPGRADE),--upgrade,)
LINTED := app operator tests benchmarks tools

.PHONY: help venv run test lint audit fmt chaos bench kind-e2e clean lock pin-images

help:
	@echo "make run    - the whole system on embedded NATS + PostgreSQL (API on :8082)"
	@echo "make test   - lint + the whole test suite"
	@echo "make lint   - ruff, mypy --strict, import-linter, pip-audit of the runtime lock"
	@echo "make lock   - recompile the hashed lock files in requirements/ (UPGRADE=1: newest allowed versions)"
	@echo "make pin-images - pin the chart's images and the base image by digest (needs crane or docker)"
	@echo "make chaos  - the fault-injection suite on a 3-node JetStream cluster"
	@echo "make bench  - benchmarks (not tests)"
	@echo "make kind-e2e - end-to-end on a kind cluster (needs Docker + kind)"

# Everything from the hashed lock (pip refuses any file whose hash is not in it), then the project itself.
$(STAMP): pyproject.toml requirements/dev.txt
	@test -n "$(PYTHON)" || { echo "error: Python >= 3.12 not found" >&2; exit 1; }
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --require-hashes --no-deps -r requirements/dev.txt
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e .
	@touch $(STAMP)

venv: $(STAMP)

run: $(STAMP)
	$(BIN)/eda dev

lint: $(STAMP)
	$(BIN)/ruff check $(LINTED)
	$(BIN)/ruff format --check $(LINTED)
	$(BIN)/mypy
	$(BIN)/lint-imports
	$(BIN)/python tools/audit.py

# pip-audit of what the image ships; skipped with a message where the advisory database is unreachable.
audit: $(STAMP)
	$(BIN)/python tools/audit.py

fmt: $(STAMP)
	$(BIN)/ruff format $(LINTED)
	$(BIN)/ruff check --fix $(LINTED)

# The lock files (uv resolves for every platform, with hashes; pip installs them): runtime = the image,
# dev = `make venv`/CI, build/sbom = the image build's tools. Run after editing pyproject.toml.
lock: $(STAMP)
	$(COMPILE) pyproject.toml -o requirements/runtime.txt
	$(COMPILE) pyproject.toml requirements/build.in --extra dev -o requirements/dev.txt
	$(COMPILE) requirements/build.in --python-version 3.12 -o requirements/build.txt
	$(COMPILE) requirements/sbom.in --python-version 3.12 -o requirements/sbom.txt

pin-images: $(STAMP)
	$(BIN)/python tools/pin_images.py

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
