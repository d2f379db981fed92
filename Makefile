# The two set-up commands of the README: `make dev` and `make test`.
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
LINKTREE := build/linktree

.PHONY: dev test lint typecheck imports linktree unit bench clean

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
test: $(STAMP) lint typecheck imports unit

lint: $(STAMP)
	$(BIN)/ruff check runherald streams notifiers benchmarks scripts tests
	$(BIN)/ruff format --check runherald streams notifiers benchmarks scripts tests

## mypy on the installed layout (runherald.streams, runherald.notifiers, ...; see linktree).
typecheck: linktree
	$(BIN)/mypy

## Import layers and no cycles (the contracts in pyproject.toml), on the installed layout like mypy.
imports: linktree
	cd $(LINKTREE) && $(CURDIR)/$(BIN)/lint-imports --no-cache --no-logo $(CURDIR)/pyproject.toml

# The package-dir mapping in pyproject.toml installs streams/ as runherald.streams (and so on), but mypy
# and lint-imports read folders, not that mapping: to them runherald.streams does not exist and every
# import of it is Any. $(LINKTREE)/runherald is the installed layout: real folders, each file a symlink
# to the real one, made afresh from the mapping each time (it takes milliseconds). Messages name files
# under it, which open the real ones. lint-imports runs from inside it: it puts the current directory
# first on sys.path, and from the repository that finds ./runherald without the mapped folders.
linktree: $(STAMP)
	rm -rf $(LINKTREE)
	$(BIN)/python -c 'import tomllib; dirs = tomllib.load(open("pyproject.toml", "rb"))["tool"]["setuptools"]["package-dir"]; \
		[print(package.replace(".", "/"), folder) for package, folder in dirs.items()]' \
	| while read -r package folder; do \
		(cd "$$folder" && find . -name __pycache__ -prune -o -type f -print) | while read -r file; do \
			mkdir -p "$(LINKTREE)/$$package/$$(dirname "$$file")"; \
			ln -s "$(CURDIR)/$$folder/$$file" "$(LINKTREE)/$$package/$$file"; \
		done; \
	done

unit: $(STAMP)
	$(BIN)/pytest -q

bench: $(STAMP)
	$(BIN)/runherald bench

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .mypy_cache .ruff_cache
