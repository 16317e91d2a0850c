# Two commands on a fresh machine:  make demo   and   make test
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test venv clean

venv: $(STAMP)

# torch: take the CPU build when this machine keeps one on disk (~0.7 GB
# instead of the ~5 GB CUDA build); otherwise whatever pip resolves for
# the range in pyproject.toml.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q 'torch==2.13.0+cpu' 2>/dev/null || $(BIN)/pip install -q 'torch>=2.4,<3'
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/lookalike demo
	$(BIN)/lookalike serve --host 127.0.0.1 --port 5000

test: $(STAMP)
	$(BIN)/python -m pytest -q

clean:
	rm -rf $(VENV) lookalike-data
