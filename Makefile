# `make` with no target lists the targets.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | sha1sum | cut -c1-12)

.DEFAULT_GOAL := help
.PHONY: help install up test lint format

help: ## list the targets
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | sort | awk -F':.*## ' '{printf "  make %-14s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	@rm -f $(VENV)/.installed-* && touch $@

install: $(STAMP) ## create .venv and install everything (idempotent)

up: $(STAMP) ## start PostgreSQL, Redis and every service locally (Ctrl-C stops all)
	$(PY) -m scripts.devstack up

test: $(STAMP) ## run the whole test suite against real PostgreSQL and Redis
	$(PY) -m pytest $(PYTEST_ARGS)

lint: $(STAMP) ## ruff lint + format check, mypy
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy shared services nodes scripts automateos
	$(VENV)/bin/lint-imports

format: $(STAMP) ## apply ruff formatting and fixes
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

# Areas add their targets in mk/<area>.mk (chart, image, metrics, bench).
-include mk/*.mk
