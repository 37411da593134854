# shadowlab: `make demo` runs the whole pipeline offline; `make test` starts Postgres and Kafka and runs every check.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
UV_VERSION := 0.13.9
export UV_PROJECT_ENVIRONMENT := $(VENV)
# The project's own services (scripts/services.sh starts them on these ports).
# Override SHADOWLAB_PG_PORT / SHADOWLAB_KAFKA_PORT / SHADOWLAB_KAFKA_CONTROLLER_PORT to run a second copy.
export SHADOWLAB_PG_PORT ?= 54329
export SHADOWLAB_KAFKA_PORT ?= 19092
export SHADOWLAB_KAFKA_CONTROLLER_PORT ?= 19093
export SHADOWLAB_TEST_DATABASE_URL ?= postgresql+psycopg://shadowlab:shadowlab@127.0.0.1:$(SHADOWLAB_PG_PORT)/shadowlab
export SHADOWLAB_TEST_KAFKA_BOOTSTRAP ?= 127.0.0.1:$(SHADOWLAB_KAFKA_PORT)

.PHONY: setup lock services services-stop services-status browser demo test test-fast test-faults lint fuzz bench clean

# The project's own packages are imported from this work tree (an editable install): uv compiles only the
# dependencies' bytecode, so where writing it at import is off (PYTHONDONTWRITEBYTECODE, a read-only checkout)
# every command would compile ~70 modules again (~0.1 s of CPU each time). compileall skips what is current.
PACKAGES := cli shadowlab analysis ingest replayer scoring dashboard simulator demo migrations packages/shadowlab-tee/shadowlab_tee

setup: $(STAMP)
	@$(BIN)/python -m compileall -q -j 0 $(PACKAGES) >/dev/null

# Installs exactly what uv.lock records (--frozen: the lock is never re-resolved here); --inexact keeps
# the pinned uv itself, which lives in the same venv.
$(STAMP): pyproject.toml uv.lock
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@$(BIN)/python -m pip install -q --disable-pip-version-check uv==$(UV_VERSION)
	$(BIN)/uv sync --frozen --inexact --extra dev --python $(BIN)/python -q --compile-bytecode
	@touch $(STAMP)

# Re-resolve the dependencies after a change to pyproject.toml (then commit uv.lock).
lock:
	@test -x $(BIN)/uv || { $(PYTHON) -m venv $(VENV) && $(BIN)/python -m pip install -q uv==$(UV_VERSION); }
	$(BIN)/uv lock

services: setup
	bash scripts/services.sh start

# Debian's Chromium for the browser tests (installed once, as root).
browser:
	bash scripts/browser.sh

services-stop:
	bash scripts/services.sh stop

services-status:
	bash scripts/services.sh status

lint: setup
	$(BIN)/uv lock --check --python $(BIN)/python -q || { echo "error: uv.lock is stale: run 'make lock' and commit uv.lock" >&2; exit 1; }
	$(BIN)/ruff check .
	$(BIN)/ruff format --check . || { echo "error: files above are not formatted: run '$(BIN)/ruff format .'" >&2; exit 1; }
	$(BIN)/mypy
	$(BIN)/lint-imports

demo: setup
	$(BIN)/shadowlab demo

# The test cluster trades crash durability for speed (fsync off); `make services` alone is durable.
test: export SHADOWLAB_SERVICES_DURABILITY = fast
test: setup lint services browser
	$(BIN)/pytest --durations=15

# The fault tests alone (processes killed, Kafka or Postgres stopped, provider outages); `make test` runs them too.
test-faults: export SHADOWLAB_SERVICES_DURABILITY = fast
test-faults: setup services
	$(BIN)/pytest -m faults --durations=10

# Unit tests only (no services); handy while editing.
test-fast: setup
	$(BIN)/pytest -m "not postgres and not kafka"

# The property tests with fresh random cases (`make test` draws the same ones every run).
fuzz: export SHADOWLAB_HYPOTHESIS_PROFILE = explore
fuzz: setup
	$(BIN)/pytest -m "not postgres and not kafka" $$(grep -rl "@given" tests)

bench: setup services
	bash bench/run.sh

clean:
	rm -rf build dist *.egg-info .mypy_cache .ruff_cache .pytest_cache demo-output
