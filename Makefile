# jobsite developer commands. `make run` and `make test` are the Quickstart.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PORT ?= 8000

# Development defaults for `make run` only; set them in the environment or .env to override.
RUN_ENV := DEBUG=$${DEBUG:-1} JOBSITE_API_SECRET=$${JOBSITE_API_SECRET:-dev-secret}

.PHONY: run manage test lint format migrate worker web clean compose-check

$(VENV)/.installed: requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -r requirements.txt
	touch $@

run: $(VENV)/.installed
	@export $(RUN_ENV); \
	$(PY) manage.py migrate --noinput && \
	$(PY) manage.py install_demo_pipelines && \
	{ [ "$$DEBUG" = "0" ] || $(PY) manage.py ensure_demo_superuser; } && \
	PY=$(PY) PORT=$(PORT) ./scripts/run.sh

# Any manage.py command with the project's virtualenv: make manage ARGS="createsuperuser"
manage: $(VENV)/.installed
	$(PY) manage.py $(ARGS)

# pytest-xdist: one worker per core (at most 4), each test file on one worker (its servers started once).
test: $(VENV)/.installed
	$(VENV)/bin/pytest -n auto --maxprocesses 4 --dist loadfile

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: $(VENV)/.installed
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

# Needs Docker: bring the docker-compose stack up, submit a job, see it complete, in /metrics and in
# Prometheus (deploy/compose-check.sh). Creates .env with generated secrets when there is none.
compose-check:
	./deploy/compose-check.sh

migrate: $(VENV)/.installed
	$(PY) manage.py migrate --noinput

clean:
	rm -rf $(VENV) db.sqlite3* .pytest_cache
