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

# Throwaway tool venv (outside the repo) for validating compose.yaml without a Docker engine.
COMPOSE_YAML ?= compose.yaml
COMPOSE_LINT_VENV ?= /tmp/infusion-compose-lint
CHECK_JSONSCHEMA_VERSION ?= 0.39.0
COMPOSE_LINT_STAMP := $(COMPOSE_LINT_VENV)/.installed-check-jsonschema-$(CHECK_JSONSCHEMA_VERSION)

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
	$(RUN) pytest -n $(WORKERS) $(ARGS)

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

define COMPOSE_CHECK_PY
import sys
from ruamel.yaml import YAML

doc = YAML(typ="safe").load(open(sys.argv[1]))
services = doc.get("services") or {}
volumes = set(doc.get("volumes") or {})
errors = []
for name, svc in services.items():
    deps = svc.get("depends_on") or []
    for dep in deps if isinstance(deps, list) else deps:
        if dep not in services:
            errors.append(f"service {name!r}: depends_on unknown service {dep!r}")
    for vol in svc.get("volumes") or []:
        src = vol.split(":")[0] if isinstance(vol, str) else vol.get("source")
        if src and ":" in str(vol) and not src.startswith((".", "/", "~", "$$")) and src not in volumes:
            errors.append(f"service {name!r}: volume {src!r} is not declared under volumes:")
    if "image" not in svc and "build" not in svc:
        errors.append(f"service {name!r}: needs image: or build:")
for key in ("container_name", "ports"):
    if key in services.get("worker", {}):
        errors.append(f"service 'worker' must stay scalable: remove {key}:")
for err in errors:
    print(f"compose-config: {err}", file=sys.stderr)
sys.exit(1 if errors else 0)
endef
export COMPOSE_CHECK_PY

$(COMPOSE_LINT_STAMP):
	@echo "compose-config: creating tool venv $(COMPOSE_LINT_VENV) (check-jsonschema $(CHECK_JSONSCHEMA_VERSION))"
	@rm -rf $(COMPOSE_LINT_VENV)
	@python3 -m venv $(COMPOSE_LINT_VENV)
	@$(COMPOSE_LINT_VENV)/bin/python -m pip install --quiet --disable-pip-version-check \
		check-jsonschema==$(CHECK_JSONSCHEMA_VERSION) > $(COMPOSE_LINT_VENV)/pip.log 2>&1 \
		|| { cat $(COMPOSE_LINT_VENV)/pip.log >&2; exit 1; }
	@touch $@

compose-config: $(COMPOSE_LINT_STAMP) ## Validate compose.yaml (compose-spec schema + references; docker compose config when available)
	@$(COMPOSE_LINT_VENV)/bin/check-jsonschema --builtin-schema vendor.compose-spec $(COMPOSE_YAML)
	@$(COMPOSE_LINT_VENV)/bin/python -c "$$COMPOSE_CHECK_PY" $(COMPOSE_YAML)
	@if docker compose version >/dev/null 2>&1; then \
		SECRET_KEY="$${SECRET_KEY:-compose-config-placeholder}" docker compose -f $(COMPOSE_YAML) config -q; \
		echo "compose-config: docker compose config -q ok"; \
	else \
		echo "compose-config: no 'docker compose' plugin here; schema + reference checks only"; \
	fi

clean: ## Remove .venv, node_modules and caches (keeps .infusion/ data)
	rm -rf .venv node_modules .pytest_cache .ruff_cache .hypothesis test-artifacts dist build
	find . -name __pycache__ -type d -prune -not -path './.git/*' -exec rm -rf {} +

clean-data: ## Remove local dev data (.infusion/: embedded PostgreSQL/Redis state)
	rm -rf .infusion
