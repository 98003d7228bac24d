# Stepwise. `make run` starts the product on the embedded default (SQLite and
# Celery's filesystem transport); `make test` runs the whole suite against
# whatever DATABASE_URL and CELERY_BROKER_URL say (the same defaults if unset).

VENV := .venv
BIN := $(VENV)/bin
PORT ?= 8000
FAKE_OPENAI_PORT ?= 8055

# The first Python >= 3.12.4 found: on PATH, then in pyenv's versions. (Older
# 3.12 releases are refused: their ipaddress module misjudges some addresses.)
PYTHON ?= $(shell for p in python3.13 python3.12 python3 $$(ls -d $$HOME/.pyenv/versions/3.1[2-9]*/bin/python 2>/dev/null | sort -rV); do \
	  $$p -c 'import sys; sys.exit(sys.version_info < (3, 12, 4))' >/dev/null 2>&1 && { echo $$p; break; }; done)

.PHONY: run demo test lint install migrate worker beat web fake-openai screenshots check-python clean

check-python:
	@test -n "$(PYTHON)" || { echo "Stepwise needs Python >= 3.12.4 (python3.12 or python3.13 on PATH, or set PYTHON=...)."; exit 1; }

$(BIN)/.installed: pyproject.toml requirements.lock | check-python
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c requirements.lock -e ".[dev]"
	touch $@

install: $(BIN)/.installed

migrate: install
	$(BIN)/python manage.py migrate --noinput

# The product on the embedded default: web (ASGI), a worker and beat, together.
# Not in debug mode (its own 404 and 500 pages, a secret key generated once
# in var/secret_key); `DEBUG=true make run` for Django's debug pages. Cookies
# are not Secure: it is served over plain http on 127.0.0.1.
run: export STEPWISE_LOCAL ?= true
run: export SECURE_COOKIES ?= false
run: install migrate
	@echo "Stepwise on http://127.0.0.1:$(PORT)  (Ctrl-C stops it)"
	PORT=$(PORT) $(BIN)/honcho start -f Procfile

# The product against the built-in fake OpenAI server: answers are simulated.
demo: export STEPWISE_LOCAL ?= true
demo: export SECURE_COOKIES ?= false
demo: export OPENAI_API_KEY = demo-key
demo: export OPENAI_BASE_URL = http://127.0.0.1:$(FAKE_OPENAI_PORT)/v1
demo: export STEPWISE_SIMULATED_LLM = true
demo: install migrate
	@echo "Stepwise (simulated answers) on http://127.0.0.1:$(PORT)"
	PORT=$(PORT) FAKE_OPENAI_PORT=$(FAKE_OPENAI_PORT) $(BIN)/honcho start -f Procfile.demo

# Test processes in parallel (pytest-xdist): one per core by default. Each has
# its own test database, worker queue and fake OpenAI server.
PYTEST_WORKERS ?= auto
test: export SECRET_KEY ?= insecure-key-for-the-test-suite-only-0123456789
# Bytecode cached (an environment may turn it off with PYTHONDONTWRITEBYTECODE): else
# every test process, and every worker, server and manage.py process a test starts,
# compiles the project again, and pytest rewrites the asserts of some 350 plugin
# modules (schemathesis, hypothesis) in each process, about 6 s of CPU apiece.
test: export PYTHONDONTWRITEBYTECODE =
test: install
	$(BIN)/python -m pytest -n $(PYTEST_WORKERS) $(PYTEST_ARGS)

# What CI checks besides the tests (configured in pyproject.toml): ruff, mypy and the
# import contracts (layers, no cycles, the product never imports dev/).
lint: export SECRET_KEY ?= insecure-key-for-the-test-suite-only-0123456789
lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports --no-cache

screenshots: export SECRET_KEY ?= insecure-key-for-the-test-suite-only-0123456789
screenshots: install
	STEPWISE_SCREENSHOTS=1 $(BIN)/python -m pytest tests/browser/test_screenshots.py -p no:cacheprovider $(PYTEST_ARGS)

clean:
	rm -rf var/ staticfiles/

# Benchmarks (issue 7): each needs PostgreSQL on 127.0.0.1:5432 and Redis on
# 127.0.0.1:6379; results land in bench/results/ and docs/benchmarks.md.
.PHONY: bench-n8n bench-editor bench-webhook bench-overhead bench-throughput bench-concurrency bench-chaos bench-chaos-backlog bench-overload bench-fairness bench-prune bench
bench-editor: install
	$(BIN)/python -m bench.editor_render
bench-webhook: install
	$(BIN)/python -m bench.webhook_latency
bench-overhead: install
	$(BIN)/python -m bench.overhead
bench-throughput: install
	$(BIN)/python -m bench.throughput
bench-concurrency: install
	$(BIN)/python -m bench.concurrency
bench-chaos: install
	$(BIN)/python -m bench.chaos
bench-fairness: install
	$(BIN)/python -m bench.fairness
# Issue 13, targets 9 and 7: crash recovery with hundreds of new runs queued (Redis is not
# restarted: other work may use it), and webhooks beyond capacity.
bench-chaos-backlog: install
	$(BIN)/python -m bench.chaos --runs 1500 --kills 4 --kill-gap 20 --backlog --no-redis-restart
bench-overload: install
	$(BIN)/python -m bench.overload
# Issue 16: the nightly prune of run details over 100,000 runs (no workers needed).
bench-prune: install
	$(BIN)/python -m bench.prune
# Stepwise beside n8n 2.8.4 (issue 13): n8n started by ../shared/peers/n8n/install_and_start.sh
# (BASE=~/.cache/peer-n8n), or BENCH_N8N_ARGS=--start-n8n to start it from here.
bench-n8n: install
	$(BIN)/python -m bench.compare_n8n $(BENCH_N8N_ARGS)
bench: bench-editor bench-webhook bench-overhead bench-throughput bench-concurrency bench-chaos bench-fairness
