# Two commands do everything:  `make run`  and  `make test`.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 5000

.PHONY: run test test-fast lint translations setup setup-dev extract-messages clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.runtime: requirements.txt | $(BIN)/python
	$(BIN)/python -m pip install --quiet -r requirements.txt
	touch $@

$(VENV)/.dev: requirements.txt requirements-dev.txt | $(BIN)/python
	$(BIN)/python -m pip install --quiet -r requirements-dev.txt
	touch $@ $(VENV)/.runtime

setup: $(VENV)/.runtime translations
setup-dev: $(VENV)/.dev translations

translations: $(VENV)/.runtime
	$(BIN)/pybabel compile --statistics -d translations

## Set up and serve on http://$(HOST):$(PORT) with SQLite, creating `admin` on first run.
## (`--ident=`: waitress sends no Server header naming itself.)
run: setup
	$(BIN)/flask --app app init
	$(BIN)/flask --app app ensure-admin
	@echo "Deskbook is serving on http://$(HOST):$(PORT)  (Ctrl+C stops it)"
	$(BIN)/waitress-serve --host $(HOST) --port $(PORT) --threads 8 --ident= --call app:create_app

## Set up and run the whole test suite (PostgreSQL too when TEST_DATABASE_URL is set).
test: setup-dev lint
	$(BIN)/python -m pytest $(PYTEST_ARGS)

## The edit loop: no browser, no concurrency tests, SQLite only.
test-fast: setup-dev lint
	env -u TEST_DATABASE_URL $(BIN)/python -m pytest -n 2 -m "not browser and not concurrency" $(PYTEST_ARGS)

## Linters (settings in pyproject.toml): ruff must pass; mypy's error count must not
## grow past .mypy-budget. `make test` and `make test-fast` run this first.
lint: setup-dev
	$(BIN)/ruff check --quiet .
	$(BIN)/python tools/mypy_budget.py

## Refresh translations/messages.pot and merge new strings into the .po files.
extract-messages: $(VENV)/.runtime
	$(BIN)/pybabel extract -F babel.cfg -k _l -k lazy_gettext --no-location --sort-output \
		--ignore-dirs='.venv instance tests bench migrations' -o messages.pot .
	$(BIN)/pybabel update --no-fuzzy-matching -i messages.pot -d translations

clean:
	rm -rf $(VENV) .pytest_cache
