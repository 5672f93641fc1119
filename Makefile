# Two commands set everything up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3.11
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
# torch is pinned here (not in pyproject.toml) so that the dev install takes the CPU
# build on local disk instead of a multi-GB CUDA build.
TORCH_PIN ?= torch==2.13.0

.PHONY: demo test install install-test install-dev docs bench lint clean

$(VENV)/.installed-base:
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q "$(TORCH_PIN)"
	touch $@

$(VENV)/.installed-test: $(VENV)/.installed-base pyproject.toml
	$(PIP) install -q -e ".[test,examples]"
	touch $@

$(VENV)/.installed-dev: $(VENV)/.installed-test
	$(PIP) install -q -e ".[dev]"
	touch $@

install: $(VENV)/.installed-test
install-dev: $(VENV)/.installed-dev

demo: $(VENV)/.installed-test
	$(PY) examples/sac_pendulum.py

test: $(VENV)/.installed-dev
	$(PY) -m pytest -q

bench: $(VENV)/.installed-dev
	$(PY) benchmarks/bench_networks.py
	$(PY) benchmarks/bench_simulator.py

clean:
	rm -rf build dist *.egg-info docs/_build
