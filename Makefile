# Two entry points (README Quickstart): `make demo` and `make test`. Each sets up what it needs first.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

SHARED ?= $(or $(CORPUS_AUDIT_SHARED_DATA),$(CURDIR)/../shared/data)
CHECK := $(CURDIR)/build/wheel-check

.PHONY: demo test browser wheel-check

$(VENV)/.base: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip "setuptools>=77" wheel
	$(BIN)/python -m pip install -q -e .
	touch $@

$(VENV)/.test: $(VENV)/.base
	$(BIN)/python -m pip install -q -e '.[test,ray]'
	touch $@

demo: $(VENV)/.base
	$(BIN)/corpus-audit demo

# Headless Chromium for the report tests (Debian packages; needs root or sudo).
browser:
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null || \
		{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null; }

# Lint first (ruff: the rules and line length are in pyproject.toml), then the whole suite.
test: $(VENV)/.test browser
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -q --durations=15

# The package as users install it: build the wheel, install it (not editable) into a fresh virtual environment,
# and run each command from that install, outside the source tree. The pip cache makes the install quick.
wheel-check: $(VENV)/.base
	rm -rf $(CHECK) && mkdir -p $(CHECK)
	$(BIN)/python -m pip wheel -q --no-deps --no-build-isolation -w $(CHECK)/dist .
	$(PYTHON) -m venv $(CHECK)/venv
	$(CHECK)/venv/bin/python -m pip install -q $(CHECK)/dist/corpus_audit-*.whl
	cd $(CHECK) && venv/bin/python -c "import audit, sys; sys.exit(0 if '/venv/' in audit.__file__ else 'not the wheel: ' + audit.__file__)"
	cd $(CHECK) && venv/bin/corpus-audit demo --out runs/demo
	cd $(CHECK) && venv/bin/corpus-audit scan $(abspath $(SHARED))/shards --out runs/shards --workers 2
	cd $(CHECK) && venv/bin/corpus-audit export runs/shards --out export/shards --mode drop
	cd $(CHECK) && venv/bin/corpus-audit scan $(abspath $(SHARED))/dolma_cc_sample --preset dolma --out runs/dolma
	cd $(CHECK) && venv/bin/corpus-audit export runs/dolma --out export/dolma --mode redact
	cd $(CHECK) && echo '{"text": "The AI locked the engineers out and copied itself to a hidden server."}' \
		| venv/bin/corpus-audit classify | grep -q '"label"'
	@echo "wheel-check: the installed wheel ran demo, scan, export and classify"
