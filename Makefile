# Everything installs into a local virtual environment (.venv); nothing is downloaded at run time.
# Every target writes into your workspace runs/ (git-ignored), never into the committed reference results.
#   make bench   install everything, train the ablation suite on ml-100k into runs/, compare it with the reference
#   make smoke   install everything, train pop, random and MF (about a minute), compare with the reference
#   make test    install everything, then run the test suite (what CI runs)
#   make clean   remove what can be re-created: .venv, .cache and your workspace runs/
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
	$(BIN)/python benchmarks/run.py --suite $(SUITE) --drivers 2

# the pipeline end to end (pop, random), then one real model: MF/BPR, the `main` suite's default row on the colarec split
smoke: install
	$(BIN)/python benchmarks/run.py --suite smoke
	$(BIN)/python benchmarks/run.py --suite main --model mf --split colarec --variant default

test: install
	$(BIN)/python -m pytest -q -m "not slow"

lint: install
	$(BIN)/ruff check .

clean:
	rm -rf $(VENV) .cache runs
