# tunescope: two commands from a fresh clone.
#   make run   - set up .venv, fetch the default assets, run the main job, print where the report is
#   make test  - set up .venv, fetch the assets the slow tier uses, run the whole test suite
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
export HF_HUB_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: setup run test test-fast bench clean

setup: $(STAMP)

# Re-installs only when pyproject.toml changes. torch is installed first and pinned: an unpinned
# torch (asked for by any dependency) would pull several GB of CUDA packages.
$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e ".[dev]"
	touch $(STAMP)

run: setup
	$(PY) -m tunescope assets fetch minilm-l6 rotten_tomatoes
	$(PY) -m tunescope run

test: setup
	$(PY) -m tunescope assets fetch minilm-l6 rotten_tomatoes tweets_sentiment news_text quartz
	$(PY) -m pytest -q

test-fast: setup
	$(PY) -m pytest -q -m "not slow"

bench: setup
	for b in diagnostics sift landscape jump; do $(PY) -m tunescope bench $$b; done

clean:
	rm -rf $(VENV) runs .pytest_cache
