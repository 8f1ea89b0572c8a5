# The two commands of the README: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip --disable-pip-version-check -q
DEMO_HOME ?= $(CURDIR)/demo-workspace
PYTEST_WORKERS ?= 2

.PHONY: demo test install install-test lint typecheck postgis clean bench

$(PY):
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "capmon needs Python >= 3.11")'
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: pyproject.toml | $(PY)
	$(PIP) install -e .
	@touch $@

$(VENV)/.installed-test: pyproject.toml | $(PY)
	$(PIP) install -e '.[test]'
	@touch $@ $(VENV)/.installed

install: $(VENV)/.installed

install-test: $(VENV)/.installed-test

## Installs capmon and runs the whole system on the built-in synthetic demo season.
demo: install
	$(VENV)/bin/capmon --home "$(DEMO_HOME)" demo --overwrite

## PostgreSQL + PostGIS binaries for the catalogue tests (the tests start their own throw-away cluster).
postgis:
	@bash scripts/ensure-postgis.sh

lint: install-test
	$(VENV)/bin/ruff check src tests benchmarks
	$(VENV)/bin/ruff format --check src tests benchmarks

typecheck: install-test
	$(VENV)/bin/mypy

## Installs capmon with its test extras, makes PostGIS available and runs lint, types and the test suite.
test: install-test postgis lint typecheck
	$(VENV)/bin/pytest -n $(PYTEST_WORKERS)

## Installs the benchmark extras (exactextract, rasterstats) and times the extraction on one tile.
bench: install
	$(PIP) install -e '.[bench]'
	$(VENV)/bin/capmon bench extract $(BENCH_ARGS)

clean:
	rm -rf $(VENV) build dist src/*.egg-info .pytest_cache .mypy_cache .ruff_cache
