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

# The whole suite on SQLite and, alongside it, the catalog, indexing, web and command-line
# tests again with every catalog on a throwaway PostgreSQL server (Debian's postgresql;
# skipped, saying so, where it is not installed). A pass alone keeps about one core busy, so
# on CI's two the passes run side by side; the second pass's report follows the first's.
# OMP_WAIT_POLICY: torch's OpenMP threads otherwise spin while they wait for work, which two
# passes and their subprocesses on two cores paid for (7.5 CPU-minutes for the suite, 5.8
# without the spin).
PG_LOG := .pytest-postgresql.log

test: $(STAMP)
	@export OMP_WAIT_POLICY=PASSIVE; \
	$(BIN)/python -m pytest -q -p no:cacheprovider --catalog postgresql \
		tests/search tests/indexer tests/web tests/cli >$(PG_LOG) 2>&1 & pg=$$!; \
	$(BIN)/python -m pytest -q; sqlite=$$?; \
	wait $$pg; postgresql=$$?; \
	echo "== the PostgreSQL pass, run alongside (also in $(PG_LOG)) =="; cat $(PG_LOG); \
	test $$sqlite -eq 0 -a $$postgresql -eq 0

clean:
	rm -rf $(VENV) lookalike-data $(PG_LOG)
