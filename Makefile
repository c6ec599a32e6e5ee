# etl-doctor — `make demo` and `make test` each work as the first command on a fresh machine
# (Python 3.11+, pip and gcc); they create .venv and install what they need.

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
PY     := $(BIN)/python
PYTEST_ARGS ?=
LAMBDA_PYTHON   ?= 3.12
LAMBDA_PLATFORM ?= manylinux2014_x86_64
LAMBDA_COMPILE_WITH ?=
LAMBDA_CONFIG   ?= etl-doctor.yml

.PHONY: demo test lint format run package-lambda bench clean help

help:
	@echo "make demo            tour etl-doctor on the embedded sandbox (no AWS or Slack account)"
	@echo "make test            lint + the whole test suite (PostgreSQL tests included when possible)"
	@echo "make lint            ruff check, ruff format --check, mypy --strict on bot/"
	@echo "make format          apply ruff's fixes and formatting"
	@echo "make run             run the bot (etl-doctor serve) with the current environment"
	@echo "make package-lambda  build build/lambda/etl-doctor-lambda.zip for serverless.yml"
	@echo "make bench           run the benchmarks in bench/"

$(PY):
	@scripts/make-venv.sh $(PYTHON) $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

# Installed extras are recorded in stamp files so a second run installs nothing.
$(VENV)/.sandbox-installed: pyproject.toml | $(PY)
	$(PY) -m pip install --quiet -e '.[sandbox]'
	@touch $@

$(VENV)/.dev-installed: pyproject.toml | $(PY)
	$(PY) -m pip install --quiet -e '.[dev]'
	@touch $@ $(VENV)/.sandbox-installed

demo: $(VENV)/.sandbox-installed
	$(BIN)/etl-doctor demo

lint: $(VENV)/.dev-installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: $(VENV)/.dev-installed
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

test: lint
	@scripts/ensure-postgres.sh
	$(BIN)/pytest $(PYTEST_ARGS)

run: $(VENV)/.sandbox-installed
	$(BIN)/etl-doctor serve

package-lambda: $(VENV)/.sandbox-installed
	$(PY) scripts/package_lambda.py --python-version $(LAMBDA_PYTHON) --platform $(LAMBDA_PLATFORM) \
		--config $(LAMBDA_CONFIG) $(if $(LAMBDA_COMPILE_WITH),--compile-with $(LAMBDA_COMPILE_WITH))

bench: $(VENV)/.dev-installed
	$(PY) bench/lambda_cold_start.py --artifact
	$(PY) bench/why_calls.py
	$(PY) bench/classify_accuracy.py
	$(PY) bench/actions.py
	$(PY) bench/alert_storm.py
	$(PY) bench/kpi_vs_reladiff.py

clean:
	rm -rf build dist .pytest_cache .mypy_cache .ruff_cache *.egg-info
