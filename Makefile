# Two commands a fresh machine needs: `make demo` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
# A CPU build of torch for development and CI (a plain `torch` would pull several GB of CUDA).
CONSTRAINTS := constraints.txt
JOBS ?= 2

.PHONY: demo test lint bench venv clean

$(VENV)/.installed-%: pyproject.toml $(CONSTRAINTS)
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q -c $(CONSTRAINTS) -e ".[$*]"
	touch $@

demo: $(VENV)/.installed-demo
	$(PY) examples/demo.py

# The tests marked `cluster` share one Galera cluster and break it on purpose (a node killed, cut off,
# the proxy gone), so they run after the rest, one at a time (exit 5: PYTEST_ARGS selected none of them).
test: $(VENV)/.installed-dev
	$(PY) -m pytest -n $(JOBS) -m "not cluster" $(PYTEST_ARGS)
	$(PY) -m pytest -p no:xdist -m cluster $(PYTEST_ARGS) || [ $$? -eq 5 ]

lint: $(VENV)/.installed-dev
	$(VENV)/bin/ruff check src integrations tests examples benchmarks
	$(VENV)/bin/ruff format --check src integrations tests examples benchmarks
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports

# Benchmarks run in their own venv (MLflow is a comparison, not a dependency).
# `make bench BENCH_ARGS=--quick` for a short run; see benchmarks/README.md.
BENCH_VENV ?= .venv-bench
BENCH_PY   := $(BENCH_VENV)/bin/python

$(BENCH_VENV)/.ready: pyproject.toml $(CONSTRAINTS) benchmarks/requirements.txt benchmarks/requirements-adapters.txt
	test -x $(BENCH_PY) || $(PYTHON) -m venv $(BENCH_VENV)
	$(BENCH_PY) -m pip install -q -c $(CONSTRAINTS) -e . -r benchmarks/requirements.txt -r benchmarks/requirements-adapters.txt
	touch $@

# Every benchmark runs; the target fails at the end if any missed a target.
bench: $(BENCH_VENV)/.ready
	status=0; \
	$(BENCH_PY) benchmarks/bench_logging.py $(BENCH_ARGS) || status=1; \
	$(BENCH_PY) benchmarks/bench_queries.py $(BENCH_QUERIES_ARGS) || status=1; \
	$(BENCH_PY) benchmarks/bench_adapters.py $(BENCH_ADAPTERS_ARGS) || status=1; \
	$(BENCH_PY) benchmarks/bench_cli.py $(BENCH_CLI_ARGS) || status=1; \
	exit $$status

clean:
	rm -rf $(VENV) build dist *.egg-info modeltrail.db modeltrail.db-* artifacts
