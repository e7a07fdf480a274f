# Two entry points for a fresh machine with Python 3.11+:
#   make demo   -- set up a virtual environment, check the gradients, train a CNN on the digits
#   make test   -- set up a virtual environment with the test dependencies and run the tests
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: demo test bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

demo: $(BIN)/python
	$(BIN)/python -m pip install -q -e '.[train]'
	$(BIN)/convgrad check
	$(BIN)/convgrad train --out out

test: $(BIN)/python
	$(BIN)/python -m pip install -q -e '.[test]'
	$(BIN)/python -m pytest

clean:
	rm -rf $(VENV) build src/*.egg-info .pytest_cache .hypothesis
