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

# Most tests wait on timers and HTTP, not the CPU: four processes finish in about a third of the time even on
# two cores. TEST_WORKERS=0 runs them in one process.
TEST_WORKERS ?= 4

test: install
	$(BIN)/python -m pytest -n $(TEST_WORKERS)

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
