VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
NODE_STAMP := tests/node/node_modules/.installed

.PHONY: dev test test-fast lint install clean bench chaos

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test,bench]'
	touch $(STAMP)

# The Vercel AI SDK client tests run under node; without node they are skipped.
$(NODE_STAMP): tests/node/package-lock.json
	if command -v npm >/dev/null; then npm ci --prefix tests/node --no-audit --no-fund --loglevel=error && touch $(NODE_STAMP); fi

install: $(STAMP)

## Start PostgreSQL, Temporal, the API and two workers (Ctrl-C stops all).
dev: $(STAMP)
	$(VENV)/bin/agentrunner dev

## Run the whole test suite against real PostgreSQL, Temporal and clients.
test: $(STAMP) $(NODE_STAMP)
	$(PY) -m pytest $(PYTEST_ARGS)

## Run the fast tier only: the tests that need neither PostgreSQL nor the shared Temporal server (seconds).
test-fast: $(STAMP)
	$(PY) -m pytest -m "not stack" $(PYTEST_ARGS)

# LiteLLM's proxy, the peer the benchmarks compare with, in a virtualenv of its own (its pins clash with ours).
PEER := bench/.peer
PEER_STAMP := $(PEER)/.installed
$(PEER_STAMP):
	test -x $(PEER)/bin/python || python3 -m venv $(PEER)
	$(PEER)/bin/python -m pip install -q 'litellm[proxy]==1.100.5'
	touch $(PEER_STAMP)

# ogx (llama-stack's successor), the second peer: its own virtualenv too, and it needs Python ≥ 3.12 (pyenv's
# if there is one, since pyenv's python3.12 shim fails unless 3.12 is selected).
OGX := bench/.ogx
OGX_STAMP := $(OGX)/.installed
OGX_PYTHON ?= $(firstword $(wildcard $(HOME)/.pyenv/versions/3.12*/bin/python3.12) python3.12)
$(OGX_STAMP):
	test -x $(OGX)/bin/python || $(OGX_PYTHON) -m venv $(OGX)
	$(OGX)/bin/python -m pip install -q 'ogx==1.5.0'
	touch $(OGX_STAMP)

## Run the benchmarks side by side (about 8 minutes); writes bench/results/.
bench: $(STAMP) $(PEER_STAMP) $(OGX_STAMP)
	$(PY) -m bench.run $(BENCH_ARGS)

## Chaos run: 200 background responses while workers are SIGKILLed every 2 s, the upstream fails 30 % of its
## requests and PostgreSQL restarts once (loopback only, bounded); writes bench/results/chaos.md and chaos.json.
chaos: $(STAMP)
	$(PY) -m bench.chaos $(CHAOS_ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy

clean:
	rm -rf $(VENV) .agentrunner tests/node/node_modules $(PEER) $(OGX)
