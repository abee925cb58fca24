# tollgate: every command a developer, an operator or CI needs. Each target installs what it needs.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
BUF_VERSION := 1.75.0
BUF := .tools/node_modules/.bin/buf
PROTOS := $(shell find protos -name '*.proto' | sort)
SERVICES ?= metering gateway billing payouts

.PHONY: setup protos protos-check lint test test-fast run demo bench clean fuzz

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	$(PY) -c 'import sysconfig, pathlib; pathlib.Path(sysconfig.get_paths()["purelib"], "tollgate-paths.pth").write_text("$(CURDIR)/services\n$(CURDIR)/gen/python\n")'
	touch $(STAMP)

$(BUF):
	mkdir -p .tools
	npm install --silent --no-audit --no-fund --prefix .tools @bufbuild/buf@$(BUF_VERSION)

# Regenerates gen/python from protos/ (messages, typing stubs and gRPC stubs).
protos: $(STAMP)
	rm -rf gen/python/tollgate
	$(PY) scripts/genprotos.py gen/python

# Fails when the committed stubs differ from what protos/ generates.
protos-check: $(STAMP)
	@tmp=$$(mktemp -d) && $(PY) scripts/genprotos.py $$tmp && \
	  diff -r -x __pycache__ $$tmp/tollgate gen/python/tollgate && echo "protos-check: stubs up to date"; \
	  rc=$$?; rm -rf $$tmp; exit $$rc

lint: $(STAMP) $(BUF)
	$(VENV)/bin/ruff check .
	$(BUF) lint

# The whole test suite. Uses TEST_DATABASE_URL when set, else a Docker PostgreSQL, else embedded pgserver.
test: $(STAMP)
	$(PY) -m pytest $(PYTEST_ARGS)

# Fuzzes every RPC of every service longer than `make test` does, with random seeds (FUZZ_EXAMPLES per
# RPC), shrinks what it finds, and prints the status codes per RPC (also in .tollgate/fuzz-report.txt).
FUZZ_EXAMPLES ?= 300
fuzz: $(STAMP)
	TOLLGATE_FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) TOLLGATE_FUZZ_RANDOM=1 $(PY) -m pytest tests/fuzz -p no:logging $(PYTEST_ARGS)

# Starts the suite on the embedded PostgreSQL (or the *_DATABASE_URL ones) until Ctrl-C.
run: $(STAMP)
	$(PY) scripts/suite.py run --services "$(SERVICES)"

# Starts the suite, drives it end to end, prints what happened, and stops it.
demo: $(STAMP)
	$(PY) scripts/suite.py demo --services "$(SERVICES)"

bench: $(STAMP)
	$(PY) -m bench

clean:
	rm -rf $(VENV) .tools .tollgate
