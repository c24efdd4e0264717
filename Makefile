# Two entry points a person needs: `make run` and `make test`. Both create .venv with the pinned
# dependencies (requirements.lock) when it is missing or out of date.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
STAMP := $(VENV)/.installed
export REOPTD_HOME ?= $(CURDIR)/.reoptd

.PHONY: run test lint format servers lock clean readme-samples

$(STAMP): requirements.lock pyproject.toml
	@test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install -q --upgrade pip
	$(VENV)/bin/python -m pip install -q -r requirements.lock
	$(VENV)/bin/python -m pip install -q --no-deps -e .
	@touch $(STAMP)

run: $(STAMP)
	$(VENV)/bin/reoptd run

test: lint servers
	$(VENV)/bin/pytest

# Static checks: ruff (lint, format), mypy on the package, the import contracts (pyproject.toml).
lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports

format: $(STAMP)
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

# The README's sample outputs, re-run and rewritten in place (docs/regenerate.py; a few minutes).
readme-samples: $(STAMP)
	$(VENV)/bin/python docs/regenerate.py

# Real servers the `external` tests start on loopback (PostgreSQL), from Debian packages.
servers:
	@bash tests/install-servers.sh

# Re-resolve requirements.lock from the ranges in pyproject.toml.
lock:
	rm -rf /tmp/reoptd-lock && $(PYTHON) -m venv /tmp/reoptd-lock
	/tmp/reoptd-lock/bin/python -m pip install -q ".[dev]"
	/tmp/reoptd-lock/bin/python -m pip freeze --exclude reoptd | sed 's/+cpu$$//' > requirements.lock

clean:
	rm -rf $(VENV) .reoptd
