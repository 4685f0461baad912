# Every target bootstraps what it needs: uv (installed with pip when missing), Python 3.13 and the
# locked dependencies. `make test` is the command CI runs.
SHELL := /bin/bash
.DEFAULT_GOAL := help

UV := $(or $(shell command -v uv 2>/dev/null),python3 -m uv)
RUN := $(UV) run --frozen
SYNCED := .venv/.synced

.PHONY: help bootstrap demo test e2e lint fmt build bench infra-mutations

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed -E 's/:.*## /\t/' | expand -t 12

$(SYNCED): pyproject.toml uv.lock
	@$(UV) --version >/dev/null 2>&1 || python3 -m pip install --quiet uv
	$(UV) sync --frozen --all-extras
	@touch $@

bootstrap: $(SYNCED) ## Install uv (if missing) and the locked environment

demo: $(SYNCED) ## The whole pipeline on an embedded AWS emulator, with a report (DEMO_ARGS="--rate 20 ...")
	$(RUN) data-aggregator demo $(DEMO_ARGS)

test: $(SYNCED) ## Run the whole offline suite (unit, integration, fast e2e, smoke benchmarks)
	$(RUN) pytest --cov --cov-report=term

infra-mutations: $(SYNCED) ## Break infra/ on purpose (every listed mutation) and show which plan test catches each
	$(RUN) python -m tests.infra.tfharness mutations

e2e: $(SYNCED) ## Every end-to-end scenario on the embedded pipeline (E2E_ARGS="--target aws --env dev" ...)
	$(RUN) python -m e2e_tests --config e2e_tests/configs/*.json $(E2E_ARGS)

lint: $(SYNCED) ## ruff, mypy --strict, bandit, terraform fmt and checkov over infra/
	$(RUN) ruff check .
	$(RUN) ruff format --check .
	$(RUN) mypy --strict
	$(RUN) bandit -q -c pyproject.toml -r src
	./infra/check.sh

fmt: $(SYNCED) ## Apply ruff's formatting and safe fixes
	$(RUN) ruff check --fix .
	$(RUN) ruff format .

build: ## Build dist/lambda.zip (python3.13, arm64); ARCH=x86_64 builds dist/lambda-x86_64.zip
	./build.sh --arch $(or $(ARCH),arm64)

bench: $(SYNCED) ## Run the benchmarks and print their tables (BENCH_ARGS="throughput --repeats 5 --check")
	$(RUN) python -m benchmarks $(BENCH_ARGS)
