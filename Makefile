# Everything installs into a local virtual environment (.venv); nothing is downloaded at run time.
#   make bench   install everything, then run the ablation suite on the embedded default dataset (ml-100k)
#   make test    install everything, then run the test suite (what CI runs)
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
SUITE ?= ablation

.PHONY: install bench test lint smoke clean

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

# torch first, pinned to the CPU wheel; then the project with its dev extras.
$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e '.[dev]'
	touch $@

install: $(VENV)/.installed

bench: install
	$(BIN)/python benchmarks/run.py --suite $(SUITE)

smoke: install
	$(BIN)/python benchmarks/run.py --suite smoke

test: install
	$(BIN)/python -m pytest -q -m "not slow"

lint: install
	$(BIN)/ruff check .

clean:
	rm -rf $(VENV) .cache results
