# Two commands on a fresh machine:  make demo   and   make test
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test venv clean

venv: $(STAMP)

# torch and torchvision: the pair this project is tested with, first, so the
# range in pyproject.toml cannot pull another. On machines without a CPU
# build at hand this is the CUDA build (~5 GB); README says how to get the
# CPU-only one instead.
TORCH := torch==2.14.1 torchvision==0.29.1

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q $(TORCH)
	$(BIN)/pip install -q -e '.[dev]' $(TORCH)
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/lookalike demo
	$(BIN)/lookalike serve --host 127.0.0.1 --port 5000

# The whole suite on SQLite, then the catalog, indexing and web tests again with every
# catalog on a throwaway PostgreSQL server (Debian's postgresql; skipped, saying so,
# where it is not installed).
test: $(STAMP)
	$(BIN)/python -m pytest -q
	$(BIN)/python -m pytest -q --catalog postgresql tests/search tests/indexer tests/web

clean:
	rm -rf $(VENV) lookalike-data
