# Two commands do all the set-up: `make demo` runs the main job, `make test` the test suite.
# Each installs what it needs on first use (scripts/setup.sh).
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: setup demo test

$(VENV)/.installed: pyproject.toml scripts/setup.sh
	bash scripts/setup.sh

setup: $(VENV)/.installed

demo: $(VENV)/.installed
	$(BIN)/subdistill demo

test: $(VENV)/.installed
	$(BIN)/python -m pytest -q
