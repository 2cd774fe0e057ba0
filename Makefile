# Every target creates or refreshes the local virtual environment first; nothing is installed globally.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
PYTEST_ARGS ?=

# Debian packages the product or its tests need: Pango is WeasyPrint's layout engine, Noto covers the
# scripts of the seven languages, Chromium drives the browser tests, poppler reads PDFs back in tests.
DEB_PACKAGES := libpango-1.0-0 libpangoft2-1.0-0 fonts-noto-core fonts-noto-cjk fonts-dejavu-core \
                chromium poppler-utils

.PHONY: help venv system-deps fonts demo serve test test-fast lint format bench clean

help:
	@echo "make demo   - install, then run the demo nodes on SQLite"
	@echo "make test   - install, lint, then run the tests on SQLite and PostgreSQL"
	@echo "make lint   - ruff and mypy"
	@echo "make bench  - run the benchmarks (long)"
	@echo "make serve  - run one node with the settings in the environment"

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || \
	  { echo "Python >= 3.11 is required (set PYTHON=...)"; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP)

system-deps:
	@missing=$$(for p in $(DEB_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages: $$missing"; \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing; \
	fi

fonts: system-deps

demo: $(STAMP)
	$(BIN)/cyberpact demo $(DEMO_ARGS)

serve: $(STAMP)
	$(BIN)/cyberpact serve

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks
	$(BIN)/mypy

format: $(STAMP)
	$(BIN)/ruff format src tests benchmarks
	$(BIN)/ruff check --fix src tests benchmarks

test: lint system-deps
	$(BIN)/pytest -n 2 --dist loadfile $(PYTEST_ARGS)

test-fast: $(STAMP) system-deps
	$(BIN)/pytest -n 2 --dist loadfile -m "not slow" $(PYTEST_ARGS)

bench: $(STAMP)
	$(BIN)/python benchmarks/run_all.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
