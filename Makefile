# Bifrost Workbench — `make run` (demo on the embedded default) and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cksum pyproject.toml | cut -d' ' -f1)
PYTEST_WORKERS ?= auto

.PHONY: install run serve test test-fast check lint format bench screenshots clean

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11+ is required (found %s); set PYTHON=python3.11" % sys.version.split()[0])'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@rm -f $(VENV)/.installed-*
	@touch $(STAMP)

install: $(STAMP)

## Run the product on the embedded default (SQLite + warm workers) with the demo workspace.
# `bifrost serve` prints its URL once it listens (BIFROST_HOST / BIFROST_PORT choose it).
run: install
	$(BIN)/bifrost init --demo
	@echo ""
	@echo "  Log in as admin@example.com / bifrost-admin (unless BIFROST_ADMIN_PASSWORD was set at the first start)"
	$(BIN)/bifrost serve

## The whole test suite, in parallel (Postgres tests run when BIFROST_TEST_POSTGRES_URL is set).
test: install
	$(BIN)/pytest -n $(PYTEST_WORKERS) --dist loadfile --no-loadscope-reorder -q -rs

## Lint, format check, types and architecture contracts.
check: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports

format: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

## Benchmarks print JSON; see docs/performance.md.
# Each benchmark prints one JSON document; BENCH=name runs one (e.g. make bench BENCH=tables).
BENCHES ?= $(if $(BENCH),$(BENCH),execution_overhead endpoints config_get tables pages chat knowledge growth events)
bench: install
	@for b in $(BENCHES); do $(BIN)/python bench/$$b.py || exit 1; done

## Renew docs/screenshots/ from the demo (bifrost init --demo + serve, Debian's Chromium at 1280 px).
screenshots: install
	$(BIN)/python docs/screenshots/make_screenshots.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
