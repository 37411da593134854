# shadowlab: `make demo` runs the whole pipeline offline; `make test` starts Postgres and Kafka and runs every check.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
# The project's own services (scripts/services.sh starts them on these ports).
export SHADOWLAB_TEST_DATABASE_URL ?= postgresql+psycopg://shadowlab:shadowlab@127.0.0.1:54329/shadowlab
export SHADOWLAB_TEST_KAFKA_BOOTSTRAP ?= 127.0.0.1:19092

.PHONY: setup services services-stop services-status demo test test-fast lint bench clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@$(BIN)/python -m pip install -q --upgrade pip uv
	$(BIN)/uv pip install --python $(BIN)/python -q -e '.[dev]'
	@touch $(STAMP)

services: setup
	bash scripts/services.sh start

services-stop:
	bash scripts/services.sh stop

services-status:
	bash scripts/services.sh status

lint: setup
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/lint-imports

demo: setup
	$(BIN)/python -m shadowlab.cli demo

test: setup lint services
	$(BIN)/pytest

# Unit tests only (no services); handy while editing.
test-fast: setup
	$(BIN)/pytest -m "not postgres and not kafka"

bench: setup services
	bash bench/run.sh

clean:
	rm -rf build dist *.egg-info .mypy_cache .ruff_cache .pytest_cache demo-output
