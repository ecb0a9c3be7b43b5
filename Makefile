# The two commands of the README: `make run` and `make test`.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
export FLASK_APP := tracker:create_app

.PHONY: run test lint format bench crash clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/flask db upgrade
	$(BIN)/flask tracker ensure-demo
	$(BIN)/flask run --host 127.0.0.1 --port 5000

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/bandit -q -r tracker config.py -ll
	$(BIN)/python -m pytest

# Figures for bench/REPORT.md; PostgreSQL too when DATABASE_URL names one.
bench: $(STAMP)
	$(BIN)/python bench/run.py

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
