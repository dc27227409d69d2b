# The two set-up commands of the README: `make demo` and `make test`. Each installs what it needs,
# from the lock files in requirements/ (pinned, so an upstream release cannot change what CI runs);
# pyproject.toml keeps the lower bounds for people who install ordercast into their own environment.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PIP := $(BIN)/python -m pip --quiet --disable-pip-version-check
PIP_VERSION := 26.3
UV_VERSION := 0.13.9
LOCK := $(BIN)/uv pip compile pyproject.toml requirements/build.in --python-version 3.11 --quiet \
	--custom-compile-command "make lock"

.PHONY: demo test install install-test lint lock

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install pip==$(PIP_VERSION)

# The lock is installed as it is, then ordercast itself on top without resolving anything again.
install: $(BIN)/python
	$(PIP) install -r requirements/run.lock
	$(PIP) install --no-deps --no-build-isolation -e .

install-test: $(BIN)/python
	$(PIP) install -r requirements/test.lock
	$(PIP) install --no-deps --no-build-isolation -e .
	bash scripts/test-deps.sh

# Regenerate the locks on purpose (after changing dependencies in pyproject.toml).
lock: $(BIN)/python
	$(PIP) install uv==$(UV_VERSION)
	$(LOCK) -o requirements/run.lock
	$(LOCK) --extra test -o requirements/test.lock

demo: install
	$(BIN)/ordercast demo

lint: install-test
	$(BIN)/ruff check ordercast tests $(wildcard bench)
	$(BIN)/ruff format --check ordercast tests $(wildcard bench)
	$(BIN)/mypy

test: lint
	$(BIN)/pytest -q
