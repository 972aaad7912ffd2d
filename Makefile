# dpa_ros developer entry points. Every target that needs the environment runs `setup` first;
# setup is idempotent and takes seconds once done.
SHELL := /bin/bash
ACTIVATE := . ./activate.sh
PYTEST_ARGS ?=

.PHONY: setup demo lint docs test bench weights lock clean

setup:
	@bash scripts/setup.sh

demo: setup
	@$(ACTIVATE) && bash scripts/demo.sh

# Lint (ruff.toml: pycodestyle, pyflakes, import order, bugbear); `make test` fails on any finding.
lint: setup
	@$(ACTIVATE) && ruff check .

# The API reference (Sphinx autodoc of every module, real imports) into build/docs; every warning,
# a broken cross-reference included, is an error. The stubs in docs/api/_generated are rebuilt each time.
DOCS := rm -rf docs/api/_generated && python -m sphinx -q -W --keep-going -n -b html docs/api build/docs
docs: setup
	@$(ACTIVATE) && $(DOCS) && echo "API reference: build/docs/index.html"

test: setup
	@$(ACTIVATE) && ruff check . && $(DOCS) && HF_HUB_OFFLINE=1 python -m pytest $(PYTEST_ARGS)

bench: setup
	@$(ACTIVATE) && python bench/layout.py && python bench/pipeline.py

# Download a profile's weights (needs a network; nothing else in the project does).
PROFILE ?= fast
weights: setup
	@$(ACTIVATE) && dpa-weights download --profile $(PROFILE)

# Re-resolve requirements/ros.in + ml.in into requirements/lock.txt in a throw-away venv.
lock:
	@rm -rf /tmp/dpa-lock-venv && python3.11 -m venv /tmp/dpa-lock-venv \
	  && /tmp/dpa-lock-venv/bin/pip install -q -U pip \
	  && /tmp/dpa-lock-venv/bin/pip install -q -r requirements/ros.in -r requirements/ml.in \
	  && /tmp/dpa-lock-venv/bin/python scripts/freeze_lock.py > requirements/lock.txt \
	  && rm -rf /tmp/dpa-lock-venv

clean:
	rm -rf build install log .setup-stamps
