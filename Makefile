# Every target installs what it needs into $(VENV) first; only Python 3.11 is required on the machine.
PYTHON ?= python3.11
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
STAMP := $(VENV)/.installed
DEV_STAMP := $(VENV)/.installed-dev
PYTEST_ARGS ?=

.PHONY: run stop status test test-fast chaos lint bench install install-dev system-deps clean

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV) || python3 -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	$(PIP) install --quiet ".[embedded]"
	@touch $@

$(DEV_STAMP): $(STAMP) tests/upstream/fetch.py tests/upstream/original.py
	$(PIP) install --quiet ".[embedded,dev]"
	$(PY) -m tests.upstream.fetch
	$(PY) -m tests.upstream.original
	@touch $@

install: $(STAMP)
install-dev: $(DEV_STAMP)

## Debian's packages the tests drive besides Python's: Prometheus (promtool, and a server for the dashboard's and the
## rules' queries) and Chromium with its driver (the console's browser tests). Installed with apt-get when missing
## and run as root; otherwise the tests that need them say so.
SYSTEM_PACKAGES := prometheus chromium chromium-driver
SYSTEM_BINARIES := promtool prometheus chromium chromedriver
system-deps:
	@missing=$$(for bin in $(SYSTEM_BINARIES); do command -v $$bin >/dev/null || printf "%s " $$bin; done); \
	if [ -z "$$missing" ]; then exit 0; fi; \
	if [ "$$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then \
		echo "system-deps: missing $$missing; install Debian's $(SYSTEM_PACKAGES) (apt-get, as root)"; exit 0; fi; \
	echo "system-deps: installing $(SYSTEM_PACKAGES) (for $$missing)"; \
	export DEBIAN_FRONTEND=noninteractive; \
	apt-get install -y -qq --no-install-recommends $(SYSTEM_PACKAGES) >/dev/null \
		|| { apt-get update -qq && apt-get install -y -qq --no-install-recommends $(SYSTEM_PACKAGES) >/dev/null; }

## Start beat and the cron workers under supervisord (background); prints where the logs are.
run: $(STAMP)
	$(PY) manage.py platform start

## Stop supervisord and every program it runs, and wait for them to exit.
stop: $(STAMP)
	$(PY) manage.py platform stop

status: $(STAMP)
	$(PY) manage.py platform status

## The whole test suite: unit, integration (real Redis/RabbitMQ) and the slow end-to-end run.
test: $(DEV_STAMP) system-deps
	$(PY) -m pytest $(PYTEST_ARGS)

## Everything but the slow end-to-end test.
test-fast: $(DEV_STAMP) system-deps
	$(PY) -m pytest -m "not slow" $(PYTEST_ARGS)

## The chaos scenarios (tests/chaos): kill/freeze beats, restart Redis, kill workers; prints a table of runs at the end.
chaos: $(DEV_STAMP)
	$(PY) -m pytest -m chaos tests/chaos -p no:cacheprovider -s -q

lint: $(DEV_STAMP)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m mypy config alarm_backends patches settings.py manage.py bench tests
	$(VENV)/bin/lint-imports

## Side by side, stock celery-redbeat and the patched scheduler (about 10 minutes; BENCH_ARGS=--quick for 3).
bench: $(DEV_STAMP)
	$(PY) bench/expires_bench.py
	$(PY) bench/kombu_consume.py
	$(PY) bench/run.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .cache/upstream .cache/original-venv
