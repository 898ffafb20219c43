# Two commands for a fresh machine: `make run` (the workflow on the embedded default) and
# `make test` (the test suite). Both set up .venv first; set-up is skipped when nothing changed.
PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
CORES  ?= 2
CONFIG ?= config/config.yaml

.PHONY: setup run test test-fast test-cluster lint benchmarks clean

setup: $(STAMP)

$(STAMP): pyproject.toml package.json
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --disable-pip-version-check -e '.[test]'
	npm install --no-audit --no-fund --silent
	touch $(STAMP)

run: setup
	$(BIN)/snakemake --cores $(CORES) --profile profiles/local --configfile $(CONFIG)

# Unit tests in parallel, then the end-to-end workflow tests one at a time (they share .snakemake/).
test: setup
	$(BIN)/python -m pytest -n $(CORES) -m "not workflow"
	$(BIN)/python -m pytest -m workflow

test-fast: setup
	$(BIN)/python -m pytest -n $(CORES) -m "not workflow"

test-cluster: setup
	bash scripts/test_cluster.sh

lint: setup
	$(BIN)/snakemake --lint --configfile config/tiny.yaml

clean:
	rm -rf results .snakemake
