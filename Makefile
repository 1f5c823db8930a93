# tunescope: two commands from a fresh clone.
#   make run   - set up .venv, fetch the default assets, run the main job, print where the report is
#   make test  - set up .venv, fetch the assets the slow tier uses, run the whole test suite
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
export HF_HUB_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: setup browser run test test-fast bench clean

setup: $(STAMP)

# Re-installs only when pyproject.toml changes. torch is installed first and pinned: an unpinned
# torch (asked for by any dependency) would pull several GB of CUDA packages.
$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e ".[dev]"
	touch $(STAMP)

# The browser tier (tests/browser) opens reports in headless Chromium: Debian's package, installed only when no
# `chromium` is on PATH (as root, or through sudo), its apt output shown only if the install fails.
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  echo "installing Debian's chromium for tests/browser"; \
	  sudo=$$([ "$$(id -u)" = 0 ] || echo sudo); log=$$(mktemp); \
	  { $$sudo apt-get update -qq && $$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; } \
	    >"$$log" 2>&1 || { cat "$$log"; rm -f "$$log"; exit 1; }; rm -f "$$log"; }

run: setup
	$(PY) -m tunescope assets fetch minilm-l6 rotten_tomatoes
	$(PY) -m tunescope run

test: setup browser
	$(PY) -m tunescope assets fetch minilm-l6 rotten_tomatoes tweets_sentiment news_text quartz
	$(PY) -m pytest -q

test-fast: setup browser
	$(PY) -m pytest -q -m "not slow"

bench: setup
	for b in diagnostics sift landscape jump sft; do $(PY) -m tunescope bench $$b; done

clean:
	rm -rf $(VENV) runs .pytest_cache
