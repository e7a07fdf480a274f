# Two entry points for a fresh machine with Python 3.11+:
#   make demo   -- set up a virtual environment, check the gradients, train a CNN on the digits
#   make test   -- set up a virtual environment with the test dependencies and run the tests
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: demo test bench clean questions

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

demo: $(BIN)/python
	$(BIN)/python -m pip install -q -e '.[train]'
	$(BIN)/convgrad check
	$(BIN)/convgrad train --out out

test: $(BIN)/python
	@# the explain page is tested in Debian's Chromium (CONVGRAD_SKIP_BROWSER=1 skips those tests on purpose)
	@if [ ! -x /usr/bin/chromium ] && [ "$$CONVGRAD_SKIP_BROWSER" != 1 ]; then \
		apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y chromium; fi
	$(BIN)/python -m pip install -q -e '.[test]'
	$(BIN)/python -m pytest

# The speed benchmark against PyTorch (issue 3); not a test. BENCH_ARGS=--layers a,c --repeats 3 for a quick look.
bench: $(BIN)/python
	$(BIN)/python -m pip install -q -e '.[bench,fft]'
	$(BIN)/convgrad bench --json benchmarks/results/latest.json $(BENCH_ARGS)

# regenerate docs/questions.md and its pictures (a test checks they are current)
questions: $(BIN)/python
	$(BIN)/python -m pip install -q -e '.[explain]'
	$(BIN)/python docs/tools/questions.py

clean:
	rm -rf $(VENV) build src/*.egg-info .pytest_cache .hypothesis
