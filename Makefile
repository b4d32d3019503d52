# Two commands matter: `make reproduce` (the main job) and `make test` (the suite).
# Each builds .venv from requirements.lock when it is missing, so a fresh machine needs nothing else.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PROFILE ?= default
SHARED ?= ../shared
export BLURB_SHARED_DIR ?= $(abspath $(SHARED))
export PYTHONHASHSEED := 0
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: help venv data test test-unit test-notebooks rehearse reproduce lab bench models-mpnet clean-smoke

help:
	@echo "make reproduce   run every notebook (PROFILE=$(PROFILE)) and write outputs/REPORT.md"
	@echo "make test        unit tests + nbval over notebooks/ (smoke profile)"
	@echo "make rehearse    the paper profile rehearsed end to end on this CPU (twins, tiny slices)"
	@echo "make lab         JupyterLab at the repository root (README, notebooks/, outputs/)"
	@echo "make bench       speed and memory benchmarks (blurb bench all) -> outputs/benchmarks/"
	@echo "make data        link data/blurb to $(SHARED)/data/blurb"

$(STAMP): requirements.lock pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# torch first, pinned: a loose torch requirement would pull the CUDA build.
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -r requirements.lock
	$(BIN)/pip install -q --no-deps -e .
	touch $(STAMP)

venv: $(STAMP)

data:
	@if [ -e data/blurb ]; then echo "data/blurb present -> $$(readlink -f data/blurb)"; \
	elif [ -d "$(SHARED)/data/blurb" ]; then ln -s "$(abspath $(SHARED))/data/blurb" data/blurb && echo "linked data/blurb -> $(abspath $(SHARED))/data/blurb"; \
	else cat data/README.md; exit 1; fi

models-mpnet: $(STAMP)
	$(BIN)/blurb models install mpnet-base

clean-smoke:
	rm -rf outputs/smoke

# One pytest worker per core (pytest-xdist); tests that share a resource carry an xdist_group mark.
TEST_WORKERS ?= auto

test-unit: $(STAMP) data
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadgroup -m "not rehearsal" tests

# The paper profile rehearsed on this CPU (twins, tiny slices): every notebook end to end. Too long for
# `make test`'s budget; CI runs it after the suite.
rehearse: $(STAMP) data
	$(BIN)/python -m pytest -m rehearsal -p no:cacheprovider tests/test_rehearsal.py

# The notebooks open on the default profile (the committed run); the suite runs them on smoke,
# a notebook per worker (loadfile: a notebook's cells share one kernel, in order).
# One thread: the smoke numbers nbval compares then do not depend on the machine's core count.
test-notebooks: $(STAMP) data models-mpnet clean-smoke
	BLURB_PROFILE=smoke OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 $(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadfile --nbval-lax --nbval-sanitize-with notebooks/sanitize.cfg -p no:cacheprovider notebooks

test: test-unit test-notebooks

reproduce: $(STAMP) data models-mpnet
	$(BIN)/blurb reproduce --profile $(PROFILE) $(if $(FRESH),--fresh,)

bench: $(STAMP) data
	$(BIN)/blurb bench all

# Jupyter refuses to start as root unless told (containers and cloud VMs often run as root);
# --allow-root is passed only then, so a normal user keeps Jupyter's own check.
ALLOW_ROOT := $(if $(filter 0,$(shell id -u)),--allow-root,)
# Rooted at the repository, so README.md, notebooks/ and outputs/ (REPORT.md, figures) are all in reach.
lab: $(STAMP) data
	$(BIN)/jupyter lab --notebook-dir=. $(ALLOW_ROOT) $(LAB_ARGS)
