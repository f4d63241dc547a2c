# The README's commands: `make demo` runs the example pipeline end to end, `make test` runs every check.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-dev

.PHONY: install test test-matrix dist lint typecheck unit demo bench emulator mutation clean

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 10), "Python 3.10 or newer is needed"'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip > $(VENV)/install.log 2>&1 || (cat $(VENV)/install.log; exit 1)
	$(BIN)/python -m pip install --quiet -e '.[dev]' >> $(VENV)/install.log 2>&1 || (cat $(VENV)/install.log; exit 1)
	touch $(STAMP)

install: $(STAMP)

lint: $(STAMP)
	$(BIN)/ruff check .

typecheck: $(STAMP)
	$(BIN)/mypy airflow_provider_greenapi dags bench

unit: $(STAMP)
	$(BIN)/python -m pytest -q -rs $(PYTEST_ARGS)

test: lint typecheck unit

# The core tests (marker `matrix`) on the newest patch of every other supported Airflow line, each in its own
# virtualenv under .venv-matrix/ (3.3, the newest stable line, is .venv's: `make test`), each beside a real
# `airflow dags test` of the example DAG against the emulator. MATRIX_BROWSER also runs the browser tests on those
# lines: 2.11's webserver (a different UI) and 3.4 (the line with the Test-button fix, apache/airflow#73298).
# docs/airflow-versions.md: what works where.
MATRIX_AIRFLOW ?= 2.11.2 3.0.6 3.1.8 3.2.2 3.4.0b2
MATRIX_BROWSER ?= 2.11.2 3.4.0b2
MATRIX_OPENLINEAGE ?= 2.11.2 3.0.6
test-matrix:
	MATRIX_AIRFLOW="$(MATRIX_AIRFLOW)" MATRIX_BROWSER="$(MATRIX_BROWSER)" MATRIX_OPENLINEAGE="$(MATRIX_OPENLINEAGE)" \
		PYTHON=$(PYTHON) scripts/test-matrix.sh

# The wheel and the sdist, checked as PyPI would (tests/test_packaging.py runs it into a temporary folder).
DIST ?= dist
dist: $(STAMP)
	rm -rf $(DIST) && $(BIN)/python -m build --outdir $(DIST) . > $(VENV)/build.log 2>&1 || (cat $(VENV)/build.log; exit 1)
	$(BIN)/twine check --strict $(DIST)/*

demo: $(STAMP)
	$(BIN)/python scripts/demo.py

# Every benchmark with its baseline in the same run (docs/benchmarks.md). 5,000 numbers of overhead keep it to
# a few minutes on 2 cores; the full size: BENCH_ARGS= make bench, or .venv/bin/python bench/run_all.py.
BENCH_ARGS ?= --overhead-numbers 5000
bench: $(STAMP)
	$(BIN)/python bench/run_all.py $(BENCH_ARGS)

# Break each critical invariant in turn and run the tests that guard it (docs/reliability.md); a few minutes.
# Mutates files in place and restores them; refuses to start on uncommitted changes to its target files.
mutation: $(STAMP)
	$(BIN)/python scripts/mutation.py $(MUTATION_ARGS)

emulator: $(STAMP)
	$(BIN)/greenapi-emulator

clean:
	rm -rf $(VENV) .venv-matrix dist .airflow .demo build *.egg-info .mypy_cache .ruff_cache .pytest_cache
