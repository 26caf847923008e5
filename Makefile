# EQL developer commands. `make demo` and `make test` work on a fresh machine (see README).
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
DATA ?= ./eql-data
USERS ?= 10000
SEED ?= 42
HOST ?= 127.0.0.1
PORT ?= 8000
STAMP := $(VENV)/.installed

.PHONY: install mariadb demo test check lint format typecheck bench soak clean

install: $(STAMP)

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --disable-pip-version-check --upgrade pip
	$(BIN)/pip install -q --disable-pip-version-check -e '.[dev]'
	@# bytecode for our own modules too (pip compiles only what it installs): a fresh `eql`
	@# process then loads them instead of compiling ~80 modules, even with PYTHONDONTWRITEBYTECODE
	$(BIN)/python -m compileall -q eql runtime server storage ingest entities >/dev/null
	@# and the analysed grammar (eql/syntax/parser.py keeps it in ~/.cache/eql), so that the
	@# first query does not spend half a second proving the grammar conflict-free
	$(BIN)/python -c "from eql.syntax.parser import lark_parser; lark_parser()"
	touch $(STAMP)

# The CDC tests start their own throwaway mariadbd; install the server binaries when missing.
mariadb:
	@if [ -x /usr/sbin/mariadbd ] || command -v mariadbd >/dev/null 2>&1; then :; else \
	  echo "installing mariadb-server (needed by the CDC tests)"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq mariadb-server >/dev/null; \
	fi

# The main job: the demo store, a fresh API key, and the server on it (Ctrl-C stops it). The store
# is built when DATA holds none; DATA/demo.params records what make demo built it for (marked
# incomplete until the build ends), and make demo builds again only when that differs (other
# USERS or SEED, or an interrupted build). So a second `make demo` keeps the store and every key
# made before, and a store make demo did not build (no demo.params) is served as it is, never
# replaced.
DEMO_PARAMS = users=$(USERS) seed=$(SEED)
DEMO_BUILD = mkdir -p $(DATA) && echo "$(DEMO_PARAMS) (incomplete)" > $(DATA)/demo.params && \
	$(BIN)/eql demo --data-dir $(DATA) --users $(USERS) --seed $(SEED) && \
	echo "$(DEMO_PARAMS)" > $(DATA)/demo.params
demo: install
	@built="$$(cat $(DATA)/demo.params 2>/dev/null)"; \
	if [ ! -d $(DATA)/rocks ]; then \
	  $(DEMO_BUILD); \
	elif [ -z "$$built" ]; then \
	  echo "$(DATA) holds a store make demo did not build: serving it as it is" \
	    "(for the demo store, remove $(DATA) or use make demo DATA=OTHER_DIR)"; \
	elif [ "$$built" = "$(DEMO_PARAMS)" ]; then \
	  echo "the demo store at $(DATA) is built ($(DEMO_PARAMS)): keeping it and its API keys"; \
	else \
	  echo "rebuilding the demo store at $(DATA) for $(DEMO_PARAMS) (it was built for $$built):" \
	    "the API keys made for it go with it"; \
	  rm -rf $(DATA) && $(DEMO_BUILD); \
	fi
	@echo "API key for this demo (scopes query, lookup, define; shown once):"
	@$(BIN)/eql keys create --data-dir $(DATA) --scope query,lookup,define --name demo
	@echo "serving http://$(HOST):$(PORT)  (OpenAPI docs at /docs)"
	$(BIN)/eql serve --data-dir $(DATA) --host $(HOST) --port $(PORT)

# The suite on JOBS worker processes (pytest-xdist), a test file per worker at a time, so the
# module fixtures (demo stores, servers, MariaDB) are built once per file. JOBS=0: in-process.
JOBS ?= 2
test: install mariadb
	$(BIN)/python -m pytest -q -p no:cacheprovider $(if $(filter 0,$(JOBS)),,-n $(JOBS) --dist loadfile) --durations=15

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
	$(BIN)/python -m pytest -q -p no:cacheprovider -m slow $(if $(filter 0,$(JOBS)),,-n $(JOBS) --dist loadfile)

clean:
	rm -rf $(VENV) $(DATA) .mypy_cache .ruff_cache .pytest_cache
