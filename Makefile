# The two commands of the README: `make run` and `make test`.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
export FLASK_APP := tracker:create_app
# requirements/*.lock pin every package, with its hashes, for Python 3.11 on Linux:
# app.lock what the app needs to run (deployment), dev.lock that and the tools.
APP_LOCK := requirements/app.lock
DEV_LOCK := requirements/dev.lock
LOCK_FLAGS := --quiet --generate-hashes --allow-unsafe --strip-extras \
	--no-emit-index-url --no-emit-find-links

# `make run PORT=8000 HOST=0.0.0.0` to serve elsewhere (5000 is taken on some machines).
HOST ?= 127.0.0.1
PORT ?= 5000

.PHONY: run demo-reset test lint format bench crash clean lock

# Exactly the locked packages, hashes checked; then the tracker itself, without
# fetching anything (its build backend, setuptools, is in the lock).
$(STAMP): $(DEV_LOCK) pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --require-hashes -r $(DEV_LOCK)
	$(BIN)/pip install --quiet --no-deps --no-build-isolation -e .
	touch $(STAMP)

# After changing pyproject.toml's dependencies: pin them, and what they need, with hashes.
# Versions already locked are kept while pyproject admits them; to move everything to
# the newest allowed, `make lock LOCK_UPGRADE=--upgrade`.
lock: $(STAMP)
	$(BIN)/pip-compile $(LOCK_FLAGS) $(LOCK_UPGRADE) --build-deps-for wheel \
		--output-file $(APP_LOCK) pyproject.toml
	$(BIN)/pip-compile $(LOCK_FLAGS) $(LOCK_UPGRADE) --build-deps-for editable --extra dev \
		--constraint $(APP_LOCK) --output-file $(DEV_LOCK) pyproject.toml
	$(BIN)/python tools/check_lock.py

# The development configuration (a known key, plain HTTP) runs only when asked for.
# The worker (alerts, email as .eml files in instance/mail/) runs beside the server and
# is stopped with it.
run: export TRACKER_ENV := development
run: export BASE_URL ?= http://$(HOST):$(PORT)
run: $(STAMP)
	$(BIN)/flask db upgrade
	$(BIN)/flask tracker ensure-demo
	$(BIN)/flask tracker worker & worker=$$!; trap 'kill $$worker 2>/dev/null' EXIT INT TERM; \
	$(BIN)/flask run --host $(HOST) --port $(PORT)

# Drops every table of the development database, migrates it again and seeds the demo.
demo-reset: export TRACKER_ENV := development
demo-reset: $(STAMP)
	$(BIN)/flask tracker reset-demo --yes

# The suite runs a worker per core (pytest-xdist); `make test TEST_WORKERS=0` runs it in
# one process.
TEST_WORKERS ?= auto
test: $(STAMP)
	$(BIN)/python tools/check_lock.py
	$(BIN)/ruff check .
	$(BIN)/bandit -q -r tracker config.py -ll
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist worksteal

# Figures for bench/REPORT.md; PostgreSQL too when DATABASE_URL names one.
bench: $(STAMP)
	$(BIN)/python bench/run.py
	@case "$$DATABASE_URL" in \
	  postgresql*) $(BIN)/python bench/scaling.py ;; \
	  *) echo "bench/scaling.py (two servers against one) measures PostgreSQL: set DATABASE_URL" ;; \
	esac

# kill -9 under load, restart, verify; PostgreSQL too when DATABASE_URL names one.
crash: $(STAMP)
	$(BIN)/python bench/crash.py

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean:
	rm -rf $(VENV) instance/*.sqlite* .pytest_cache
