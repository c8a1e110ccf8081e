# Two commands on a fresh machine: `make demo` (install + plan + execute on the
# embedded default) and `make test` (install + the test suite). CUDA users set
# TORCH_SPEC to their own torch build.
PYTHON ?= python3
VENV ?= .venv
TORCH_SPEC ?= torch==2.13.0
BIN := $(VENV)/bin
DEMO_DIR ?= runs/demo

.PHONY: install demo test bench clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml examples/advisor-method-rslora/pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q $(TORCH_SPEC)
	$(BIN)/python -m pip install -q -e ".[train,test]" -e examples/advisor-method-rslora
	touch $@

demo: install
	$(BIN)/python -m advisor.demo --output-dir $(DEMO_DIR)

test: install
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest -q -m "not slow"

bench: install
	$(BIN)/python benchmarks/plan_latency.py

clean:
	rm -rf $(VENV) runs
