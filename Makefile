# Two commands on a fresh machine: `make demo` (install + plan + execute on the
# embedded default) and `make test` (install + the test suite). Both install
# from requirements.lock, the exact versions the suite passes with. CUDA users
# set TORCH_SPEC to their own torch build (and EXTRAS=train,test,cuda).
PYTHON ?= python3
VENV ?= .venv
TORCH_SPEC ?= torch==2.13.0
EXTRAS ?= train,test
LOCK := requirements.lock
BIN := $(VENV)/bin
DEMO_DIR ?= runs/demo
PYTEST := HF_HUB_OFFLINE=1 $(BIN)/python -m pytest -q -m "not slow"

.PHONY: install demo test test-all test-latest lock bench clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml $(LOCK) examples/advisor-method-rslora/pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q $(TORCH_SPEC)
	$(BIN)/python -m pip install -q -c $(LOCK) -e ".[$(EXTRAS)]" -e examples/advisor-method-rslora
	touch $@

demo: install
	$(BIN)/python -m advisor.demo --output-dir $(DEMO_DIR)

# The fast suite (what a developer runs); CI runs test-all, the slow-marked
# end-to-end runs (2-process DDP/FSDP2, kill -9 resumes) included.
test: install
	$(PYTEST)

test-all: install
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest -q

# Upstream drift, early: the newest releases of every dependency in a venv of
# their own, no lock. Not part of CI; a failure here is an issue to file.
test-latest:
	rm -rf .venv-latest
	$(PYTHON) -m venv .venv-latest
	.venv-latest/bin/python -m pip install -q $(TORCH_SPEC)
	.venv-latest/bin/python -m pip install -q --upgrade -e ".[$(EXTRAS)]" -e examples/advisor-method-rslora
	HF_HUB_OFFLINE=1 .venv-latest/bin/python -m pytest -q -m "not slow"

# Rewrite the lock from a fresh resolve of pyproject.toml (then run `make test`).
lock:
	rm -rf .venv-lock
	$(PYTHON) -m venv .venv-lock
	.venv-lock/bin/python -m pip install -q $(TORCH_SPEC)
	.venv-lock/bin/python -m pip install -q -e ".[train,test]"
	{ sed -n '1,2p' $(LOCK); .venv-lock/bin/python -m pip freeze --exclude-editable | grep -viE '^(torch|advisor)[=@ ]'; \
	  grep -E '^(bitsandbytes|liger-kernel)==' $(LOCK); } > $(LOCK).new
	mv $(LOCK).new $(LOCK)
	rm -rf .venv-lock

bench: install
	$(BIN)/python benchmarks/plan_latency.py

clean:
	rm -rf $(VENV) .venv-latest runs
