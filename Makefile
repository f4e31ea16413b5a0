# Everything a fresh machine with only Python 3.11 needs: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEMO_DIR := var/demo
EXPORTS := $(DEMO_DIR)/exports
OUT := $(DEMO_DIR)/out
AS_OF ?= 2026-11-01T00:00:00Z

.PHONY: demo test test-slow dev bench install clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/compliance-report generate --out $(EXPORTS) --seed 7 --as-of $(AS_OF)
	$(BIN)/compliance-report run --exports $(EXPORTS) --out $(OUT) --as-of $(AS_OF)

test: $(STAMP)
	$(BIN)/python -m pytest -q

test-slow: $(STAMP)
	$(BIN)/python -m pytest -q -m slow

dev: $(STAMP)
	DAGSTER_HOME=$(CURDIR)/var/dagster_home $(BIN)/python -c "import pathlib; pathlib.Path('var/dagster_home').mkdir(parents=True, exist_ok=True); import shutil; shutil.copy('dagster.yaml', 'var/dagster_home/dagster.yaml')"
	DAGSTER_HOME=$(CURDIR)/var/dagster_home CR_EXPORTS_DIR=$(CURDIR)/$(EXPORTS) CR_OUT_DIR=$(CURDIR)/$(OUT) $(BIN)/dagster dev -m pipelines.definitions

bench: $(STAMP)
	$(BIN)/python scripts/bench.py --tickets $${TICKETS:-1000000}

clean:
	rm -rf $(VENV) var
