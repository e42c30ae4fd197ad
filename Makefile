# Two commands on a fresh machine: `make demo` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEMO_OUT ?= demo_out

.PHONY: demo test weights lint install clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	# The pinned CPU wheel first: an unpinned torch would pull a multi-GB CUDA build.
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/usbrain demo --out $(DEMO_OUT)

# The shipped models/base from scratch: ~2 h on 2 CPU cores; rerun after a kill to continue.
weights: $(STAMP)
	$(BIN)/usbrain train-base --out runs/base --export models/base

test: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	# pytest exits 5 when it collects nothing: .ci/run reports that as a failure.
	$(BIN)/python -m pytest -q 2>&1 | tee .pytest-last; exit $${PIPESTATUS[0]}

lint: $(STAMP)
	$(BIN)/ruff check --fix src tests bench
	$(BIN)/ruff format src tests bench

clean:
	rm -rf $(VENV) $(DEMO_OUT)
