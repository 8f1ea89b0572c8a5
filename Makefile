# The two commands of the README: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip --disable-pip-version-check -q
DEMO_HOME ?= $(CURDIR)/demo-workspace
PYTEST_WORKERS ?= 2

.PHONY: demo demo-full test install install-test lint typecheck postgis chromium web clean bench

$(PY):
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "capmon needs Python >= 3.11")'
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: pyproject.toml | $(PY)
	$(PIP) install -e .
	@touch $@

$(VENV)/.installed-test: pyproject.toml | $(PY)
	$(PIP) install -e '.[test]'
	@touch $@ $(VENV)/.installed

## The web UI (web/, TypeScript + Vite) built into src/capmon/service/web/, served by `capmon serve`
## at /ui/. npm ci runs again only when package-lock.json changes; the build when a source does.
WEB_BUILT := src/capmon/service/web/index.html
WEB_SOURCES := $(shell find web/src -type f 2>/dev/null) web/index.html web/package.json web/tsconfig.json web/vite.config.ts

web/node_modules/.installed: web/package-lock.json
	@command -v npm >/dev/null || { echo "The web UI needs Node.js >= 20 with npm (e.g. apt-get install nodejs npm)." >&2; exit 1; }
	cd web && npm ci --no-audit --no-fund --loglevel=error
	@touch $@

$(WEB_BUILT): web/node_modules/.installed $(WEB_SOURCES)
	cd web && npm run --silent build

web: $(WEB_BUILT)

install: $(VENV)/.installed web

install-test: $(VENV)/.installed-test web

## Installs capmon and runs the whole system on the built-in synthetic demo season (quick world).
demo: install
	$(VENV)/bin/capmon --home "$(DEMO_HOME)" demo --overwrite

## The same on the full synthetic world (2000 parcels, 10-20 minutes).
demo-full: install
	$(VENV)/bin/capmon --home "$(DEMO_HOME)" demo --full --overwrite

## PostgreSQL + PostGIS binaries for the catalogue tests (the tests start their own throw-away cluster).
postgis:
	@bash scripts/ensure-postgis.sh

## Chromium for the web UI's browser tests (tests/web).
chromium:
	@bash scripts/ensure-chromium.sh

lint: install-test
	$(VENV)/bin/ruff check src tests benchmarks
	$(VENV)/bin/ruff format --check src tests benchmarks
	cd web && npm run --silent check

typecheck: install-test
	$(VENV)/bin/mypy

## Installs capmon with its test extras, makes PostGIS available and runs lint, types and the test suite.
test: install-test postgis chromium lint typecheck
	$(VENV)/bin/pytest -n $(PYTEST_WORKERS)

## Installs the benchmark extras (exactextract, rasterstats) and times the extraction on one tile.
bench: install
	$(PIP) install -e '.[bench]'
	$(VENV)/bin/capmon bench extract $(BENCH_ARGS)

clean:
	rm -rf $(VENV) build dist src/*.egg-info .pytest_cache .mypy_cache .ruff_cache web/node_modules src/capmon/service/web
