# Two commands on a fresh machine with Python 3.11: `make run` and `make test`.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.install-stamp

.PHONY: install run test lint faults bench bench-quick

# The sandboxes (sandboxes/, a distribution of their own) come with the dev install only: the production
# image installs the connector alone.
$(STAMP): pyproject.toml sandboxes/pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ./sandboxes -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

run: install
	$(BIN)/connector run

test: install
	$(BIN)/python -m pytest

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy .

# Benchmarks and fault tests on the real processes (bench/, docs/benchmarks.md).
faults: install
	$(BIN)/python -m bench.faults

bench: install
	$(BIN)/python -m bench.performance

bench-quick: install
	$(BIN)/python -m bench.performance --quick
