# contrastkit: every target sets itself up; all targets are idempotent.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
# The torch build: PyPI's wheel is the CUDA build on Linux x86-64 (this project's CI mirror serves a CPU one). For
# a CPU-only machine: make setup TORCH='torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu'
TORCH ?= torch==2.13.0
# Where Debian data packages are extracted when we cannot apt-get install (not root).
CONTRASTKIT_DATA ?= $(HOME)/.cache/contrastkit
export CONTRASTKIT_DATA

.PHONY: setup data native test demo lint bench clean

setup: $(VENV)/.installed data native

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q $(TORCH)
	$(PIP) install -q -e '.[all,dev]'
	touch $@

data: $(VENV)/.data-installed

$(VENV)/.data-installed: $(VENV)/.installed
	bash scripts/install_data.sh $(PY)
	touch $@

# The optional AVX-512 bfloat16 kernels (models/csrc), compiled into torch's extension cache; a no-op when they
# are up to date, a warning (and the pure-torch path) when there is no compiler.
native: $(VENV)/.installed
	$(PY) -c 'from contrastkit.models.native import build_native_kernels; build_native_kernels()'

test: setup
	$(PY) -m pytest -q -n 2 --dist loadgroup tests

# The main job on bundled data: SimCLR on Fashion-MNIST for a 5-minute training budget, then frozen-feature
# evaluation (kNN, linear probe, k-means) beside two baselines of the same protocols: the same network untrained
# and the raw pixels. Prints the results, the baselines and the wall time; the run directory (report.md with
# plots and the baselines) is runs/demo. About 13-15 minutes on 2 loaded CPU cores (README.md, "make demo").
DEMO_SUMMARY := import sys; from contrastkit.train.report import evaluation_summary; print(evaluation_summary(sys.argv[1]))
demo: setup
	rm -rf runs/demo
	@start=$$(date +%s); \
	$(VENV)/bin/contrastkit train configs/simclr_fashion_mnist.yaml --out runs/demo --set trainer.time_budget_minutes=5 \
	&& $(VENV)/bin/contrastkit evaluate runs/demo --protocol all \
	&& echo && echo "demo result (runs/demo/evaluation.json; baselines: the same protocol on other features):" \
	&& $(PY) -c '$(DEMO_SUMMARY)' runs/demo \
	&& took=$$(( $$(date +%s) - start )) \
	&& echo "demo: $$((took / 60)) min $$((took % 60)) s wall clock (training budget 5 min); report: runs/demo/report.md"

lint: setup
	$(VENV)/bin/ruff check src tests benchmarks examples

bench: setup
	$(PY) benchmarks/throughput.py

clean:
	rm -rf $(VENV) build *.egg-info src/*.egg-info .pytest_cache
