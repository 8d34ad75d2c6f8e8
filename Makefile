# privguard: the two commands a newcomer needs are `make demo` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: install system-deps demo test lint bench bench-instructions screenshots transparency clean

$(STAMP): pyproject.toml hatch_build.py src/privguard/core/_quickscan.c
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

# Debian packages the tests drive for real: Chromium (banner tests), the
# PostgreSQL server (ledger tests) and redis-server (shared rate limit). Installed only when missing.
system-deps:
	@sh scripts/system-deps.sh

demo: install
	$(VENV)/bin/privguard demo

test: system-deps install lint
	$(PY) -m pytest

lint: install
	$(VENV)/bin/ruff check --no-cache src tests examples benchmarks scripts hatch_build.py
	$(VENV)/bin/ruff format --no-cache --check src tests examples benchmarks scripts hatch_build.py
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports

# Starlette's own test suite, bare and with every app behind privguard
# (docs/transparency.md); fails on a wrapped-only failure not explained in
# tests/transparency/expected.toml. FRAMEWORKS="starlette flask fastapi" for more.
FRAMEWORKS ?= starlette
transparency: install
	$(PY) scripts/transparency.py $(FRAMEWORKS)

screenshots: install system-deps
	$(PY) scripts/screenshots.py

bench: system-deps install
	$(PY) benchmarks/run.py

# Instructions per request under cachegrind (benchmarks/instructions.py): the
# counts a shared host's timings cannot resolve. Installs valgrind when missing.
bench-instructions: install
	@sh scripts/system-deps.sh valgrind
	$(PY) benchmarks/instructions.py

clean:
	rm -rf $(VENV) build dist .pytest_cache
