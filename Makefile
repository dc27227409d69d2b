# The two set-up commands of the README: `make demo` and `make test`. Each installs what it needs.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: demo test install install-test lint

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

install: $(BIN)/python
	$(BIN)/pip install --quiet -e .

install-test: $(BIN)/python
	$(BIN)/pip install --quiet -e '.[test]'
	bash scripts/test-deps.sh

demo: install
	$(BIN)/ordercast demo

lint: install-test
	$(BIN)/ruff check ordercast tests $(wildcard bench)
	$(BIN)/ruff format --check ordercast tests $(wildcard bench)
	$(BIN)/mypy

test: lint
	$(BIN)/pytest -q
