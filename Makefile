# Two entry points for a fresh machine with Python 3.11+:
#   make demo   -- set up a virtual environment and run the main job
#   make test   -- set up a virtual environment with the test dependencies and run the tests
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: demo test bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

demo: $(BIN)/python
	$(BIN)/python -m pip install -q -e .
	$(BIN)/convgrad check

test: $(BIN)/python
	$(BIN)/python -m pip install -q -e '.[test]'
	$(BIN)/python -m pytest

# The speed benchmark against PyTorch (issue 3); not a test. BENCH_ARGS=--layers a,c --repeats 3 for a quick look.
bench: $(BIN)/python
	$(BIN)/python -m pip install -q -e '.[bench]'
	$(BIN)/convgrad bench --json benchmarks/results/latest.json $(BENCH_ARGS)

clean:
	rm -rf $(VENV) build src/*.egg-info .pytest_cache .hypothesis
