# One entry point for people and CI. `make serve` and `make test` work on a fresh machine.
VENV ?= .venv
PY := $(VENV)/bin/python
WHEELS := $(wildcard /opt/wheels)
PIP_FLAGS := $(if $(WHEELS),--find-links $(WHEELS),)

.PHONY: install serve index test test-fast lint bench bench-reindex bench-scale bench-gaps bench-splits fuzz

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	# torch first, pinned: the CPU wheel, not the CUDA build an unpinned resolve would pull
	$(PY) -m pip install --quiet $(PIP_FLAGS) torch==2.13.0
	$(PY) -m pip install --quiet $(PIP_FLAGS) -e '.[dev]'
	touch $@

install: $(VENV)/.installed

index: install
	HF_HUB_OFFLINE=1 $(VENV)/bin/kb index

serve: index
	HF_HUB_OFFLINE=1 $(VENV)/bin/kb serve

lint: install
	$(VENV)/bin/ruff check kb service tests bench
	$(VENV)/bin/mypy

# Both layers: the unit tests (fake embedder) and the `slow` ones that run the real model.
test: lint
	HF_HUB_OFFLINE=1 $(VENV)/bin/pytest

test-fast: install
	HF_HUB_OFFLINE=1 $(VENV)/bin/pytest -m 'not slow'

bench: install
	HF_HUB_OFFLINE=1 $(PY) -m bench.run && HF_HUB_OFFLINE=1 $(PY) -m bench.tickets

# Only the re-index target: how soon a running service serves a one-article edit.
bench-reindex: install
	HF_HUB_OFFLINE=1 $(PY) -m bench.run --only atec-faq-zh --reindex-only

# nDCG@10 against the baselines over five halvings of each set's dev queries.
bench-splits: install
	HF_HUB_OFFLINE=1 $(PY) -m bench.splits

# 20,000 generated articles: build, memory, search p50 and ANN recall (not part of `make test`).
bench-scale: install
	HF_HUB_OFFLINE=1 $(PY) -m bench.scale

# Property-based fuzz of the HTTP API (schemathesis): 5,000 generated requests, 0 5xx allowed,
# every response as the OpenAPI schema declares it.
fuzz: install
	HF_HUB_OFFLINE=1 $(PY) -m tests.fuzz --cases 5000
# The gap report on a big query log: 100,000 gap queries, 10,000 distinct phrasings.
bench-gaps: install
	$(PY) -m bench.gaps_scale
