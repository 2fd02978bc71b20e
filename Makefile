# Stockroom: the two set-up commands are `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: run test install install-dev lint

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

install: $(BIN)/python
	$(BIN)/pip install --quiet -e .

install-dev: $(BIN)/python
	$(BIN)/pip install --quiet -e ".[dev]"

# Install, migrate, load demo data, print the demo login and what to try next (URLs,
# a first curl with a fresh storefront key), then serve on 127.0.0.1:8000.
# With nothing configured: SQLite in var/, in-process cache, Celery tasks inline.
run: install
	mkdir -p var
	$(BIN)/python manage.py migrate --noinput
	$(BIN)/python manage.py seed_demo --skus 50 --warehouses 3
	$(BIN)/python manage.py seed_demo_suppliers
	$(BIN)/python manage.py setup_roles
	$(BIN)/python manage.py demo_admin
	$(BIN)/python manage.py demo_next_steps --base-url http://127.0.0.1:8000
	$(BIN)/python manage.py runserver 127.0.0.1:8000

lint: install-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# Install and run the whole suite against PostgreSQL and Redis on 127.0.0.1
# (DATABASE_URL / REDIS_URL override; see README).
# The migrations check needs the models, not a database: an in-memory SQLite one, so
# it never warns about a database it cannot reach.
test: lint
	DATABASE_URL=sqlite://:memory: $(BIN)/python manage.py makemigrations --check --dry-run
	$(BIN)/pytest
