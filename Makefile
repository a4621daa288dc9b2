# infusion developer entry points. `make` (or `make help`) lists the targets.
SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help
MAKEFLAGS += --no-print-directory

# scripts/bootstrap may pip-install uv into ~/.local/bin.
export PATH := $(HOME)/.local/bin:$(PATH)
export UV_PYTHON_DOWNLOADS ?= never

UV ?= uv
# --frozen: use uv.lock as committed, never rewrite it behind your back.
RUN := $(UV) run --frozen

HOST ?=
PORT ?=
WORKERS ?= 2
ARGS ?=
BENCH ?= health


.PHONY: help bootstrap dev serve worker test lint fmt bench migrate seed compose-config clean clean-data

help: ## List targets
	@echo "Usage: make TARGET [VAR=value]"
	@echo
	@awk 'BEGIN {FS = ":[^#]*## "} /^[a-zA-Z0-9_-]+:[^#]*## / {printf "  %-16s %s\n", $$1, $$2}' $(MAKEFILE_LIST)
	@echo
	@echo "Variables: HOST, PORT (dev), WORKERS=$(WORKERS) and ARGS (test), BENCH=$(BENCH) (bench)"

bootstrap: ## Install uv, Python deps (.venv), node_modules and Debian chromium (idempotent)
	@bash scripts/bootstrap

dev: bootstrap ## Run API + worker with embedded PostgreSQL/Redis (unless DATABASE_URL/REDIS_URL set)
	$(RUN) infusion dev $(if $(HOST),--host $(HOST)) $(if $(PORT),--port $(PORT))

serve: bootstrap ## Run the API only (needs DATABASE_URL/REDIS_URL)
	$(RUN) infusion serve $(if $(HOST),--host $(HOST)) $(if $(PORT),--port $(PORT))

worker: bootstrap ## Run the arq worker only (needs DATABASE_URL/REDIS_URL)
	$(RUN) infusion worker

test: bootstrap ## Run the test suite (pytest -n WORKERS, default 2; extra pytest args via ARGS=...)
	$(RUN) pytest -n $(WORKERS) --dist loadgroup $(ARGS)

lint: bootstrap ## ruff check + ruff format --check
	@rc=0; \
	$(RUN) ruff check . || rc=1; \
	$(RUN) ruff format --check . || rc=1; \
	exit $$rc

fmt: bootstrap ## Auto-fix lint findings and format the code
	$(RUN) ruff check --fix .
	$(RUN) ruff format .

bench: bootstrap ## Run a benchmark (BENCH=health)
	$(RUN) python -m bench $(BENCH)

migrate: bootstrap ## Apply database migrations
	$(RUN) infusion migrate

seed: bootstrap ## Load seed data
	$(RUN) infusion seed

compose-config: bootstrap ## Validate compose.yaml (compose-spec schema + references; docker compose config when available)
	$(RUN) pytest -q -p no:cacheprovider tests/process/test_compose.py
	@if docker compose version >/dev/null 2>&1; then \
		SECRET_KEY="$${SECRET_KEY:-compose-config-placeholder}" \
		INFUSION_AUDIT_KEY="$${INFUSION_AUDIT_KEY:-compose-config-placeholder}" \
		INFUSION_APP_DB_PASSWORD="$${INFUSION_APP_DB_PASSWORD:-placeholder}" \
		docker compose -f compose.yaml config -q; \
		echo "compose-config: docker compose config -q ok"; \
	else \
		echo "compose-config: no 'docker compose' plugin here; schema + reference checks only"; \
	fi

clean: ## Remove .venv, node_modules and caches (keeps .infusion/ data)
	rm -rf .venv node_modules .pytest_cache .ruff_cache .hypothesis test-artifacts dist build
	find . -name __pycache__ -type d -prune -not -path './.git/*' -exec rm -rf {} +

clean-data: ## Remove local dev data (.infusion/: embedded PostgreSQL/Redis state)
	rm -rf .infusion
