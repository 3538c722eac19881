# Set-up is part of every target: a project venv in .venv, torch's CPU wheel where there is no
# GPU (an unpinned torch would pull several GB of CUDA wheels), then the project in editable mode.
VENV ?= .venv
PY := $(VENV)/bin/python
TORCH_CPU ?= torch==2.13.0
export HF_HUB_OFFLINE := 1
export NO_MKDOCS_2_WARNING := 1

.PHONY: run test test-all bench docs setup clean

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	if ! command -v nvidia-smi >/dev/null 2>&1; then $(PY) -m pip install -q "$(TORCH_CPU)"; fi
	$(PY) -m pip install -q -e ".[test,ray,offline-rl,docs,tune]"
	touch $@

setup: $(VENV)/.installed

run: $(VENV)/.installed
	$(PY) scripts/run.py agent=linucb

# two workers (pytest-xdist), each test file on one worker so its module fixtures are built once
test: $(VENV)/.installed
	$(PY) -m pytest -q -m "not gpu" -n 2 --dist loadfile

bench: $(VENV)/.installed
	$(PY) scripts/bench.py

# The documentation site (mkdocs-material) into site/; `$(PY) -m mkdocs serve` to browse it.
docs: $(VENV)/.installed
	$(PY) -m mkdocs build --strict

clean:
	rm -rf outputs multirun wandb .pytest_cache site
