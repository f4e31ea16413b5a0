# Everything a fresh machine with only Python 3.11 needs: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEMO_DIR := var/demo
EXPORTS := $(DEMO_DIR)/exports
OUT := $(DEMO_DIR)/out
AS_OF ?= 2026-11-01T00:00:00Z

.PHONY: demo demo-real real-data test test-slow test-wheel dev bench install clean

# The install: with uv when it is on PATH, else with uv installed into the venv from PyPI (seconds instead of a
# minute and a half of pip), else with pip. Each step says what it is doing and how long the install took. The
# installed modules are compiled to bytecode then (pip does it by default, uv on request): the first run of a
# fresh machine, and any run where PYTHONDONTWRITEBYTECODE is set, does not compile Great Expectations first.
UV := $(shell command -v uv 2>/dev/null)

$(STAMP): pyproject.toml
	@echo "make: creating $(VENV) with $$($(PYTHON) --version)"
	@$(PYTHON) -m venv $(VENV)
	@started=$$(date +%s); \
	if [ -n "$(UV)" ]; then installer="$(UV)"; echo "make: installing the package and its dependencies with $(UV)"; \
	elif $(BIN)/python -m pip install --quiet --disable-pip-version-check uv 2>/dev/null; then \
		installer="$(BIN)/uv"; echo "make: installing the package and its dependencies with uv (from PyPI)"; \
	else installer=""; echo "make: uv is not available; installing the package and its dependencies with pip (a minute or two)"; fi; \
	if [ -n "$$installer" ]; then "$$installer" pip install --quiet --compile-bytecode --python $(BIN)/python -e '.[test]'; \
	else $(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[test]'; fi || exit 1; \
	echo "make: installed in $$(( $$(date +%s) - started ))s"
	@touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/compliance-report generate --out $(EXPORTS) --seed 7 --as-of $(AS_OF)
	$(BIN)/compliance-report run --exports $(EXPORTS) --out $(OUT) --as-of $(AS_OF)

# Real exports written by others (../shared/data/real beside this repository): the GitHub status history through
# the statuspage adapter, and two Boston 311 case exports through the open311 adapter (times in Boston's zone).
# As-of times: just after the status history's last incident; for Boston, the evening before the export was taken
# (its open cases were then all still ONTIME or already OVERDUE, as the CRM says).
REAL ?= ../shared/data/real
REAL_OUT := var/demo-real

real-data:  # checked before installing anything
	@test -d "$(REAL)" || { echo "make demo-real: $(REAL) is absent; the real sample exports are expected in ../shared/data/real beside this repository (or pass REAL=folder)" >&2; exit 2; }

demo-real: real-data $(STAMP)
	$(BIN)/compliance-report convert --format statuspage --policy status-feed $(REAL)/incidents/github_status_incidents.jsonl --out $(REAL_OUT)/github-status/exports
	$(BIN)/compliance-report run --policy status-feed --exports $(REAL_OUT)/github-status/exports --out $(REAL_OUT)/github-status/out --as-of 2026-09-01T00:00:00Z
	$(BIN)/compliance-report convert --format open311 --policy city-311 --timezone America/New_York $(REAL)/tickets/boston311_2015_heat.csv $(REAL)/tickets/boston311_2015_bed_bugs.csv --out $(REAL_OUT)/boston311/exports
	$(BIN)/compliance-report run --policy city-311 --exports $(REAL_OUT)/boston311/exports --out $(REAL_OUT)/boston311/out --as-of 2016-01-13T00:00:00Z
	@$(BIN)/python scripts/print_verdicts.py $(REAL_OUT)/github-status/out
	@$(BIN)/python scripts/print_verdicts.py $(REAL_OUT)/boston311/out

test: $(STAMP)
	$(BIN)/ruff check --no-cache .
	$(BIN)/ruff format --check --no-cache .
	$(BIN)/lint-imports
	$(BIN)/python -m pytest -q

# The wheel installed into a fresh venv outside the repository, then `generate` and `run` with the shipped
# profiles (also part of `make test`).
test-wheel: $(STAMP)
	$(BIN)/python -m pytest -q tests/test_wheel.py

test-slow: $(STAMP)
	$(BIN)/python -m pytest -q -m slow

dev: $(STAMP)
	DAGSTER_HOME=$(CURDIR)/var/dagster_home $(BIN)/python -c "import pathlib; pathlib.Path('var/dagster_home').mkdir(parents=True, exist_ok=True); import shutil; shutil.copy('dagster.yaml', 'var/dagster_home/dagster.yaml')"
	DAGSTER_HOME=$(CURDIR)/var/dagster_home CR_EXPORTS_DIR=$(CURDIR)/$(EXPORTS) CR_OUT_DIR=$(CURDIR)/$(OUT) \
		CR_WAREHOUSE=$(CURDIR)/$(OUT)/warehouse.duckdb CR_POLICY=$${CR_POLICY:-platform} $(BIN)/dagster dev -m pipelines.definitions

# One table, one command per row (scripts/bench.py): the full read, the cold run, incremental 1 % and 0 %, start-up
# and the clock engine against businesstimedelta. TICKETS=10000000 for 10M (about 4 min per run, ~10 GB of disk);
# KEEP=DIR keeps and reuses the exports; MARKDOWN=FILE also writes the table as Markdown.
bench: $(STAMP)
	$(BIN)/python scripts/bench.py --tickets $${TICKETS:-1000000} --format $${FORMAT:-csv} $${KEEP:+--keep $$KEEP} \
		$${MARKDOWN:+--markdown $$MARKDOWN}

clean:
	rm -rf $(VENV) var
