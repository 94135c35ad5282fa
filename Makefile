# Two commands set everything up on a fresh machine: `make demo` and `make test`.
# torch is installed first and pinned to the CPU wheel that lies on disk here, so that the
# package's own `torch>=2.1` requirement is already satisfied and pip never pulls a CUDA build.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
TORCH_PIN ?= torch==2.13.0
STAMP := $(VENV)/.paretorch-installed

.PHONY: install demo test lint bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet "$(TORCH_PIN)"
	# The pin again: what the integrations ask for must be met by the CPU wheel, never by a CUDA build.
	$(PY) -m pip install --quiet -e ".[all,dev,hf,lightning,accelerate,tensorboard]" "$(TORCH_PIN)"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/paretorch demo --overwrite

# The suite runs on every core (pytest-xdist), each worker with its share of torch's threads (tests/conftest.py):
# its tests are mostly small command-line runs, which two threads do not speed up. On 2 cores (2026-12-08): 9 minutes
# against 14.5 in one process.
test: $(STAMP)
	$(VENV)/bin/ruff check src tests benchmarks examples
	$(PY) -m pytest -n auto

# ruff's checks, as `make test` runs them first. The code is not laid out by `ruff format` (it would change 80 of
# 112 files), so there is no format check: one here failed on a clean tree.
lint: $(STAMP)
	$(VENV)/bin/ruff check src tests benchmarks examples

bench: $(STAMP)
	$(PY) benchmarks/forward_backward.py

clean:
	rm -rf $(VENV) build dist src/*.egg-info .pytest_cache .ruff_cache
