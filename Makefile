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

demo: $(VENV)/.installed-sklearn
	$(PY) examples/demo.py

test: $(VENV)/.installed-dev
	$(PY) -m pytest -n $(JOBS) --dist loadgroup $(PYTEST_ARGS)

lint: $(VENV)/.installed-dev
	$(VENV)/bin/ruff check src integrations tests examples benchmarks
	$(VENV)/bin/ruff format --check src integrations tests examples benchmarks
	$(VENV)/bin/mypy

bench: $(VENV)/.installed-dev
	$(PIP) install -q -c $(CONSTRAINTS) -e ".[dev,bench]"
	$(PY) benchmarks/bench_logging.py

clean:
	rm -rf $(VENV) build dist *.egg-info modeltrail.db modeltrail.db-* artifacts
