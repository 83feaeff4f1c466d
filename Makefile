# The two commands: `make demo` and `make test`. Both install everything they need first.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.oiforge-installed
SYSSTAMP := $(VENV)/.oiforge-system-deps

.PHONY: install demo test check lint typecheck unit bench clean

install: $(STAMP) $(SYSSTAMP)

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip setuptools wheel
	$(BIN)/python -m pip install --quiet -e '.[all,dev]'
	@touch $(STAMP)

$(SYSSTAMP): scripts/install-system-deps.sh
	bash scripts/install-system-deps.sh
	@mkdir -p $(VENV) && touch $(SYSSTAMP)

demo: install
	PATH="$(CURDIR)/$(BIN):$$PATH" bash scripts/demo.sh

test: install check

check: lint typecheck unit

lint:
	$(BIN)/ruff check src tests bench scripts
	$(BIN)/ruff format --check src tests bench scripts

typecheck:
	$(BIN)/mypy

unit:
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python -m pytest tests

bench: install
	PATH="$(CURDIR)/$(BIN):$$PATH" bash bench/run_all.sh

clean:
	rm -rf $(VENV) demo-out test-artifacts .mypy_cache .ruff_cache
