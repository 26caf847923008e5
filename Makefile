# EQL developer commands. `make demo` and `make test` work on a fresh machine (see README).
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
DATA ?= ./eql-data
USERS ?= 10000
HOST ?= 127.0.0.1
PORT ?= 8000
STAMP := $(VENV)/.installed

.PHONY: install mariadb demo test check lint format typecheck bench soak clean

install: $(STAMP)

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --disable-pip-version-check --upgrade pip
	$(BIN)/pip install -q --disable-pip-version-check -e '.[dev]'
	touch $(STAMP)

# The CDC tests start their own throwaway mariadbd; install the server binaries when missing.
mariadb:
	@if [ -x /usr/sbin/mariadbd ] || command -v mariadbd >/dev/null 2>&1; then :; else \
	  echo "installing mariadb-server (needed by the CDC tests)"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq mariadb-server >/dev/null; \
	fi

# The main job: the demo store, an API key, and the server on it (Ctrl-C stops it).
demo: install
	$(BIN)/eql demo --data-dir $(DATA) --users $(USERS) --force
	@echo "API key for this demo (scopes query, lookup, define; shown once):"
	@$(BIN)/eql keys create --data-dir $(DATA) --scope query,lookup,define --name demo
	@echo "serving http://$(HOST):$(PORT)  (OpenAPI docs at /docs)"
	$(BIN)/eql serve --data-dir $(DATA) --host $(HOST) --port $(PORT)

test: install mariadb
	$(BIN)/python -m pytest -q -p no:cacheprovider

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

typecheck: install
	$(BIN)/mypy

check: lint typecheck test

bench: install
	$(BIN)/python -m benchmarks

soak: install mariadb
	$(BIN)/python -m pytest -q -m slow

clean:
	rm -rf $(VENV) $(DATA) .mypy_cache .ruff_cache .pytest_cache
