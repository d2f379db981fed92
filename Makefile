# The two set-up commands of the README: `make dev` and `make test`.
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: dev test lint typecheck unit bench clean

$(STAMP): pyproject.toml
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "need $(PYTHON) on PATH (or run make PYTHON=python3)"; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip "setuptools>=77" wheel
	$(BIN)/python -m pip install --quiet -e ".[test]"
	touch $(STAMP)

## Run the main job: embedded broker + worker + HTTP API on localhost.
dev: $(STAMP)
	$(BIN)/runherald dev

## Create the virtual environment from this repository and run lint, type checks and every test.
test: $(STAMP) lint typecheck unit

lint: $(STAMP)
	$(BIN)/ruff check runherald streams notifiers tests
	$(BIN)/ruff format --check runherald streams notifiers tests

typecheck: $(STAMP)
	$(BIN)/mypy

unit: $(STAMP)
	$(BIN)/pytest -q

bench: $(STAMP)
	$(BIN)/runherald bench

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .mypy_cache .ruff_cache
