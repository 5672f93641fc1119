# Two commands set everything up on a fresh machine: `make demo` and `make test`.
#   make demo     create .venv if missing, install, run examples/sac_pendulum.py
#   make test     same set-up with the dev extras, then ruff (lint + format check) and the
#                 whole pytest suite: unit tests, doctests, the docs build, the wheel install
#   make lint     ruff check + ruff format --check on the whole repository
#   make format   apply ruff's fixes and formatting
#   make docs     build the Sphinx site into docs/_build/html, warnings are errors
#   make dist     build the sdist and the wheel into dist/
#   make bench    run the benchmarks
PYTHON ?= python3.11
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
RUFF := $(VENV)/bin/ruff
# torch is pinned here (not in pyproject.toml) to the build that lies on these machines'
# disk, installed FIRST so that the package's `torch>=...` requirement is already met and
# pip never fetches another build. 2.14.1 (a CUDA build that runs on the CPU, ~5.5 GB venv)
# rather than the 2.13.0 CPU build: torchrl 0.14.1's C++ extension (prioritized replay's
# segment trees) does not load beside 2.13.0.
TORCH_PIN ?= torch==2.14.1
# The other pins (torchrl, tensordict, gymnasium) for reproducible runs.
CONSTRAINTS ?= constraints.txt
PIP_INSTALL := $(PIP) install -q -c $(CONSTRAINTS)

.PHONY: demo test install install-dev lint format docs dist bench clean

$(VENV)/.installed-base:
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q "$(TORCH_PIN)"
	touch $@

$(VENV)/.installed-test: $(VENV)/.installed-base pyproject.toml $(CONSTRAINTS)
	$(PIP_INSTALL) -e ".[test,examples]"
	touch $@

$(VENV)/.installed-dev: $(VENV)/.installed-test
	$(PIP_INSTALL) -e ".[dev]"
	touch $@

install: $(VENV)/.installed-test
install-dev: $(VENV)/.installed-dev

demo: $(VENV)/.installed-test
	$(PY) examples/sac_pendulum.py

lint: $(VENV)/.installed-dev
	$(RUFF) check .
	$(RUFF) format --check .

format: $(VENV)/.installed-dev
	$(RUFF) check --fix .
	$(RUFF) format .

# Lint first (seconds), then the suite; pytest's settings (doctests, testpaths) are in
# pyproject.toml.
test: lint
	$(PY) -m pytest -q --durations=10

docs: $(VENV)/.installed-dev
	$(PY) -m sphinx -W --keep-going -b html docs docs/_build/html

dist: $(VENV)/.installed-dev
	$(PY) -m build -o dist .

bench: $(VENV)/.installed-dev
	$(PY) benchmarks/bench_networks.py
	$(PY) benchmarks/bench_simulator.py
	$(PY) benchmarks/bench_losses.py
	$(PY) benchmarks/bench_collectors.py

clean:
	rm -rf build dist *.egg-info docs/_build .pytest_cache .ruff_cache
