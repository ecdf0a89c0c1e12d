# The README's commands. Each target creates .venv when it is missing or out of date, so a
# fresh clone needs nothing but Python 3.11 and this file.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install system-packages demo test airflow lint format lock clean

# --compile-bytecode: uv, unlike pip, installs no .pyc files, and where PYTHONDONTWRITEBYTECODE is
# set (as on our CI machines) Python never writes them either, so every process (each Airflow
# task, each dbt call) compiled Airflow, dbt and great-expectations from source: importing Airflow
# and cosmos took 13 s instead of 5 (bench/RESULTS.md).
$(STAMP): requirements.txt requirements-dev.txt pyproject.toml Makefile
	@echo "[make] installing pinned dependencies into $(VENV)"
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@$(BIN)/python -m pip install -q uv || echo "[make] uv unavailable, using pip"
	@if [ -x $(BIN)/uv ]; then \
		$(BIN)/uv pip sync --compile-bytecode --python $(BIN)/python requirements.txt requirements-dev.txt && \
		$(BIN)/uv pip install --python $(BIN)/python --no-deps -e . ; \
	else \
		$(BIN)/pip install -r requirements.txt -r requirements-dev.txt && $(BIN)/pip install --no-deps -e . ; \
	fi
	@touch $(STAMP)

# Debian packages: pango lays out the invoice documents (WeasyPrint loads it), poppler-utils
# reads rendered PDFs back in the tests (pdftoppm, pdftotext), chromium renders the close report,
# a Java runtime runs the Spark tests (WAREHOUSE_ENGINE=spark).
# Installed when missing and running as root; otherwise the
# tests that need them say so and skip.
SYSTEM_PACKAGES := pdftoppm:poppler-utils chromium:chromium java:openjdk-17-jre-headless
SYSTEM_LIBRARIES := libpango-1.0.so.0:libpango-1.0-0 libpangoft2-1.0.so.0:libpangoft2-1.0-0
system-packages:
	@missing=""; for pair in $(SYSTEM_PACKAGES); do \
		command -v $${pair%%:*} >/dev/null || missing="$$missing $${pair##*:}"; done; \
	for pair in $(SYSTEM_LIBRARIES); do \
		/sbin/ldconfig -p 2>/dev/null | grep -q "$${pair%%:*}" || missing="$$missing $${pair##*:}"; done; \
	if [ -n "$$missing" ]; then \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
			echo "[make] installing$$missing"; \
			{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; } \
				|| echo "[make] could not install$$missing: the tests that need them will skip"; \
		else echo "[make] missing$$missing and not root: the tests that need them will skip"; fi; \
	fi

install: $(STAMP) system-packages

demo: install  ## a realistic month end to end on the embedded warehouse
	$(BIN)/meterline demo

# One pytest-xdist worker per CPU; a module runs whole on one worker (its module-scoped fixtures
# built once), the costliest modules first (tests/conftest.py orders them). `make test PYTEST_XDIST=`
# runs in one process; so does a plain `.venv/bin/pytest tests/...`.
PYTEST_XDIST ?= -n logical --dist loadscope --no-loadscope-reorder
test: install  ## the whole test suite (CI runs exactly this)
	$(BIN)/pytest $(PYTEST_XDIST)

airflow: install  ## the Airflow UI on http://localhost:8080 (airflow standalone)
	$(BIN)/meterline airflow standalone

lint: install
	$(BIN)/ruff check . && $(BIN)/ruff format --check .

format: install
	$(BIN)/ruff check --fix . && $(BIN)/ruff format .

lock: install  ## recompile requirements.txt and requirements-dev.txt from their .in files
	$(BIN)/uv pip compile requirements.in -o requirements.txt --python-version 3.11 --no-header
	$(BIN)/uv pip compile requirements-dev.in -o requirements-dev.txt --python-version 3.11 --no-header

clean:  ## stop the embedded warehouse and remove local state (keeps .venv)
	-$(BIN)/meterline warehouse stop
	rm -rf .warehouse .airflow data dbt_project/target dbt_project/logs
